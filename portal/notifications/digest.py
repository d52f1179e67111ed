"""The daily digest: one mail per person listing what their digest kinds have to say today.

``build_if_due(now)`` runs from every sender run (Celery beat, ``flask send-notifications``); from
``DIGEST_HOUR`` (UTC) on it builds the day's digests once. Its cost does not grow with the number of
users: one query per kind finds who reads that kind in the digest, each *section provider* runs its own
few indexed queries once for everyone, and the rows go in with one INSERT (batched by the driver). Two
runs at once both build, and the log's unique key (user, "digest", "daily", date) keeps one of each row.

Providers are pluggable: ``PROVIDERS[kind](now, user_ids)`` returns a ``Section`` shared by those users,
a dict of user id → ``Section`` for content that differs per person (tasks by assignee), or None. The
task sections read each assignee's and each system's first tasks in one windowed statement
(``_first_tasks``) and split them per person in one pass.

Unassigned tasks belong to their system's active owners, or to every active admin when the system has
none (``unassigned_watchers``): the due-soon section lists them beside one's own tasks, and the
unassigned-task section lists those nobody has taken for over a day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, exists, func, literal, select, union_all
from sqlalchemy.orm import aliased

from portal.execution.tasks import ASSIGNABLE_ROLES
from portal.extensions import db
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    DeliveryMode,
    Notification,
    PrivacyRequest,
    RequestStatus,
    Role,
    Task,
    User,
    WebhookOwner,
)
from portal.models.tasks import TASK_OPEN
from portal.notifications import outbox
from portal.notifications.kinds import (
    DIGEST,
    DUE_SOON,
    KINDS,
    PACKAGE_READY,
    REQUEST_ERROR,
    UNASSIGNED_AFTER,
    UNASSIGNED_TASK,
)
from portal.notifications.preferences import receivers

S = RequestStatus
PR = PrivacyRequest
ITEM_LIMIT = 25  # rows listed per section; the rest is counted and linked
SYSTEM_NAMES = select(ConnectionConfig.id, ConnectionConfig.name).where(
    ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK
)
ACTIVE_OWNERS = (
    select(WebhookOwner.connection_config_id, User.id)
    .join(User, User.id == WebhookOwner.user_id)
    .where(User.active.is_(True), User.role.in_(ASSIGNABLE_ROLES))
)
ACTIVE_ADMINS = select(User.id).where(User.active.is_(True), User.role == Role.ADMIN)


@dataclass(frozen=True)
class Item:
    request_id: str
    due_date: str | None = None  # ISO date
    note: str = ""  # "overdue", "unassigned", "completed 2026-12-07"
    systems: tuple[str, ...] = ()  # the manual systems it waits on (a task's: its own)


@dataclass(frozen=True)
class Section:
    kind: str
    title: str
    summary: str  # "3 tasks due this week": the digest's subject is made of these
    total: int
    items: tuple[Item, ...] = ()
    link: tuple[str, dict[str, Any]] = ("dashboard.index", {})  # endpoint and values of "see all"
    item_endpoint: str = "requests.detail"  # each item links there with its request_id
    more: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "more", max(self.total - len(self.items), 0))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["link"] = {"endpoint": self.link[0], "values": self.link[1]}
        return data


Provider = Callable[[datetime, list[int]], "Section | dict[int, Section] | None"]
PROVIDERS: dict[str, Provider] = {}


def provider(kind: str) -> Callable[[Provider], Provider]:
    """Register the section builder of ``kind`` (one per kind; a later one replaces it)."""

    def register(function: Provider) -> Provider:
        PROVIDERS[kind] = function
        return function

    return register


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def start_of_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _first_tasks(group, today: datetime, *conditions):
    """The first ``ITEM_LIMIT`` open tasks (soonest due first) of each value of ``group`` (an assignee, a
    system), with the group's totals: windows over the tasks in index order (state, group, due date, id),
    so they are read once whatever the number of people; only the rows kept are looked up (by primary
    key: a join lets PostgreSQL hash the whole table) for their request and system."""
    order = {"partition_by": group, "order_by": (Task.due_date, Task.id)}
    whole = {**order, "rows": (None, None)}  # the same order as the rank's, so the rows are sorted once
    ranked = (
        select(
            group.label("grp"),
            Task.id.label("task_id"),
            Task.due_date.label("due_date"),
            func.row_number().over(**order).label("rank"),
            func.count().over(**whole).label("total"),
            func.sum(case((Task.due_date < today, 1), else_=0)).over(**whole).label("overdue"),
        )
        .where(Task.state == TASK_OPEN, *conditions)
        .subquery()
    )
    task = aliased(Task)

    def looked_up(column):
        return select(column).where(task.id == ranked.c.task_id).scalar_subquery()

    return select(
        literal("own" if group is Task.assignee_id else "unassigned").label("kind"),
        ranked.c.grp,
        looked_up(task.privacy_request_id).label("request_id"),
        looked_up(task.connection_config_id).label("system"),
        ranked.c.due_date,
        ranked.c.rank,
        ranked.c.total,
        ranked.c.overdue,
    ).where(ranked.c.rank <= ITEM_LIMIT)


@dataclass
class _Group:
    rows: list = field(default_factory=list)
    total: int = 0
    overdue: int = 0


def _grouped(rows) -> tuple[dict[int, _Group], dict[int, _Group]]:
    """(assignee id → their tasks, system id → its unassigned tasks), each list in due order."""
    own: dict[int, _Group] = {}
    unassigned: dict[int, _Group] = {}
    for row in sorted(rows, key=lambda r: r.rank):
        group = (own if row.kind == "own" else unassigned).setdefault(row.grp, _Group())
        group.rows.append(row)
        group.total, group.overdue = int(row.total), int(row.overdue or 0)
    return own, unassigned


def unassigned_watchers() -> dict[int, set[int]]:
    """Manual system id → who hears of its unassigned tasks: its active owners, or, for a system without
    one, every active admin. Two queries."""
    systems = {connection_id: set() for connection_id in db.session.scalars(SYSTEM_NAMES)}
    for connection_id, user_id in db.session.execute(ACTIVE_OWNERS):
        systems.setdefault(connection_id, set()).add(user_id)
    ownerless = [connection_id for connection_id, owners in systems.items() if not owners]
    if ownerless:
        admins = set(db.session.scalars(ACTIVE_ADMINS))
        for connection_id in ownerless:
            systems[connection_id] = admins
    return systems


def _watched_by(readers: set[int]) -> dict[int, set[int]]:
    """Reader id → the systems whose unassigned tasks they hear of."""
    watched: dict[int, set[int]] = {}
    for connection_id, users in unassigned_watchers().items():
        for user_id in users & readers:
            watched.setdefault(user_id, set()).add(connection_id)
    return watched


def _items(groups: list[_Group], today: datetime, names: dict[int, str], unassigned: bool) -> list[tuple]:
    notes = ("overdue, unassigned", "unassigned") if unassigned else ("overdue", "")
    return [
        (
            row.due_date,
            row.request_id,
            Item(
                row.request_id,
                row.due_date.date().isoformat(),
                notes[0] if row.due_date < today else notes[1],
                (names.get(row.system, ""),),
            ),
        )
        for group in groups
        for row in group.rows
    ]


@provider(DUE_SOON.name)
def due_soon(now: datetime, user_ids: list[int]) -> dict[int, Section] | None:
    """Each person's own open tasks that are overdue or due within ``DUE_SOON_DAYS`` calendar days (UTC),
    and the unassigned ones of the systems they own (admins: of systems without an active owner). A few
    statements for everyone (``_first_tasks``), then one pass in Python."""
    days = current_app.config["DUE_SOON_DAYS"]
    today = start_of_day(now)
    soon = Task.due_date < today + timedelta(days=days + 1)
    rows = db.session.execute(
        union_all(
            _first_tasks(Task.assignee_id, today, Task.assignee_id.is_not(None), soon),
            _first_tasks(Task.connection_config_id, today, Task.assignee_id.is_(None), soon),
        )
    ).all()
    own, unassigned = _grouped(rows)
    if not own and not unassigned:
        return None
    readers = set(user_ids)
    watched = _watched_by(readers) if unassigned else {}
    names = dict(db.session.execute(SYSTEM_NAMES).all())
    when = "this week" if days == 7 else f"in the next {_plural(days, 'day')}"
    sections = {}
    for user_id in readers:
        mine = own.get(user_id)
        theirs = [unassigned[c] for c in sorted(watched.get(user_id, ())) if c in unassigned]
        if mine is None and not theirs:
            continue
        total, overdue = (mine.total, mine.overdue) if mine else (0, 0)
        waiting = sum(group.total for group in theirs)
        listed = _items([mine] if mine else [], today, names, False) + _items(theirs, today, names, True)
        listed.sort(key=lambda entry: entry[:2])
        parts = [f"{_plural(overdue, 'task')} overdue"] if overdue else []
        parts += [f"{_plural(total - overdue, 'task')} due {when}"] if total - overdue else []
        parts += [f"{_plural(waiting, 'unassigned task')} to claim"] if waiting else []
        sections[user_id] = Section(
            DUE_SOON.name,
            "Your tasks: overdue or due soon",
            ", ".join(parts),
            total + waiting,
            tuple(item for *_, item in listed[:ITEM_LIMIT]),
            ("tasks.index", {}),
        )
    return sections


@provider(UNASSIGNED_TASK.name)
def unassigned_too_long(now: datetime, user_ids: list[int]) -> dict[int, Section] | None:
    """The digest's side of the unassigned-task reminder: open tasks nobody has taken for over a day, for
    their system's owners (else the admins) who read this kind in the digest."""
    today = start_of_day(now)
    waited = Task.updated_at <= now - UNASSIGNED_AFTER  # set when the task last changed hands or opened
    rows = db.session.execute(
        _first_tasks(Task.connection_config_id, today, Task.assignee_id.is_(None), waited)
    ).all()
    _, unassigned = _grouped(rows)
    if not unassigned:
        return None
    names = dict(db.session.execute(SYSTEM_NAMES).all())
    sections = {}
    for user_id, systems in _watched_by(set(user_ids)).items():
        theirs = [unassigned[c] for c in sorted(systems) if c in unassigned]
        if not theirs:
            continue
        listed = sorted(_items(theirs, today, names, True), key=lambda entry: entry[:2])
        total = sum(group.total for group in theirs)
        sections[user_id] = Section(
            UNASSIGNED_TASK.name,
            "Tasks nobody has taken for over a day",
            f"{_plural(total, 'task')} waiting unassigned",
            total,
            tuple(item for *_, item in listed[:ITEM_LIMIT]),
            ("tasks.index", {"view": "unassigned"}),
        )
    return sections


