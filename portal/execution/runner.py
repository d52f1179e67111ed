"""The request runner (S4): claim → manual gate → collect → package → complete, or error.

``run_privacy_request(request_id)`` owns its transactions (like a worker task). A run starts only by
winning a compare-and-swap on the request row, so a task delivered twice, a double click on Resume, or two
workers never run one request twice. Every transition is audited.

Collected rows stream from the connectors into the package writer (``execution.package``): memory does not
grow with the package. The new package replaces the old one in the transaction that completes the request,
so the old package stays until then, and a failed run leaves no trace of a package.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import uuid

from flask import current_app
from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import joinedload

from portal.execution import collection, gate
from portal.execution.package import PackageWriter, manual_entries
from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, utcnow
from portal.services.audit import SYSTEM, record

log = logging.getLogger(__name__)

S = RequestStatus


def _runnable_condition():
    runnable = [S.APPROVED.value]
    if not current_app.config["REQUIRE_APPROVAL"]:
        runnable.append(S.PENDING.value)
    return or_(
        PrivacyRequest.status.in_(runnable),
        and_(PrivacyRequest.status == S.IN_PROCESSING, PrivacyRequest.runner_claim.is_(None)),
    )


def claim(request_id: str) -> str | None:
    """Atomically take ownership of a runnable request; returns the claim, or None if someone else has it."""
    token = uuid.uuid4().hex
    now = utcnow()
    result = db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, _runnable_condition())
        .values(
            status=S.IN_PROCESSING.value,
            runner_claim=token,
            claimed_at=now,
            started_processing_at=func.coalesce(PrivacyRequest.started_processing_at, now),
            error_message=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        return None
    record(SYSTEM, "request.run_started", privacy_request_id=request_id)
    db.session.commit()
    return token


def _finish(request_id: str, token: str, status: str, **values) -> bool:
    """Leave the run in ``status`` if we still own it (the sweeper may have taken it back)."""
    now = utcnow()
    result = db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, PrivacyRequest.runner_claim == token)
        .values(status=status, runner_claim=None, claimed_at=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def run_privacy_request(request_id: str) -> str | None:
    """Run one request to its next resting state; returns that status, or None when not claimed."""
    token = claim(request_id)
    if token is None:
        return None
    try:
        return _run_claimed(request_id, token)
    except Exception as exc:  # noqa: BLE001 - every failure must leave the request in `error`
        db.session.rollback()
        return _fail(request_id, token, exc)


def _run_claimed(request_id: str, token: str) -> str:
    privacy_request = db.session.get(PrivacyRequest, request_id, options=[joinedload(PrivacyRequest.policy)])
    webhooks = gate.gated_webhooks() if gate.applies_to(privacy_request) else []
    inputs = gate.inputs_by_connection(request_id)
    missing = gate.missing_webhooks(request_id, webhooks, inputs)
    if missing:
        if _finish(request_id, token, S.REQUIRES_INPUT.value):
            record(
                SYSTEM,
                "request.requires_input",
                privacy_request_id=request_id,
                missing=[m.key for m in missing],
            )
        db.session.commit()
        return S.REQUIRES_INPUT.value

    with PackageWriter(current_app.config["PACKAGE_CHUNK_BYTES"]) as writer:
        with contextlib.closing(collection.collect(privacy_request)) as automated:
            for key, rows in automated:
                writer.add(key, rows)
        for key, rows in manual_entries(webhooks, inputs):
            writer.add(key, rows)
        writer.save(request_id)
        keys = writer.keys
    db.session.flush()
    if not _finish(request_id, token, S.COMPLETE.value, finished_processing_at=utcnow()):
        db.session.rollback()  # someone took the run over; leave everything to them
        return privacy_request.status
    record(
        SYSTEM,
        "request.completed",
        privacy_request_id=request_id,
        keys=sorted(keys),
        manual_versions={m.key: m.webhook.version for m in webhooks},
    )
    db.session.commit()
    return S.COMPLETE.value


def _fail(request_id: str, token: str, exc: Exception) -> str:
    if isinstance(exc, collection.CollectionError):
        message = str(exc)
        collection.record_failed_steps(exc)
    else:
        message = (
            f"Unexpected error while processing ({type(exc).__name__}). Nothing entered by hand was lost; "
            "an admin can retry the request."
        )
    # Log where it failed, not the exception text: driver messages can echo personal data.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("Run of %s failed with %s\n%s", request_id, type(exc).__name__, frames)
    if _finish(request_id, token, S.ERROR.value, error_message=message):
        record(SYSTEM, "request.errored", privacy_request_id=request_id, error=type(exc).__name__)
    db.session.commit()
    return S.ERROR.value
