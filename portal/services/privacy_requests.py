"""Privacy requests (S2, S4): creation, approval, resume, retry, queues and packages."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import (
    Select,
    String,
    any_,
    bindparam,
    func,
    inspect,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, joinedload

from portal.crypto import Keyring, keyring
from portal.execution import dispatch, gate
from portal.extensions import db, run
from portal.models import (
    AuditEvent,
    ManualInput,
    Policy,
    PrivacyRequest,
    RequestStatus,
    User,
    utcnow,
)
from portal.models.packages import StoredPackage
from portal.services import InvalidState, NotFound, ValidationFailed, text_problem
from portal.services.audit import Actor, change_and_record, record

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


EXTERNAL_ID_PURPOSE = "external_id"


def external_id_index(external_id: str, ring: Keyring | None = None) -> str:
    """The blind index of an external id: surrounding spaces and case do not matter to a search."""
    return (ring or keyring()).blind_index(external_id.strip().casefold(), purpose=EXTERNAL_ID_PURPOSE)


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


def identity_search_hash(email: str | None, phone_number: str | None) -> str:
    """The keyed hash to search for one identity, checked as ``create_request`` checks it (a clear 422
    for an invalid one, where the GET filter's ``identity_hash_for`` silently matches nothing)."""
    given = [value for value in (email, phone_number) if value and value.strip()]
    if len(given) != 1:
        message = "Search for one identity: an email address or a phone number."
        raise ValidationFailed(message, [(("identity",), message)])
    (value,) = normalize_identity(email, phone_number).values()
    return identity_index(value)


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


_STATUS_NOW = select(PrivacyRequest.status).where(PrivacyRequest.id == bindparam("request_id"))


def current_status(request_id: str) -> str | None:
    """The request's status as stored now (None: no such request), without loading the request."""
    return run(_STATUS_NOW, {"request_id": request_id}).scalar()


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
        external_id_index=external_id_index(external_id) if external_id else None,
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


_RESUME = (
    update(PrivacyRequest.__table__)
    .where(
        PrivacyRequest.__table__.c.id == bindparam("request_id"),
        PrivacyRequest.__table__.c.status == S.REQUIRES_INPUT.value,
    )
    .values(status=S.IN_PROCESSING.value, runner_claim=None, updated_at=bindparam("now"))
)  # a compare-and-swap, built once (see ``runner._STATEMENTS``)


# What a resume checks first, as columns in one query: the status, the policy's action and the gate's
# progress (the API resumes by id; an ORM load of the request and its policy cost more than the checks,
# issue 9).
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
    params = {"request_id": request_id, "now": utcnow()}
    if not change_and_record(_RESUME, params, actor, "request.resumed", privacy_request_id=request_id):
        raise _cannot_resume(request_id, current_status(request_id))  # resumed by someone else meanwhile
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
    # With ``list_requests(with_progress=True)``: the gated webhooks, and done per item id.
    systems: int = 0
    done: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _current_inputs(current: tuple[tuple[int, int], ...]):
    """Inputs at the current version of a gated webhook: ``current`` are its (connection, version) pairs,
    written into the statement as integer literals rather than bound — expanding 100 bound values on every
    call cost as much as the query (issue 9). They change only when an admin edits a manual system."""
    pairs = ", ".join(f"({int(connection)}, {int(version)})" for connection, version in current)
    return text(f"(manual_inputs.connection_config_id, manual_inputs.version) IN (VALUES {pairs})")


def _done_counts_query(ids_condition, current: tuple[tuple[int, int], ...]) -> Select:
    return (
        select(ManualInput.privacy_request_id, func.count())
        .where(ids_condition, _current_inputs(current))
        .group_by(ManualInput.privacy_request_id)
        .having(func.count() >= bindparam("at_least"))
    )


# A page's counts, built once per dialect and set of current pairs (building a statement costs more than
# running it; a handful of sets ever exist). On PostgreSQL the page's ids go as one array parameter
# (``= ANY``) rather than 50 expanded ones.
_DONE_COUNTS: dict[tuple[str, tuple[tuple[int, int], ...]], Select] = {}


def _done_counts_statement(dialect: str, current: tuple[tuple[int, int], ...]) -> Select:
    statement = _DONE_COUNTS.get((dialect, current))
    if statement is None:
        if len(_DONE_COUNTS) > 64:
            _DONE_COUNTS.clear()
        ids = (
            ManualInput.privacy_request_id == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
            if dialect == "postgresql"
            else ManualInput.privacy_request_id.in_(bindparam("ids", expanding=True))
        )
        statement = _DONE_COUNTS[(dialect, current)] = _done_counts_query(ids, current)
    return statement


def _done_counts(
    requests: list[str] | Select, webhooks: list[gate.GatedWebhook], at_least: int = 1
) -> dict[str, int]:
    """How many gated webhooks each request has a current-version input for (one query).

    ``requests``: ids, or a SELECT of ids. Only requests with at least ``at_least`` are returned.
    """
    if not webhooks or (isinstance(requests, list) and not requests):
        return {}
    # (connection, current version) pairs rather than a join to manual_webhooks: half the time on a
    # page of 50 waiting requests, since each has dozens of inputs to match.
    current = tuple((g.connection.id, g.webhook.version) for g in webhooks)
    if isinstance(requests, list):
        statement = _done_counts_statement(db.session.get_bind().dialect.name, current)
        rows = run(statement, {"ids": requests, "at_least": at_least})
    else:
        statement = _done_counts_query(ManualInput.privacy_request_id.in_(requests), current)
        rows = run(statement, {"at_least": at_least})
    return dict(rows.all())


def search_condition(term: str):
    """A request id, an external id, an email or a phone number (matched through blind indexes)."""
    term = term.strip()
    conditions = [PrivacyRequest.id == term, PrivacyRequest.external_id_index == external_id_index(term)]
    if normalized_identity(term) is not None:
        column = PrivacyRequest.email_index if "@" in term else PrivacyRequest.phone_index
        conditions.append(column == identity_hash_for(term))
    return or_(*conditions)


@dataclass(frozen=True, slots=True)
class PolicyRef:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class ReviewerRef:
    email: str


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One request as lists show it; attribute names match ``PrivacyRequest`` so templates take either."""

    id: str
    external_id: str | None
    status: str
    created_at: Any
    due_date: Any
    started_processing_at: Any
    finished_processing_at: Any
    reviewed_at: Any
    denial_reason: str | None
    error_message: str | None
    purged_at: Any
    policy_key: str
    policy_name: str
    reviewer_email: str | None
    identity: dict[str, Any] | None = None

    @property
    def policy(self) -> PolicyRef:
        return PolicyRef(self.policy_key, self.policy_name)

    @property
    def reviewed_by(self) -> ReviewerRef | None:
        return ReviewerRef(self.reviewer_email) if self.reviewer_email is not None else None


# Policy and reviewer as correlated lookups by primary key, not joins: a join lets SQLite's planner pick
# another index than the one serving the list's order, and sort the whole status instead of reading 50.
_SUMMARY_COLUMNS = (
    PrivacyRequest.id,
    PrivacyRequest.external_id,
    PrivacyRequest.status,
    PrivacyRequest.created_at,
    PrivacyRequest.due_date,
    PrivacyRequest.started_processing_at,
    PrivacyRequest.finished_processing_at,
    PrivacyRequest.reviewed_at,
    PrivacyRequest.denial_reason,
    PrivacyRequest.error_message,
    PrivacyRequest.purged_at,
    select(Policy.key).where(Policy.id == PrivacyRequest.policy_id).scalar_subquery().label("policy_key"),
    select(Policy.name).where(Policy.id == PrivacyRequest.policy_id).scalar_subquery().label("policy_name"),
    select(User.email)
    .where(User.id == PrivacyRequest.reviewed_by_id)
    .scalar_subquery()
    .label("reviewer_email"),
)


# What the queue shows of a request (``list_requests(lean=True)``); the other columns are read as NULL.
_LEAN_COLUMNS = {"id", "external_id", "status", "due_date", "policy_name"}


def _summary_select(*extra, lean: bool = False) -> Select:
    if not lean:
        return select(*_SUMMARY_COLUMNS, *extra)
    columns = [c if c.key in _LEAN_COLUMNS else null().label(c.key) for c in _SUMMARY_COLUMNS]
    return select(*columns, *extra)


# The summaries of given ids, built once (building a statement costs more than running it).
_SUMMARY = _summary_select(PrivacyRequest.identity).where(
    PrivacyRequest.id.in_(bindparam("ids", expanding=True))
)
_SUMMARY_NO_IDENTITY = _summary_select().where(PrivacyRequest.id.in_(bindparam("ids", expanding=True)))


def summaries(request_ids: list[str], *, with_identity: bool = False) -> list[RequestSummary]:
    """These requests as lists show them, in the order given (unknown ids are left out); one query."""
    if not request_ids:
        return []
    statement = _SUMMARY if with_identity else _SUMMARY_NO_IDENTITY
    by_id = {row[0]: RequestSummary(*row) for row in run(statement, {"ids": request_ids})}
    return [by_id[i] for i in request_ids if i in by_id]


# Up to this offset a page is read in one query; deeper, its ids first (see ``list_requests``).
DIRECT_PAGE_OFFSET = 1_000


class ListStatements(NamedTuple):
    ids: Select  # the page's ids alone (deep pages)
    count: Select
    summaries: Select  # the page's summaries directly (near pages)
    summaries_with_identity: Select


def _done_column(current: tuple[tuple[int, int], ...]):
    """A request's count of current-version inputs (``current``: the gated (connection, version) pairs),
    as a correlated column: a near page reads its progress with its rows, in the same query (issue 9)."""
    return (
        select(func.count())
        .select_from(ManualInput)
        .where(ManualInput.privacy_request_id == PrivacyRequest.id, _current_inputs(current))
        .scalar_subquery()
        .label("done")
    )


def _list_statements(
    statuses: bool,
    request_id: bool,
    identity: bool,
    external_id: bool,
    order: str,
    search: str | None = None,
    progress: tuple[tuple[int, int], ...] = (),
    lean: bool = False,
) -> ListStatements:
    """The statements of one shape of filters and order; values are bound when executed.

    ``progress``: the gated (connection, version) pairs, when the summaries should end with a done count.
    ``lean``: summaries with the queue's columns only (see ``list_requests``).
    """
    filters = []
    if statuses:
        filters.append(PrivacyRequest.status.in_(bindparam("statuses", expanding=True)))
    if search:
        filters.append(search_condition(search))
    if request_id:
        filters.append(PrivacyRequest.id == bindparam("request_id"))
    if identity:
        filters.append(
            or_(
                PrivacyRequest.email_index == bindparam("identity"),
                PrivacyRequest.phone_index == bindparam("identity"),
            )
        )
    if external_id:
        filters.append(PrivacyRequest.external_id_index == bindparam("external_id"))
    if order == "newest":
        # id descending too, so the (created_at, id) index serves the order read backwards.
        ordering = (PrivacyRequest.created_at.desc(), PrivacyRequest.id.desc())
    elif order == "completed":
        # Every column descending: the (status, finished_processing_at, created_at, id) index read
        # backwards. Completed requests always have finished_processing_at (the runner sets it).
        ordering = (
            PrivacyRequest.finished_processing_at.desc(),
            PrivacyRequest.created_at.desc(),
            PrivacyRequest.id.desc(),
        )
    else:
        ordering = (PrivacyRequest.due_date, PrivacyRequest.id)

    def page_of(stmt: Select) -> Select:
        return stmt.where(*filters).order_by(*ordering).limit(bindparam("limit")).offset(bindparam("offset"))

    done = (_done_column(progress),) if progress else ()
    return ListStatements(
        ids=page_of(select(PrivacyRequest.id)),
        count=select(func.count()).select_from(PrivacyRequest).where(*filters),
        summaries=page_of(_summary_select(*done, lean=lean)),
        summaries_with_identity=page_of(_summary_select(PrivacyRequest.identity, *done, lean=lean)),
    )


# Every list page runs one of a handful of shapes: each is built once (building costs more than running).
_shared_list_statements = functools.lru_cache(maxsize=64)(_list_statements)


def list_requests(
    *,
    statuses: list[str] | None = None,
    search: str | None = None,
    identity_hash: str | None = None,
    external_id_hash: str | None = None,
    request_id: str | None = None,
    page: int = 1,
    size: int = 50,
    order: str = "due",
    with_identity: bool = True,
    with_progress: bool = False,
    lean: bool = False,
) -> Page:
    """Paginated in SQL. ``order``: ``due`` (soonest/overdue first), ``newest`` or ``completed`` (latest).

    Items are ``RequestSummary`` rows (read-only, the columns lists show), not ORM objects: loading 50
    entities with their policy and reviewer cost more than the rest of the page. ``with_identity=False``
    leaves the identities encrypted (not read) when the caller does not show them. ``with_progress``
    fills the page's ``systems`` (gated webhooks) and ``done`` (id → how many have a current-version
    input, absent when none), on near pages in the same query. ``lean``: near pages read only what the
    queue shows (id, external id, status, due date, policy name, identity); the items' other fields are None.
    ``identity_hash`` and ``external_id_hash`` are blind indexes (``identity_hash_for``, ``external_id_index``).
    The total is exact up to ``EXACT_COUNT_LIMIT``; above, see ``_count``.
    """
    if statuses:
        unknown = set(statuses) - {s.value for s in S}
        if unknown:
            message = f"Unknown status: {', '.join(sorted(unknown))}."
            raise ValidationFailed(message, [(("status",), message)])
    webhooks = gate.gated_webhooks() if with_progress else []
    current = tuple((g.connection.id, g.webhook.version) for g in webhooks)
    shape = (bool(statuses), bool(request_id), bool(identity_hash), bool(external_id_hash), order)
    # A search term shapes the statement (id, external id or an identity index): built for that call only.
    if search:
        statements = _list_statements(*shape, search, current, lean)
    else:
        statements = _shared_list_statements(*shape, None, current, lean)
    page = max(1, page)
    size = max(1, min(size, 100))
    params = {
        "statuses": statuses,
        "request_id": request_id,
        "identity": identity_hash,
        "external_id": external_id_hash,
        "limit": size,
        "offset": (page - 1) * size,
    }
    done: dict[str, int] = {}
    if params["offset"] <= DIRECT_PAGE_OFFSET:
        direct = statements.summaries_with_identity if with_identity else statements.summaries
        rows = run(direct, params).all()
        if current:  # the done count is the last column
            done = {row[0]: row[-1] for row in rows if row[-1]}
            rows = [row[:-1] for row in rows]
        items = [RequestSummary(*row) for row in rows]
    else:
        # Deep pages: the page's ids first, from the index alone; then only those rows. Skipping rows
        # this way reads index entries, not whole rows (page 500: 5 ms instead of 150 ms on SQLite).
        items = summaries(list(run(statements.ids, params).scalars()), with_identity=with_identity)
        if current:
            done = _done_counts([item.id for item in items], webhooks)
    key = (statuses and tuple(sorted(statuses)), search, identity_hash, external_id_hash, request_id)
    return Page(items, _count(statements.count, params, key), page, size, len(webhooks), done)


# Totals above this are refreshed every LARGE_COUNT_SECONDS per process, not on every page: counting
# hundreds of thousands of rows costs more than the page itself and grows with the table (issue 9).
EXACT_COUNT_LIMIT = 1_000
LARGE_COUNT_SECONDS = 60.0
_large_counts: dict[tuple, tuple[float, int]] = {}


def _count(count: Select, params: dict[str, Any], key: tuple) -> int:
    """The exact count when it is small; a large one may be up to LARGE_COUNT_SECONDS old."""
    key = (str(db.engine.url), *key)
    now = time.monotonic()
    cached = _large_counts.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    total = run(count, params).scalar()
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

    A request id that exists → ``{"q": term}``; an external id that exists (in any case) → ``{"external":
    keyed hash}`` (for ``list_requests(external_id_hash=...)``); an email or phone number → ``{"identity":
    keyed hash}`` (for ``list_requests(identity_hash=...)``); an empty term → ``{}``. Anything else could be
    personal data (a name), so it is refused rather than echoed into a URL. An email address is always
    searched by its hash, even when an external id equals it.
    """
    term = term.strip()
    if not term:
        return {}
    if "@" in term:
        return {"identity": identity_index(normalize_email(term))}  # an invalid address says why
    if db.session.scalar(select(PrivacyRequest.id).where(PrivacyRequest.id == term)) is not None:
        return {"q": term}
    external = external_id_index(term)
    known = select(PrivacyRequest.id).where(PrivacyRequest.external_id_index == external).limit(1)
    if db.session.scalar(known) is not None:
        return {"external": external}
    if normalized_identity(term) is not None:
        return {"identity": identity_hash_for(term)}
    raise NotFound(
        "No request has that request id or external id, and it is not an email address or phone number."
    )


def url_search_params(term: str) -> dict[str, str]:
    """What a search term that came in a URL (``?q=``) may be used as: an existing request id stays
    ``q``; an existing external id becomes its keyed hash (``external``); anything else — an email
    address, a phone number, a name typed into the address bar — is nothing ({}), so a search by identity
    never works from (or invites) a URL."""
    try:
        found = classify_search(term)
    except (ValidationFailed, NotFound):
        return {}
    return {} if "identity" in found else found


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