@provider(REQUEST_ERROR.name)
def requests_in_error(now: datetime, user_ids: list[int]) -> Section | None:
    condition = PR.status == S.ERROR.value
    total = db.session.scalar(select(func.count()).select_from(PR).where(condition))
    if not total:
        return None
    rows = db.session.execute(
        select(PR.id, PR.due_date).where(condition).order_by(PR.due_date, PR.id).limit(ITEM_LIMIT)
    )
    items = tuple(Item(row.id, row.due_date.date().isoformat(), "needs a retry") for row in rows)
    return Section(
        REQUEST_ERROR.name,
        "Requests in error",
        f"{_plural(total, 'request')} in error",
        total,
        items,
        ("requests.queue", {"status": S.ERROR.value}),
    )


@provider(PACKAGE_READY.name)
def packages_ready(now: datetime, user_ids: list[int]) -> Section | None:
    """Requests completed in the last day (review states come with package review)."""
    condition = (PR.status == S.COMPLETE.value, PR.finished_processing_at >= now - timedelta(days=1))
    total = db.session.scalar(select(func.count()).select_from(PR).where(*condition))
    if not total:
        return None
    rows = db.session.execute(
        select(PR.id, PR.due_date, PR.finished_processing_at)
        .where(*condition)
        .order_by(PR.finished_processing_at.desc(), PR.id.desc())
        .limit(ITEM_LIMIT)
    )
    items = tuple(
        Item(
            row.id,
            row.due_date.date().isoformat(),
            f"completed {row.finished_processing_at:%Y-%m-%d %H:%M} UTC",
        )
        for row in rows
    )
    return Section(
        PACKAGE_READY.name,
        "Packages ready for review",
        f"{_plural(total, 'package')} ready for review",
        total,
        items,
        ("packages.index", {}),
        "packages.detail",
    )


