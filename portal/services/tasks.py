"""Tasks and owners (the team workflow): who works on which manual system of which request.

Every change of an assignee is a compare-and-swap on the task's row (``assignee_id`` as it was read), so of
two people claiming one task exactly one wins and the other is told who has it. Every change is audited.
Opening, finishing and closing tasks is the run's (``execution.tasks``).

Over 400 lines because it holds the whole rule set of assignment (who may act, the compare-and-swap,
owners) next to the lists and the workload that read the same rows; each part is short.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, case, delete, func, insert, select, update

from portal import cache
from portal.execution import gate
from portal.execution.tasks import ASSIGNABLE_ROLES
from portal.extensions import db, run
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    PrivacyRequest,
    Role,
    Task,
    User,
    WebhookOwner,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.models.tasks import TASK_OPEN
from portal.services import Conflict, Forbidden, InvalidState, NotFound, ValidationFailed, request_lists
from portal.services.dashboard import start_of_day
from portal.services.request_lists import count_total, done_counts

VIEWS = ("mine", "unassigned", "all")
DUE_FILTERS = ("soon", "overdue")
MAX_BULK = 500
_tasks = Task.__table__


# --- who acts ----------------------------------------------------------------------------------------


def acting_user(actor: Actor) -> User:
    """The active staff member or admin behind ``actor`` (a signed-in user or their token); else Forbidden."""
    user = db.session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not user.active or user.role not in ASSIGNABLE_ROLES:
        raise Forbidden("Only staff and admins work on tasks.")
    return user


@dataclass(frozen=True)
class Person:
    id: int
    display_name: str
    role: str


_PERSON = (User.id, func.coalesce(func.nullif(User.name, ""), User.email))
_ASSIGNABLE_WHERE = (User.active.is_(True), User.role.in_(ASSIGNABLE_ROLES))
_ASSIGNABLE = select(*_PERSON, User.role).where(*_ASSIGNABLE_WHERE).order_by(User.name, User.email)
_CHOICES = select(*_PERSON).where(*_ASSIGNABLE_WHERE).order_by(User.name, User.email)


def assignable_users() -> list[Person]:
    """Active staff and admins, by name: whom a task can go to. Rows, not users: loading the users cost
    more than the rest of the task list's filters."""
    return [Person(*row) for row in run(_ASSIGNABLE)]


def assignable_choices() -> list[tuple[int, str]]:
    """``assignable_users()`` as (id, name) rows, for a list to pick from (a request page lists 200 people)."""
    return run(_CHOICES).all()


def _assignable(user_id: int) -> User:
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or user.role not in ASSIGNABLE_ROLES:
        raise ValidationFailed(
            "A task can go only to an active staff member or admin.", [(("user_id",), "not assignable")]
        )
    return user


# --- one task ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRef:
    id: int
    privacy_request_id: str
    connection_key: str
    connection_name: str
    assignee_id: int | None
    assignee_label: str | None
    state: str


_TASK = (
    select(
        Task.id,
        Task.privacy_request_id,
        ConnectionConfig.key,
        ConnectionConfig.name,
        Task.assignee_id,
        func.coalesce(func.nullif(User.name, ""), User.email),
        Task.state,
    )
    .join(ConnectionConfig, ConnectionConfig.id == Task.connection_config_id)
    .outerjoin(User, User.id == Task.assignee_id)
    .where(Task.id == bindparam("task_id"))
)


def get_task(task_id: int) -> TaskRef:
    row = run(_TASK, {"task_id": task_id}).first() if isinstance(task_id, int) else None
    if row is None:
        raise NotFound(f"No task with id {task_id}.")
    return TaskRef(*row)


_SWAP = (
    update(_tasks)
    .where(
        _tasks.c.id == bindparam("task_id"),
        _tasks.c.state == TASK_OPEN,
        # NULL-safe "still the assignee it was read with"
        func.coalesce(_tasks.c.assignee_id, 0) == bindparam("expected"),
    )
    .values(assignee_id=bindparam("assignee"), updated_at=bindparam("now"))
)


def _swap(task: TaskRef, assignee: User | None, actor: Actor, action: str, **details: Any) -> None:
    """Give ``task`` to ``assignee`` (None: nobody) if it is still open and still as read; else Conflict."""
    params = {
        "task_id": task.id,
        "expected": task.assignee_id or 0,
        "assignee": assignee.id if assignee is not None else None,
        "now": utcnow(),
    }
    if run(_SWAP, params).rowcount != 1:
        now = get_task(task.id)
        if now.state != TASK_OPEN:
            raise InvalidState(
                f"The task for {now.connection_name} is {now.state}: it can no longer be assigned."
            )
        if now.assignee_label is not None:
            raise Conflict(f"This task was already claimed by {now.assignee_label}.")
        raise Conflict("This task changed meanwhile: reload and try again.")
    record(
        actor,
        action,
        privacy_request_id=task.privacy_request_id,
        connection_key=task.connection_key,
        task_id=task.id,
        assignee=assignee.email if assignee is not None else None,
        assignee_id=assignee.id if assignee is not None else None,
        **details,
    )


