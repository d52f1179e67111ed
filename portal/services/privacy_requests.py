"""Privacy requests (S2, S4): lookups, the lifecycle operations people start (create, approve, deny,
retry, cancel, resume), and audited access to a request's identity and package.

Status changes themselves are ``models.lifecycle``'s; identities and search terms are in
``services.identities``, lists in ``services.request_lists``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import bindparam, inspect, select, true
from sqlalchemy.orm import Session, joinedload

from portal.execution import dispatch, gate, tasks
from portal.extensions import db, run
from portal.models import (
    AuditEvent,
    ConnectionConfig,
    DatasetConfig,
    ManualWebhook,
    Policy,
    PrivacyRequest,
    RequestStatus,
    lifecycle,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.models.packages import StoredPackage
from portal.services import InvalidState, NotFound, ValidationFailed, reports, text_problem
from portal.services.identities import external_id_index, identity_index, normalize_identity
from portal.services.policies import get_policy
from portal.services.request_lists import done_counts

S = RequestStatus


# --- lookups ---------------------------------------------------------------------------------------


# By primary key, with its policy (the gate, the request page and the package exports all need it); built
# once: ``Session.get`` builds its statement on every call, which costs twice what running it does.
_GET_WITH_POLICY = (
    select(PrivacyRequest)
    .options(joinedload(PrivacyRequest.policy))
    .where(PrivacyRequest.id == bindparam("request_id"))
)


def get_request(request_id: str, *, for_update: bool = False) -> PrivacyRequest:
    if for_update:
        stmt = select(PrivacyRequest).where(PrivacyRequest.id == request_id).with_for_update()
        privacy_request = db.session.scalar(stmt)
    else:
        # A request already loaded (and not expired) in this transaction costs no second query.
        privacy_request = db.session.identity_map.get(Session.identity_key(PrivacyRequest, request_id))
        if privacy_request is None or inspect(privacy_request).expired:
            result = db.session.execute(_GET_WITH_POLICY, {"request_id": request_id})
            privacy_request = result.unique().scalar_one_or_none()
    if privacy_request is None:
        raise request_not_found(request_id)
    return privacy_request


def request_not_found(request_id: str) -> NotFound:
    return NotFound(f"No privacy request found with id '{request_id}'.")


# --- lifecycle -------------------------------------------------------------------------------------


def create_request(
    *,
    identity: dict[str, str | None],
    policy_key: str,
    actor: Actor,
    external_id: str | None = None,
) -> PrivacyRequest:
    """A new request in `pending`; scheduled to run after commit unless approval is required."""
    normalized = normalize_identity(identity.get("email"), identity.get("phone_number"))
    policy = get_policy(policy_key)
    if external_id is not None and (not isinstance(external_id, str) or text_problem(external_id)):
        message = "The external id must be text without null characters or invalid Unicode."
        raise ValidationFailed(message, [(("external_id",), message)])
    external_id = (external_id or "").strip() or None
    if external_id and len(external_id) > 200:
        raise ValidationFailed("The external id is longer than 200 characters.", [(("external_id",), "long")])
    now = utcnow()
    privacy_request = PrivacyRequest(
        external_id=external_id,
        external_id_index=external_id_index(external_id) if external_id else None,
        policy=policy,
        identity=normalized,
        email_index=identity_index(normalized["email"]) if "email" in normalized else None,
        phone_index=identity_index(normalized["phone_number"]) if "phone_number" in normalized else None,
        status=lifecycle.CREATED.value,
        created_at=now,
        due_date=now + timedelta(days=policy.days_to_respond),
    )
    db.session.add(privacy_request)
    db.session.flush()
    record(
        actor,
        "request.created",
        privacy_request_id=privacy_request.id,
        policy=policy.key,
        identity_kinds=sorted(normalized),
    )
    if not current_app.config["REQUIRE_APPROVAL"]:
        dispatch.schedule(privacy_request.id)
    return privacy_request


def _refused(request_id: str, verb: str) -> InvalidState:
    return InvalidState(
        f"Cannot {verb} privacy request '{request_id}': status = {lifecycle.current_status(request_id)}."
    )


def _changed(request_id: str) -> PrivacyRequest:
    """The request as it is now: the lifecycle's UPDATE went around the session's copy."""
    loaded = db.session.identity_map.get(Session.identity_key(PrivacyRequest, request_id))
    if loaded is not None:
        db.session.expire(loaded)
    return get_request(request_id)


def approve_request(request_id: str, actor: Actor) -> PrivacyRequest:
    get_request(request_id)  # 404 before anything else
    values = {"reviewed_by_id": actor.user_id, "reviewed_at": utcnow()}
    if not lifecycle.change(request_id, "approve", actor, values=values):
        raise _refused(request_id, "approve")
    dispatch.schedule(request_id)
    return _changed(request_id)


def deny_request(request_id: str, reason: str | None, actor: Actor) -> PrivacyRequest:
    get_request(request_id)
    reason = (reason or "").strip() or None
    values = {"reviewed_by_id": actor.user_id, "reviewed_at": utcnow(), "denial_reason": reason}
    # The reason is free text written by staff about the request: kept on the request, not in the trail.
    if not lifecycle.change(request_id, "deny", actor, values=values, details={"with_reason": bool(reason)}):
        raise _refused(request_id, "deny")
    return _changed(request_id)


def retry_request(request_id: str, actor: Actor) -> PrivacyRequest:
    get_request(request_id)
    if not lifecycle.change(request_id, "retry", actor):
        raise _refused(request_id, "retry")
    dispatch.schedule(request_id)
    return _changed(request_id)


MAX_CANCEL_REASON = 2000


def cancel_request(request_id: str, actor: Actor, reason: str | None = None) -> PrivacyRequest:
    """Cancel (withdrawn by the subject): its open tasks close; what was entered stays until retention.
    The reason is free text about the request: kept on the request (encrypted, purged), not in the trail."""
    get_request(request_id)
    if reason is not None and (not isinstance(reason, str) or text_problem(reason)):
        raise ValidationFailed("The reason must be plain text.", [(("reason",), "not text")])
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_CANCEL_REASON:
        message = f"The reason must be at most {MAX_CANCEL_REASON} characters."
        raise ValidationFailed(message, [(("reason",), message)])
    details = {"with_reason": bool(reason)}
    if not lifecycle.change(request_id, "cancel", actor, values={"cancel_reason": reason}, details=details):
        raise _refused(request_id, "cancel")
    tasks.close_open(request_id)
    return _changed(request_id)


# What a resume checks first, as columns in one query: the status, the policy's action and the gate's
# progress (the API resumes by id; an ORM load of the request and its policy cost more than the checks).
_PROGRESS = gate.PROGRESS.subquery("progress")
_RESUME_CHECK = (
    select(PrivacyRequest.status, Policy.action_type, _PROGRESS.c.done, _PROGRESS.c.systems)
    .join(Policy, Policy.id == PrivacyRequest.policy_id)
    .join(_PROGRESS, true())
    .where(PrivacyRequest.id == bindparam("request_id"))
)


class ResumeCheck(NamedTuple):
    status: str
    action_type: str
    done: int  # gated webhooks with a current-version entry
    systems: int  # gated webhooks


def resume_check(request_id: str) -> ResumeCheck:
    """What ``resume_request`` decides on, read in one query; NotFound for an unknown request."""
    row = run(_RESUME_CHECK, {"request_id": request_id}).first()
    if row is None:
        raise request_not_found(request_id)
    return ResumeCheck(*row)


def _cannot_resume(request_id: str, status: str | None) -> InvalidState:
    return InvalidState(
        f"Cannot resume privacy request from 'requires_input': privacy request '{request_id}' status = {status}."
    )


def resume_request(request_id: str, actor: Actor) -> None:
    """Resume from `requires_input` once the gate passes; the status flip is a compare-and-swap."""
    check = resume_check(request_id)
    if check.status != S.REQUIRES_INPUT:
        raise _cannot_resume(request_id, check.status)
    # Counting is enough when every input is there (the usual case); find which one only when not.
    if gate.applies_to_action(check.action_type) and check.done < check.systems:
        missing = gate.missing_webhooks(*gate.gated_with_inputs(request_id))
        if missing:
            raise InvalidState(
                "Cannot resume privacy request. No data cached for privacy_request_id "
                f"'{request_id}' for connection config '{missing[0].key}'"
            )
    if not lifecycle.change(request_id, "resume", actor):  # resumed by someone else meanwhile
        raise _cannot_resume(request_id, lifecycle.current_status(request_id))
    loaded = db.session.identity_map.get(Session.identity_key(PrivacyRequest, request_id))
    if loaded is not None:
        db.session.expire(loaded)  # the UPDATE went around it: read again when next used
    dispatch.schedule(request_id)


def reevaluate_waiting(actor: Actor) -> list[str]:
    """After webhooks change: resume every `requires_input` request whose gate now passes (S4)."""
    webhooks = gate.gated_webhooks()
    waiting = select(PrivacyRequest.id).where(PrivacyRequest.status == S.REQUIRES_INPUT)
    if webhooks:
        # Counted in the database: there may be hundreds of thousands of waiting requests.
        ready = list(done_counts(waiting, webhooks, at_least=len(webhooks)))
    else:
        ready = list(db.session.scalars(waiting))
    resumed = []
    for request_id in ready:
        if lifecycle.change(request_id, "resume", actor, details={"reason": "webhooks changed"}):
            dispatch.schedule(request_id)
            resumed.append(request_id)
    return resumed


# --- identity and package access (audited) ---------------------------------------------------------


def purged_message(privacy_request: PrivacyRequest, what: str) -> str:
    return (
        f"The {what} of privacy request '{privacy_request.id}' was purged on "
        f"{privacy_request.purged_at:%Y-%m-%d} under the retention policy."
    )


def identities_listed(summaries: list, actor: Actor, **details: Any) -> None:
    """Audits that these requests' identities were handed out (the API's ``include_identities``), one
    event per request as a reveal on the request page is; purged requests have none to hand out."""
    for summary in summaries:
        if summary.purged_at is None:
            record(actor, "request.identity_revealed", privacy_request_id=summary.id, **details)


def reveal_identity(privacy_request: PrivacyRequest, actor: Actor, **details: Any) -> dict[str, str]:
    """The request's identity (email, phone) and external id, audited (``details``: where it was shown)."""
    if privacy_request.purged_at is not None:
        raise NotFound(purged_message(privacy_request, "identity"))
    record(actor, "request.identity_revealed", privacy_request_id=privacy_request.id, **details)
    revealed = dict(privacy_request.identity)
    if privacy_request.external_id is not None:
        revealed["external_id"] = privacy_request.external_id
    return revealed