def digest_rows(now: datetime) -> list[dict[str, Any]]:
    """The day's digest rows (user, context), one per person with anything to read; nothing is written."""
    sections: dict[int, list[Section]] = {}
    for kind_name, build in PROVIDERS.items():
        user_ids = list(db.session.scalars(receivers(KINDS[kind_name], (DeliveryMode.DIGEST,))))
        if not user_ids:
            continue
        built = build(now, user_ids)
        if built is None:
            continue
        for user_id in user_ids:
            section = built.get(user_id) if isinstance(built, dict) else built
            if section is not None:
                sections.setdefault(user_id, []).append(section)
    period = now.astimezone(UTC).date().isoformat()
    as_json: dict[int, dict[str, Any]] = {}  # each section converted once, however many read it
    rows = []
    for user_id, own in sections.items():
        context = {
            "subject": "; ".join(section.summary for section in own),
            "date": period,
            "sections": [as_json.get(id(s)) or as_json.setdefault(id(s), s.as_json()) for s in own],
        }
        rows.append(
            {"user_id": user_id, "kind": DIGEST, "subject_key": "daily", "period": period, "context": context}
        )
    return rows


def build_if_due(now: datetime) -> int:
    """From ``DIGEST_HOUR`` (UTC) on, log today's digests unless a run did already; returns how many rows
    it offered (the log keeps one per person and day). Never commits."""
    now = now.astimezone(UTC)
    if now.hour < current_app.config["DIGEST_HOUR"]:
        return 0
    period = now.date().isoformat()
    built = db.session.scalar(
        select(exists().where(Notification.kind == DIGEST, Notification.period == period))
    )
    if built:
        return 0
    rows = digest_rows(now)
    outbox.enqueue(rows, now=now)  # due at once: the run that built them sends them
    return len(rows)
