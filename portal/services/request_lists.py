"""Request lists (queues, the API's list, dashboards): paginated in SQL, with each request's progress.

Items are ``RequestSummary`` rows (read-only columns), not ORM objects: loading 50 entities with their
policy and reviewer cost more than the rest of a page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from cachetools import TTLCache
from sqlalchemy import Select, String, any_, bindparam, func, null, or_, select
from sqlalchemy.dialects import postgresql

from portal import cache
from portal.execution import gate
from portal.extensions import db, run
from portal.models import ManualInput, Policy, PrivacyRequest, RequestStatus, User, lifecycle
from portal.services import ValidationFailed
from portal.services.identities import search_condition

S = RequestStatus


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


def _done_counts_query(ids_condition, current: tuple[tuple[int, int], ...]) -> Select:
    return (
        select(ManualInput.privacy_request_id, func.count())
        .where(ids_condition, gate.current_entries(current))
        .group_by(ManualInput.privacy_request_id)
        .having(func.count() >= bindparam("at_least"))
    )


@functools.lru_cache(maxsize=64)
def _done_counts_statement(dialect: str, current: tuple[tuple[int, int], ...]) -> Select:
    """A page's counts, built once per dialect and set of current pairs (a handful ever exist). On
    PostgreSQL the page's ids go as one array parameter (``= ANY``) rather than 50 expanded ones."""
    ids = (
        ManualInput.privacy_request_id == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
        if dialect == "postgresql"
        else ManualInput.privacy_request_id.in_(bindparam("ids", expanding=True))
    )
    return _done_counts_query(ids, current)


def done_counts(
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


@dataclass(frozen=True, slots=True)
class PolicyRef:
    key: str
    name: str
    days_to_respond: int | None = None


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
    reviewer_id: int | None
    policy_days: int | None
    identity: dict[str, Any] | None = None

    @property
    def policy(self) -> PolicyRef:
        return PolicyRef(self.policy_key, self.policy_name, self.policy_days)

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
    PrivacyRequest.reviewed_by_id.label("reviewer_id"),
    select(Policy.days_to_respond)
    .where(Policy.id == PrivacyRequest.policy_id)
    .scalar_subquery()
    .label("policy_days"),
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
    as a correlated column: a near page reads its progress with its rows, in the same query."""
    return (
        select(func.count())
        .select_from(ManualInput)
        .where(ManualInput.privacy_request_id == PrivacyRequest.id, gate.current_entries(current))
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
    overdue: bool = False,
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
    if overdue:
        filters.append(PrivacyRequest.due_date < bindparam("overdue_before"))
        filters.append(PrivacyRequest.status.in_(lifecycle.OPEN_VALUES))
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
    overdue_before: datetime | None = None,
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
    overdue = overdue_before is not None
    # A search term shapes the statement (id, external id or an identity index): built for that call only.
    if search:
        statements = _list_statements(*shape, search, current, lean, overdue)
    else:
        statements = _shared_list_statements(*shape, None, current, lean, overdue)
    page = max(1, page)
    size = max(1, min(size, 100))
    params = {
        "statuses": statuses,
        "request_id": request_id,
        "identity": identity_hash,
        "external_id": external_id_hash,
        "overdue_before": overdue_before,
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
            done = done_counts([item.id for item in items], webhooks)
    key = (
        statuses and tuple(sorted(statuses)),
        search,
        identity_hash,
        external_id_hash,
        request_id,
        overdue_before,
    )
    return Page(items, _count(statements.count, params, key), page, size, len(webhooks), done)


# Totals above this are cached (``cache.large_counts``) rather than counted on every page.
EXACT_COUNT_LIMIT = 1_000


def reused_if_large(store: TTLCache, key: tuple, build: Callable[[], tuple[Any, int]]) -> Any:
    """``build()`` returns (value, rows counted): the value, or the one ``store`` kept from up to its time
    to live ago, which it keeps only when it counted more than ``EXACT_COUNT_LIMIT`` rows."""
    key = (str(db.engine.url), *key)
    value = store.get(key)
    if value is None:
        value, counted = build()
        if counted > EXACT_COUNT_LIMIT:
            store[key] = value
    return value


def _count(count: Select, params: dict[str, Any], key: tuple) -> int:
    """The exact count when it is small; a large one may be up to ``cache.LARGE_COUNT_SECONDS`` old."""

    def counted() -> tuple[int, int]:
        total = run(count, params).scalar()
        return total, total

    return reused_if_large(cache.large_counts, key, counted)


def count_total(count: Select, params: dict[str, Any], key: tuple) -> int:
    """``_count`` for other lists (the task lists): exact when small, a large total up to a minute old."""
    return _count(count, params, key)
