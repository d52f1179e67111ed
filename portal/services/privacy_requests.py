"""Privacy requests (S2, S4): creation, approval, resume, retry, queues and packages."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import defer, joinedload

from portal.crypto import keyring
from portal.execution import dispatch, gate
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ManualInput,
    ManualWebhook,
    Policy,
    PrivacyRequest,
    RequestStatus,
    utcnow,
)
from portal.models.packages import StoredPackage
from portal.services import InvalidState, NotFound, ValidationFailed, text_problem
from portal.services.audit import Actor, record

S = RequestStatus
PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")


# --- identities ------------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Invalid email address: {exc}", [(("identity", "email"), str(exc))]) from exc


def normalize_phone(phone: str) -> str:
    compact = re.sub(r"[\s().-]", "", phone)
    if not PHONE_RE.match(compact):
        message = "Invalid phone number: use digits, optionally starting with + (6 to 15 digits)."
        raise ValidationFailed(message, [(("identity", "phone_number"), message)])
    return compact


def normalize_identity(email: str | None, phone_number: str | None) -> dict[str, str]:
    for name, value in (("email", email), ("phone_number", phone_number)):
        if value is not None and not isinstance(value, str):
            message = f"The {name.replace('_', ' ')} must be text."
            raise ValidationFailed(message, [(("identity", name), message)])
    identity: dict[str, str] = {}
    if email and email.strip():
        identity["email"] = normalize_email(email)
    if phone_number and phone_number.strip():
        identity["phone_number"] = normalize_phone(phone_number)
    if not identity:
        message = "Provide an email address or a phone number for the data subject."
        raise ValidationFailed(message, [(("identity",), message)])
    return identity


def identity_index(value: str) -> str:
    return keyring().blind_index(value)


def normalized_identity(term: str) -> str | None:
    """An email address or phone number as stored (normalised), or None when ``term`` is neither."""
    term = term.strip()
    try:
        return normalize_email(term) if "@" in term else normalize_phone(term)
    except ValidationFailed:
        return None


def identity_hash_for(term: str) -> str:
    """The blind index to search for an email or phone number as typed (normalised when valid)."""
    value = normalized_identity(term)
    # An invalid term hashes as typed: it matches nothing stored, which is the right answer.
    return identity_index(value if value is not None else term.strip().lower())


# --- lookups ---------------------------------------------------------------------------------------


def get_request(request_id: str, *, for_update: bool = False) -> PrivacyRequest:
    if for_update:
        stmt = select(PrivacyRequest).where(PrivacyRequest.id == request_id).with_for_update()
        privacy_request = db.session.scalar(stmt)
    else:
        # By primary key: a request already loaded in this transaction costs no second query.
        privacy_request = db.session.get(PrivacyRequest, request_id)
    if privacy_request is None:
        raise NotFound(f"No privacy request found with id '{request_id}'.")
    return privacy_request


def get_policy(policy_key: str) -> Policy:
    valid = isinstance(policy_key, str) and not text_problem(policy_key)
    policy = db.session.scalar(select(Policy).where(Policy.key == policy_key)) if valid else None
    if policy is None:
        raise NotFound(f"Policy with key {policy_key} does not exist.")
    return policy


def list_policies() -> list[Policy]:
    return list(db.session.scalars(select(Policy).order_by(Policy.name)))


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
        policy=policy,
        identity=normalized,
        email_index=identity_index(normalized["email"]) if "email" in normalized else None,
        phone_index=identity_index(normalized["phone_number"]) if "phone_number" in normalized else None,
        status=S.PENDING.value,
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


def approve_request(request_id: str, actor: Actor) -> PrivacyRequest:
    privacy_request = _compare_and_swap(request_id, S.PENDING, S.APPROVED, actor, "approve")
    privacy_request.reviewed_by_id = actor.user_id
    privacy_request.reviewed_at = utcnow()
    record(actor, "request.approved", privacy_request_id=request_id)
    dispatch.schedule(request_id)
    return privacy_request


def deny_request(request_id: str, reason: str | None, actor: Actor) -> PrivacyRequest:
    privacy_request = _compare_and_swap(request_id, S.PENDING, S.DENIED, actor, "deny")
    privacy_request.reviewed_by_id = actor.user_id
    privacy_request.reviewed_at = utcnow()
    privacy_request.denial_reason = (reason or "").strip() or None
    # The reason is free text written by staff about the request, kept on the request, not in the trail.
    record(
        actor,
        "request.denied",
        privacy_request_id=request_id,
        with_reason=bool(privacy_request.denial_reason),
    )
    return privacy_request


def retry_request(request_id: str, actor: Actor) -> PrivacyRequest:
    privacy_request = _compare_and_swap(request_id, S.ERROR, S.APPROVED, actor, "retry")
    record(actor, "request.retried", privacy_request_id=request_id)
    dispatch.schedule(request_id)
    return privacy_request


def cancel_request(request_id: str, actor: Actor) -> PrivacyRequest:
    privacy_request = get_request(request_id)
    if privacy_request.status not in (S.PENDING, S.APPROVED, S.REQUIRES_INPUT, S.ERROR, S.PAUSED):
        raise InvalidState(
            f"Cannot cancel privacy request '{request_id}': status = {privacy_request.status}."
        )
    privacy_request = _compare_and_swap(request_id, S(privacy_request.status), S.CANCELED, actor, "cancel")
    record(actor, "request.canceled", privacy_request_id=request_id)
    return privacy_request


def _compare_and_swap(
    request_id: str, expected: RequestStatus, new: RequestStatus, actor: Actor, verb: str
) -> PrivacyRequest:
    """Flip the status only if it is still ``expected``; concurrent callers: exactly one wins."""
    get_request(request_id)  # 404 before anything else
    result = db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, PrivacyRequest.status == expected)
        .values(status=new.value, updated_at=utcnow(), runner_claim=None)
        .execution_options(synchronize_session=False)
    )
    privacy_request = db.session.get(PrivacyRequest, request_id)
    db.session.refresh(privacy_request)
    if result.rowcount != 1:
        raise InvalidState(
            f"Cannot {verb} privacy request '{request_id}': status = {privacy_request.status}."
        )
    return privacy_request


def resume_request(request_id: str, actor: Actor) -> PrivacyRequest:
    """Resume from `requires_input` once the gate passes; the status flip is a compare-and-swap."""
    privacy_request = get_request(request_id)
    if privacy_request.status != S.REQUIRES_INPUT:
        raise InvalidState(
            "Cannot resume privacy request from 'requires_input': "
            f"privacy request '{request_id}' status = {privacy_request.status}."
        )
    missing = []
    if gate.applies_to(privacy_request):
        webhooks = gate.gated_webhooks()
        # Counting is enough when every input is there (the usual case); find which one only when not.
        if _done_counts([request_id], webhooks).get(request_id, 0) < len(webhooks):
            missing = gate.missing_webhooks(request_id, webhooks)
    if missing:
        raise InvalidState(
            "Cannot resume privacy request. No data cached for privacy_request_id "
            f"'{request_id}' for connection config '{missing[0].key}'"
        )
    result = db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, PrivacyRequest.status == S.REQUIRES_INPUT)
        .values(status=S.IN_PROCESSING.value, runner_claim=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(privacy_request)
    if result.rowcount != 1:  # someone else resumed it between our read and our write
        raise InvalidState(
            "Cannot resume privacy request from 'requires_input': "
            f"privacy request '{request_id}' status = {privacy_request.status}."
        )
    record(actor, "request.resumed", privacy_request_id=request_id)
    dispatch.schedule(request_id)
    return privacy_request


def reevaluate_waiting(actor: Actor) -> list[str]:
    """After webhooks change: resume every `requires_input` request whose gate now passes (S4)."""
    webhooks = gate.gated_webhooks()
    waiting = select(PrivacyRequest.id).where(PrivacyRequest.status == S.REQUIRES_INPUT)
    if webhooks:
        # Counted in the database: there may be hundreds of thousands of waiting requests.
        ready = list(_done_counts(waiting, webhooks, at_least=len(webhooks)))
    else:
        ready = list(db.session.scalars(waiting))
    resumed = []
    for request_id in ready:
        result = db.session.execute(
            update(PrivacyRequest)
            .where(PrivacyRequest.id == request_id, PrivacyRequest.status == S.REQUIRES_INPUT)
            .values(status=S.IN_PROCESSING.value, runner_claim=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            record(actor, "request.resumed", privacy_request_id=request_id, reason="webhooks changed")
            dispatch.schedule(request_id)
            resumed.append(request_id)
    return resumed


# --- queues and progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _done_counts(
    requests: list[str] | Select, webhooks: list[gate.GatedWebhook], at_least: int = 1
) -> dict[str, int]:
    """How many gated webhooks each request has a current-version input for (one query).

    ``requests``: ids, or a SELECT of ids. Only requests with at least ``at_least`` are returned.
    """
    if not webhooks or (isinstance(requests, list) and not requests):
        return {}
    current = (ManualWebhook.connection_config_id == ManualInput.connection_config_id) & (
        ManualWebhook.version == ManualInput.version
    )
    rows = db.session.execute(
        select(ManualInput.privacy_request_id, func.count())
        .join(ManualWebhook, current)
        .where(
            ManualInput.privacy_request_id.in_(requests),
            ManualInput.connection_config_id.in_([g.connection.id for g in webhooks]),
        )
        .group_by(ManualInput.privacy_request_id)
        .having(func.count() >= at_least)
    )
    return dict(rows.all())


def progress(request_ids: list[str]) -> tuple[dict[str, int], int]:
    """(done per request, total systems) for a page of requests, in two queries."""
    webhooks = gate.gated_webhooks()
    return _done_counts(request_ids, webhooks), len(webhooks)


def search_condition(term: str):
    """A request id, an external id, an email or a phone number (matched through blind indexes)."""
    term = term.strip()
    conditions = [PrivacyRequest.id == term, PrivacyRequest.external_id == term]
    if normalized_identity(term) is not None:
        column = PrivacyRequest.email_index if "@" in term else PrivacyRequest.phone_index
        conditions.append(column == identity_hash_for(term))
    return or_(*conditions)


def list_requests(
    *,
    statuses: list[str] | None = None,
    search: str | None = None,
    identity_hash: str | None = None,
    request_id: str | None = None,
    page: int = 1,
    size: int = 50,
    order: str = "due",
    with_identity: bool = True,
) -> Page:
    """Paginated in SQL. ``order``: ``due`` (soonest/overdue first), ``newest`` or ``completed`` (latest).

    ``with_identity=False`` leaves the identities encrypted (not loaded) when the caller does not show them.
    The total is exact up to ``EXACT_COUNT_LIMIT``; above, see ``_count``.
    """
    stmt: Select = select(PrivacyRequest.id)
    count = select(func.count()).select_from(PrivacyRequest)
    filters = []
    if statuses:
        unknown = set(statuses) - {s.value for s in S}
        if unknown:
            message = f"Unknown status: {', '.join(sorted(unknown))}."
            raise ValidationFailed(message, [(("status",), message)])
        filters.append(PrivacyRequest.status.in_(statuses))
    if search:
        filters.append(search_condition(search))
    if request_id:
        filters.append(PrivacyRequest.id == request_id)
    if identity_hash:
        filters.append(
            or_(PrivacyRequest.email_index == identity_hash, PrivacyRequest.phone_index == identity_hash)
        )
    for condition in filters:
        stmt, count = stmt.where(condition), count.where(condition)
    if order == "newest":
        # id descending too, so the (created_at, id) index serves the order read backwards.
        stmt = stmt.order_by(PrivacyRequest.created_at.desc(), PrivacyRequest.id.desc())
    elif order == "completed":
        stmt = stmt.order_by(
            PrivacyRequest.finished_processing_at.desc().nulls_last(),
            PrivacyRequest.created_at.desc(),
            PrivacyRequest.id,
        )
    else:
        stmt = stmt.order_by(PrivacyRequest.due_date, PrivacyRequest.id)
    page = max(1, page)
    size = max(1, min(size, 100))
    # The page's ids first, from the index alone; then only those rows. Skipping (page - 1) * size rows
    # this way reads index entries, not whole rows (page 500: 5 ms instead of 150 ms on SQLite).
    ids = list(db.session.scalars(stmt.limit(size).offset((page - 1) * size)))
    rows = (
        select(PrivacyRequest)
        .options(joinedload(PrivacyRequest.policy), joinedload(PrivacyRequest.reviewed_by))
        .where(PrivacyRequest.id.in_(ids))
    )
    if not with_identity:
        rows = rows.options(defer(PrivacyRequest.identity))
    by_id = {pr.id: pr for pr in db.session.scalars(rows)} if ids else {}
    items = [by_id[i] for i in ids if i in by_id]
    key = (statuses and tuple(sorted(statuses)), search, identity_hash, request_id)
    return Page(items, _count(count, key), page, size)


# Totals above this are refreshed every LARGE_COUNT_SECONDS per process, not on every page: counting
# hundreds of thousands of rows costs more than the page itself and grows with the table (issue 9).
EXACT_COUNT_LIMIT = 1_000
LARGE_COUNT_SECONDS = 60.0
_large_counts: dict[tuple, tuple[float, int]] = {}


def _count(count: Select, key: tuple) -> int:
    """The exact count when it is small; a large one may be up to LARGE_COUNT_SECONDS old."""
    key = (str(db.engine.url), *key)
    now = time.monotonic()
    cached = _large_counts.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    total = db.session.scalar(count)
    if total > EXACT_COUNT_LIMIT:
        if len(_large_counts) > 1_000:
            _large_counts.clear()
        _large_counts[key] = (now + LARGE_COUNT_SECONDS, total)
    return total


# --- identity and package access (audited) ---------------------------------------------------------


def purged_message(privacy_request: PrivacyRequest, what: str) -> str:
    return (
        f"The {what} of privacy request '{privacy_request.id}' was purged on "
        f"{privacy_request.purged_at:%Y-%m-%d} under the retention policy."
    )


def reveal_identity(privacy_request: PrivacyRequest, actor: Actor) -> dict[str, str]:
    if privacy_request.purged_at is not None:
        raise NotFound(purged_message(privacy_request, "identity"))
    record(actor, "request.identity_revealed", privacy_request_id=privacy_request.id)
    return dict(privacy_request.identity)


def get_package(
    privacy_request: PrivacyRequest, actor: Actor, *, action: str = "package.viewed", **details: Any
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
    record(actor, action, privacy_request_id=privacy_request.id, **details)
    return package


# --- search terms and the request timeline ---------------------------------------------------------


def classify_search(term: str) -> dict[str, str]:
    """Turn a search term into query parameters that never carry personal data.

    A request id or external id that exists → ``{"q": term}``; an email or phone number → ``{"identity":
    keyed hash}`` (for ``list_requests(identity_hash=...)``); an empty term → ``{}``. Anything else could be
    personal data (a name), so it is refused rather than echoed into a URL.
    """
    term = term.strip()
    if not term:
        return {}
    known = db.session.scalar(
        select(PrivacyRequest.id)
        .where(or_(PrivacyRequest.id == term, PrivacyRequest.external_id == term))
        .limit(1)
    )
    if known is not None:
        return {"q": term}
    if "@" in term:
        normalize_email(term)  # an invalid address says why (ValidationFailed)
    if normalized_identity(term) is not None:
        return {"identity": identity_hash_for(term)}
    raise NotFound(
        "No request has that request id or external id, and it is not an email address or phone number."
    )


def request_events(request_id: str, limit: int = 200) -> list[Any]:
    """The audit trail of one request, newest first (one query; rows with AuditEvent's attribute names)."""
    return list(
        db.session.execute(
            select(
                AuditEvent.id,
                AuditEvent.created_at,
                AuditEvent.actor_label,
                AuditEvent.action,
                AuditEvent.connection_key,
                AuditEvent.details,
            )
            .where(AuditEvent.privacy_request_id == request_id)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )
