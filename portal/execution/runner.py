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
from sqlalchemy import bindparam, select

from portal.execution import collection, gate, tasks
from portal.execution.package import PackageWriter, attachment_index, manual_entries
from portal.extensions import db, run
from portal.models import Policy, PrivacyRequest, RequestStatus, lifecycle, utcnow
from portal.models.audit import SYSTEM

log = logging.getLogger(__name__)

S = RequestStatus


def claim(request_id: str) -> str | None:
    """Atomically take ownership of a runnable request; returns the claim, or None if someone else has it."""
    token = take_claim(request_id)
    if token is None:
        db.session.rollback()
        return None
    db.session.commit()
    return token


def take_claim(request_id: str) -> str | None:
    """``claim`` inside the caller's transaction, which commits it (None: not runnable; nothing written).

    The claim must be committed before the run queries anything outside the portal, so that a run that
    dies midway is seen (and retried) by the sweeper.
    """
    token = uuid.uuid4().hex
    runnable = {S.APPROVED, S.IN_PROCESSING} | (
        {S.PENDING} if not current_app.config["REQUIRE_APPROVAL"] else set()
    )
    if not lifecycle.change(request_id, "claim", SYSTEM, sources=runnable, unclaimed=True, claim=token):
        return None
    return token


def _finish(request_id: str, token: str, name: str, values: dict | None = None, **details) -> bool:
    """Leave the run by transition ``name`` if we still own it (the sweeper may have taken it back)."""
    return lifecycle.change(request_id, name, SYSTEM, claimed_by=token, values=values, details=details)


def run_privacy_request(request_id: str) -> str | None:
    """Run one request to its next resting state; returns that status, or None when not claimed."""
    token = claim(request_id)
    if token is None:
        return None
    return run_claimed(request_id, token)


def run_claimed(request_id: str, token: str) -> str:
    """Run a request whose claim (``take_claim``) is committed; returns the status it rests in."""
    try:
        return _run_claimed(request_id, token)
    except Exception as exc:  # noqa: BLE001 - every failure must leave the request in `error`
        db.session.rollback()
        return _fail(request_id, token, exc)


# What a run reads of its request, as columns (an ORM load of the request and its policy cost more than
# the query): the subject for the connectors, and whether the manual gate applies.
_requests = PrivacyRequest.__table__
_RUN_REQUEST = (
    select(_requests.c.id, _requests.c.identity, Policy.action_type)
    .join(Policy, Policy.id == _requests.c.policy_id)
    .where(_requests.c.id == bindparam("request_id"))
)


def _run_claimed(request_id: str, token: str) -> str:
    row = run(_RUN_REQUEST, {"request_id": request_id}).first()
    if row is None:
        raise LookupError(f"No privacy request found with id '{request_id}'.")
    subject = collection.Subject(row.id, row.identity)
    webhooks, inputs = (
        gate.gated_with_inputs(request_id) if gate.applies_to_action(row.action_type) else ([], {})
    )
    missing = gate.missing_webhooks(webhooks, inputs)
    if missing:
        if _finish(request_id, token, "wait_for_input", missing=[m.key for m in missing]):
            tasks.open_for(request_id, [(m.connection.id, m.key) for m in missing])
        db.session.commit()
        return S.REQUIRES_INPUT.value

    with PackageWriter(current_app.config["PACKAGE_CHUNK_BYTES"]) as writer:
        with contextlib.closing(collection.collect(subject)) as automated:
            for key, rows in automated:
                writer.add(key, rows)
        for key, rows in manual_entries(webhooks, inputs):
            writer.add(key, rows)
        writer.attachments = attachment_index(webhooks, inputs)
        writer.save(request_id)
        keys = writer.keys
    db.session.flush()
    finished = _finish(
        request_id,
        token,
        "complete",
        {"finished_processing_at": utcnow()},
        keys=sorted(keys),
        manual_versions={m.key: m.webhook.version for m in webhooks},
    )
    if not finished:
        db.session.rollback()  # someone took the run over; leave everything to them
        return lifecycle.current_status(request_id)
    tasks.close_open(request_id)  # a system disabled while it waited no longer needs its task
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
    _finish(request_id, token, "fail", {"error_message": message}, error=type(exc).__name__)
    db.session.commit()
    return S.ERROR.value