def _open(task: TaskRef) -> None:
    if task.state != TASK_OPEN:
        raise InvalidState(
            f"The task for {task.connection_name} is {task.state}: it can no longer be assigned."
        )


def claim(task_id: int, actor: Actor) -> TaskRef:
    """Take an unassigned task. Of two claims at once, one wins; the other is told who has it."""
    user = acting_user(actor)
    task = get_task(task_id)
    _open(task)
    if task.assignee_id == user.id:
        return task
    if task.assignee_id is not None:
        raise Conflict(f"This task was already claimed by {task.assignee_label}.")
    _swap(task, user, actor, "task.claimed")
    return get_task(task_id)


def assign(task_id: int, user_id: int, actor: Actor) -> TaskRef:
    """Hand a task to another user: its assignee may hand it on, an admin may give any task to anyone."""
    user = acting_user(actor)
    task = get_task(task_id)
    _open(task)
    if user.role != Role.ADMIN and task.assignee_id != user.id:
        raise Forbidden("Only the task's assignee or an admin can hand it to someone else.")
    target = _assignable(user_id)
    if task.assignee_id == target.id:
        return task
    _swap(task, target, actor, "task.assigned", previous=task.assignee_label)
    return get_task(task_id)


def release(task_id: int, actor: Actor) -> TaskRef:
    """Give a task back (unassigned): its assignee or an admin."""
    user = acting_user(actor)
    task = get_task(task_id)
    _open(task)
    if task.assignee_id is None:
        return task
    if user.role != Role.ADMIN and task.assignee_id != user.id:
        raise Forbidden("Only the task's assignee or an admin can give it back.")
    _swap(task, None, actor, "task.released", previous=task.assignee_label)
    return get_task(task_id)


def bulk_assign(task_ids: list[int], user_id: int, actor: Actor) -> tuple[int, list[str]]:
    """An admin gives these open tasks to one user; (how many changed, why the others did not)."""
    user = acting_user(actor)
    if user.role != Role.ADMIN:
        raise Forbidden("Only admins assign tasks in bulk.")
    ids = list(dict.fromkeys(i for i in task_ids if isinstance(i, int)))
    if not ids:
        raise ValidationFailed("Select at least one task.", [(("task_ids",), "empty")])
    if len(ids) > MAX_BULK:
        raise ValidationFailed(f"At most {MAX_BULK} tasks at once.", [(("task_ids",), "too many")])
    target = _assignable(user_id)
    changed, problems = 0, []
    for task_id in ids:
        try:
            with db.session.begin_nested():
                task = get_task(task_id)
                _open(task)
                if task.assignee_id != target.id:
                    _swap(task, target, actor, "task.assigned", previous=task.assignee_label, bulk=True)
                    changed += 1
        except (NotFound, InvalidState, Conflict) as exc:
            problems.append(f"Task {task_id}: {exc}")
    return changed, problems


def unassign_user(user: User, actor: Actor) -> int:
    """A deactivated user's open tasks become unassigned (audited once per request); how many did."""
    rows = run(
        select(Task.id, Task.privacy_request_id, ConnectionConfig.key)
        .join(ConnectionConfig, ConnectionConfig.id == Task.connection_config_id)
        .where(Task.assignee_id == user.id, Task.state == TASK_OPEN)
    ).all()
    if not rows:
        return 0
    run(
        update(_tasks)
        .where(_tasks.c.id.in_([row.id for row in rows]))
        .values(assignee_id=None, updated_at=utcnow())
    )
    for row in rows:
        record(
            actor,
            "task.released",
            privacy_request_id=row.privacy_request_id,
            connection_key=row.key,
            task_id=row.id,
            assignee=None,
            previous=user.email,
            reason="deactivated",
        )
    return len(rows)


# --- owners ------------------------------------------------------------------------------------------


def owners_of(connection_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(WebhookOwner, WebhookOwner.user_id == User.id)
            .where(WebhookOwner.connection_config_id == connection_id)
            .order_by(User.name, User.email)
        )
    )