def get_package(
    privacy_request: PrivacyRequest, actor: Actor, *, action: str | None = "package.viewed", **details: Any
) -> StoredPackage:
    """The final package, opened for reading and audited as ``action`` (``details``, e.g.
    ``format="zip"``, carry no PII). Its rows are read later, chunk by chunk, even after the caller has
    committed the audit event (``StoredPackage`` holds no ORM objects); a package that cannot be decrypted
    raises ``DecryptionError`` here, before anything is audited or sent."""
    if privacy_request.purged_at is not None:
        raise NotFound(purged_message(privacy_request, "access package"))
    if privacy_request.status != S.COMPLETE or privacy_request.package is None:
        raise NotFound(
            f"No access package for privacy request '{privacy_request.id}' yet: it is not complete."
        )
    package = privacy_request.package.contents()
    if action is not None:  # None: the caller audits what it reads (one file: ``attachments.download``)
        record(actor, action, privacy_request_id=privacy_request.id, **details)
    return package


# --- names, not keys ------------------------------------------------------------------------------


def package_names(keys: list[str]) -> reports.PackageNames:
    """What a person reads instead of a package's keys, from the connections as they are now: a manual
    system's name and each field's name (``pii_field``) by package label; for collected data
    ``"<dataset>:<collection>"``, the database connection's name and the collection. Keys that name
    nothing (a connection deleted since) are shown as they are."""
    if not keys:
        return reports.PackageNames()
    systems: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    manual = [key for key in keys if ":" not in key]
    collected = {key.split(":", 1)[0] for key in keys if ":" in key}
    if manual:
        rows = db.session.execute(
            select(ConnectionConfig.key, ConnectionConfig.name, ManualWebhook.fields)
            .outerjoin(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
            .where(ConnectionConfig.key.in_(manual))
        )
        for key, name, definitions in rows:
            systems[key] = name
            fields[key] = {f["dsr_package_label"]: f["pii_field"] for f in definitions or ()}
    if collected:
        databases = dict(
            db.session.execute(
                select(DatasetConfig.fides_key, ConnectionConfig.name)
                .join(ConnectionConfig, ConnectionConfig.id == DatasetConfig.connection_config_id)
                .where(DatasetConfig.fides_key.in_(collected))
            ).all()
        )
        for key in keys:
            dataset, _, collection = key.partition(":")
            if collection and dataset in databases:
                systems[key] = f"{databases[dataset]}: {collection}"
    return reports.PackageNames(systems, fields)


# --- search terms and the request timeline ---------------------------------------------------------


_REQUEST_EVENTS = (
    select(
        AuditEvent.id,
        AuditEvent.created_at,
        AuditEvent.actor_label,
        AuditEvent.action,
        AuditEvent.connection_key,
        AuditEvent.details,
    )
    .where(AuditEvent.privacy_request_id == bindparam("request_id"))
    .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    .limit(bindparam("limit"))
)  # built once: every request page reads it


def request_events(request_id: str, limit: int = 200) -> list[Any]:
    """The audit trail of one request, newest first (one query; rows with AuditEvent's attribute names)."""
    return list(run(_REQUEST_EVENTS, {"request_id": request_id, "limit": limit}))