def set_owners(connection: ConnectionConfig, user_ids: list[int], actor: Actor) -> list[User]:
    """Replace a manual system's default owners (active staff or admins); audited with who they are."""
    if connection.connection_type != ConnectionType.MANUAL_WEBHOOK:
        raise InvalidState("Only manual systems have owners.")
    users = [_assignable(user_id) for user_id in dict.fromkeys(user_ids)]
    before = sorted(user.email for user in owners_of(connection.id))
    run(delete(WebhookOwner.__table__).where(WebhookOwner.connection_config_id == connection.id))
    for user in users:
        run(insert(WebhookOwner.__table__).values(connection_config_id=connection.id, user_id=user.id))
    after = sorted(user.email for user in users)
    if before != after:
        record(actor, "webhook.owners_changed", connection_key=connection.key, owners=after, previous=before)
    return users


# --- lists -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    id: int
    privacy_request_id: str
    connection_id: int
    connection_key: str
    connection_name: str
    assignee_id: int | None
    assignee_label: str | None
    due_date: datetime
    status: str


@dataclass
class TaskPage:
    items: list[TaskRow]
    total: int
    page: int
    size: int
    done: dict[str, int] = field(default_factory=dict)  # request id → systems done
    systems: int = 0

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


_ROW_COLUMNS = (
    Task.id,
    Task.privacy_request_id,
    Task.connection_config_id,
    select(ConnectionConfig.key).where(ConnectionConfig.id == Task.connection_config_id).scalar_subquery(),
    select(ConnectionConfig.name).where(ConnectionConfig.id == Task.connection_config_id).scalar_subquery(),
    Task.assignee_id,
    select(func.coalesce(func.nullif(User.name, ""), User.email))
    .where(User.id == Task.assignee_id)
    .scalar_subquery(),
    Task.due_date,
    select(PrivacyRequest.status).where(PrivacyRequest.id == Task.privacy_request_id).scalar_subquery(),
)


def due_soon_days() -> int:
    return int(current_app.config["DUE_SOON_DAYS"])


def _conditions(view: str, due: str | None, by_connection: bool, by_assignee: bool) -> list:
    """The list's WHERE clause for one shape of filters; values are bound (``_list_params``)."""
    conditions = [Task.state == TASK_OPEN]
    if view == "mine":
        conditions.append(Task.assignee_id == bindparam("user_id"))
    elif view == "unassigned":
        conditions.append(Task.assignee_id.is_(None))
    elif by_assignee:
        conditions.append(Task.assignee_id == bindparam("assignee_id"))
    if by_connection:
        conditions.append(Task.connection_config_id == bindparam("connection_id"))
    if due == "overdue":
        conditions.append(Task.due_date < bindparam("today", type_=Task.due_date.type))
    elif due == "soon":
        conditions.append(Task.due_date >= bindparam("today", type_=Task.due_date.type))
        conditions.append(Task.due_date < bindparam("soon", type_=Task.due_date.type))
    return conditions


@functools.lru_cache(maxsize=64)
def _list_statements(view: str, due: str | None, by_connection: bool, by_assignee: bool):
    """(count, page) for one shape of filters, built once: building them cost more than running them."""
    conditions = _conditions(view, due, by_connection, by_assignee)
    count = select(func.count()).select_from(_tasks).where(*conditions)
    # Names by correlated lookups on primary keys, not joins: a join lets the planner pick another index
    # than the one serving the order, and sort every open task instead of reading 50 (as the queue does).
    rows = (
        select(*_ROW_COLUMNS)
        .where(*conditions)
        .order_by(Task.due_date, Task.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, rows


def list_tasks(
    *,
    view: str = "mine",
    user_id: int | None = None,
    due: str | None = None,
    connection_id: int | None = None,
    assignee_id: int | None = None,
    page: int = 1,
    size: int = 50,
    now: datetime | None = None,
) -> TaskPage:
    """Open tasks, soonest deadline first (then by id), one page read in SQL from the tasks' indexes."""
    if view not in VIEWS:
        raise ValidationFailed(f"view must be one of {', '.join(VIEWS)}", [(("query", "view"), "unknown")])
    if due is not None and due not in DUE_FILTERS:
        raise ValidationFailed(
            f"due must be one of {', '.join(DUE_FILTERS)}", [(("query", "due"), "unknown")]
        )
    now = now or utcnow()
    by_assignee = view == "all" and assignee_id is not None
    count, statement = _list_statements(view, due, connection_id is not None, by_assignee)
    today = start_of_day(now)
    params = {
        "user_id": user_id,
        "assignee_id": assignee_id,
        "connection_id": connection_id,
        "today": today,
        "soon": today + timedelta(days=due_soon_days() + 1),
    }
    key = ("tasks", view, user_id if view == "mine" else None, due, connection_id, assignee_id, today)
    total = count_total(count, params, key)
    rows = run(statement, {**params, "limit": size, "offset": (page - 1) * size}).all()
    items = [TaskRow(*row) for row in rows]
    webhooks = gate.gated_webhooks()
    done = done_counts(sorted({row.privacy_request_id for row in items}), webhooks) if items else {}
    return TaskPage(items, total, page, size, done, len(webhooks))


_UNASSIGNED = (
    select(func.count()).select_from(_tasks).where(Task.state == TASK_OPEN, Task.assignee_id.is_(None))
)


def unassigned_count() -> int:
    """Open tasks without an assignee (a large total may be a minute old, as list totals are)."""
    return count_total(_UNASSIGNED, {}, ("tasks", "unassigned"))


def _summary(name: str, now: datetime, build) -> list:
    """``build()``'s list (it returns (list, open tasks counted)), or its list of up to a minute ago when
    that counted many tasks (``cache.task_summaries``), as large list totals are."""
    return request_lists.reused_if_large(cache.task_summaries, (name, start_of_day(now)), build)


@dataclass(frozen=True)
class Load:
    user_id: int | None
    label: str
    open: int
    due_soon: int
    overdue: int


def _load_columns(now: datetime):
    today = start_of_day(now)
    soon = today + timedelta(days=due_soon_days() + 1)
    return (
        func.count(),
        func.sum(case((and_(Task.due_date >= today, Task.due_date < soon), 1), else_=0)),
        func.sum(case((Task.due_date < today, 1), else_=0)),
    )


def workload(now: datetime | None = None) -> list[Load]:
    """Open tasks per assignee (unassigned last): open, due soon, overdue; one grouped query."""
    now = now or utcnow()
    return _summary("workload", now, lambda: _workload(now))


def _workload(now: datetime) -> tuple[list[Load], int]:
    rows = run(
        select(Task.assignee_id, *_load_columns(now))
        .where(Task.state == TASK_OPEN)
        .group_by(Task.assignee_id)
    ).all()
    users = {
        user.id: user.display_name
        for user in db.session.scalars(
            select(User).where(User.id.in_([r[0] for r in rows if r[0] is not None]))
        )
    }
    loads = [
        Load(assignee, users.get(assignee, "Unassigned") if assignee else "Unassigned", n, s or 0, o or 0)
        for assignee, n, s, o in rows
    ]
    ordered = sorted(loads, key=lambda load: (load.user_id is None, -load.overdue, -load.open, load.label))
    return ordered, sum(load.open for load in loads)


def systems_behind(now: datetime | None = None) -> list[Load]:
    """Manual systems with overdue or due-soon open tasks, most overdue first (``user_id``: the connection id)."""
    now = now or utcnow()
    return _summary("systems_behind", now, lambda: _systems_behind(now))


def _systems_behind(now: datetime) -> tuple[list[Load], int]:
    rows = run(
        select(Task.connection_config_id, ConnectionConfig.name, *_load_columns(now))
        .join(ConnectionConfig, ConnectionConfig.id == Task.connection_config_id)
        .where(Task.state == TASK_OPEN)
        .group_by(Task.connection_config_id, ConnectionConfig.name)
    ).all()
    loads = [Load(conn_id, name, n, s or 0, o or 0) for conn_id, name, n, s, o in rows if (s or o)]
    ordered = sorted(loads, key=lambda load: (-load.overdue, -load.due_soon, load.label))
    return ordered, sum(row[2] for row in rows)


_MANUAL_SYSTEMS = (
    select(ConnectionConfig.id, ConnectionConfig.name)
    .where(ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK)
    .order_by(ConnectionConfig.name)
)


def manual_systems() -> list[tuple[int, str]]:
    """(id, name) of the manual systems, for the filters."""
    return list(run(_MANUAL_SYSTEMS).all())


_REQUEST_TASKS = (
    select(
        Task.id,
        Task.privacy_request_id,
        Task.connection_config_id,
        ConnectionConfig.key,
        ConnectionConfig.name,
        Task.assignee_id,
        func.coalesce(func.nullif(User.name, ""), User.email),
        Task.due_date,
        Task.state,
    )
    .join(ConnectionConfig, ConnectionConfig.id == Task.connection_config_id)
    .outerjoin(User, User.id == Task.assignee_id)
    .where(Task.privacy_request_id == bindparam("request_id"))
    .order_by(ConnectionConfig.name)
)  # built once: every request page reads it


def request_tasks(request_id: str) -> list[TaskRow]:
    """Every task of one request (open, done or closed), by system name; ``status`` is the task's state."""
    return [TaskRow(*row) for row in run(_REQUEST_TASKS, {"request_id": request_id})]


def is_assignee(request_id: str, user_id: int | None) -> bool:
    """Whether the user is the assignee of an open task of this request."""
    if user_id is None:
        return False
    return (
        run(
            select(Task.id).where(
                Task.privacy_request_id == request_id, Task.assignee_id == user_id, Task.state == TASK_OPEN
            )
        ).first()
        is not None
    )
