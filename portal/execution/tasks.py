"""Tasks as the run sees them: opened (and assigned) when a request starts waiting for input, done when a
system's entry is saved against its current fields, closed when the request no longer needs them.

A task is assigned to the owner of its system with the fewest open tasks (ties: the lowest user id);
a system without an active owner leaves it unassigned. People's changes to tasks (claim, hand over, give
back, bulk assignment) are ``services.tasks``'.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, literal, select, update

from portal.extensions import run
from portal.models import PrivacyRequest, Role, Task, User, WebhookOwner, utcnow
from portal.models.audit import SYSTEM, Actor, record
from portal.models.tasks import TASK_CLOSED, TASK_DONE, TASK_OPEN

ASSIGNABLE_ROLES = (Role.ADMIN.value, Role.STAFF.value)
_tasks = Task.__table__

_OWNERS = (
    select(WebhookOwner.connection_config_id, User.id, User.email)
    .join(User, User.id == WebhookOwner.user_id)
    .where(
        WebhookOwner.connection_config_id.in_(bindparam("connections", expanding=True)),
        User.active.is_(True),
        User.role.in_(ASSIGNABLE_ROLES),
    )
)
_LOADS = (
    select(Task.assignee_id, func.count())
    .where(Task.state == TASK_OPEN, Task.assignee_id.in_(bindparam("users", expanding=True)))
    .group_by(Task.assignee_id)
)
_EXISTING = select(Task.connection_config_id, Task.id, Task.state, Task.assignee_id).where(
    Task.privacy_request_id == bindparam("request_id")
)
_DUE = select(PrivacyRequest.due_date).where(PrivacyRequest.id == bindparam("request_id"))
_ACTIVE_ASSIGNEE = select(User.id).where(
    User.id == bindparam("user_id"), User.active.is_(True), User.role.in_(ASSIGNABLE_ROLES)
)


def open_for(request_id: str, systems: list[tuple[int, str]], actor: Actor = SYSTEM) -> None:
    """Open a task for each (connection id, key) the request now waits for, in the caller's transaction.

    A task already open stays as it is; one done or closed earlier (its entry went stale) is opened again
    for the same assignee when they can still take it. New tasks go to the least-loaded owner.
    """
    if not systems:
        return
    now = utcnow()
    due = run(_DUE, {"request_id": request_id}).scalar()
    existing = {row[0]: row for row in run(_EXISTING, {"request_id": request_id})}
    connection_ids = [connection_id for connection_id, _ in systems]
    owners: dict[int, list[tuple[int, str]]] = {}
    emails: dict[int, str] = {}
    for connection_id, user_id, email in run(_OWNERS, {"connections": connection_ids}):
        owners.setdefault(connection_id, []).append((user_id, email))
        emails[user_id] = email
    loads = dict(run(_LOADS, {"users": sorted(emails)}).all()) if emails else {}
    for connection_id, key in sorted(systems, key=lambda system: system[1]):
        row = existing.get(connection_id)
        if row is not None and row.state == TASK_OPEN:
            continue
        assignee = None
        keeps = row is not None and row.assignee_id is not None
        if keeps and run(_ACTIVE_ASSIGNEE, {"user_id": row.assignee_id}).scalar() is not None:
            assignee = row.assignee_id
        if assignee is None and owners.get(connection_id):
            assignee = min(owners[connection_id], key=lambda owner: (loads.get(owner[0], 0), owner[0]))[0]
        if assignee is not None:
            loads[assignee] = loads.get(assignee, 0) + 1
        values = {"assignee_id": assignee, "state": TASK_OPEN, "due_date": due, "updated_at": now}
        if row is None:
            run(
                insert(_tasks).values(
                    privacy_request_id=request_id,
                    connection_config_id=connection_id,
                    created_at=now,
                    **values,
                )
            )
        else:
            run(update(_tasks).where(_tasks.c.id == row.id).values(**values))
        record(
            actor,
            "task.opened",
            privacy_request_id=request_id,
            connection_key=key,
            assignee=emails.get(assignee) if assignee is not None else None,
            assignee_id=assignee,
            reopened=row is not None,
        )


_DONE = (
    update(_tasks)
    .where(
        _tasks.c.privacy_request_id == bindparam("request_id"),
        _tasks.c.connection_config_id == bindparam("connection_id"),
        _tasks.c.state == TASK_OPEN,
    )
    .values(state=TASK_DONE, updated_at=bindparam("now"))
)


def mark_done(request_id: str, connection_id: int) -> None:
    """The system's entry was saved against its current fields (``gate.is_done``): its task is done."""
    run(_DONE, {"request_id": request_id, "connection_id": connection_id, "now": utcnow()})


_CLOSE = (
    update(_tasks)
    .where(_tasks.c.privacy_request_id == bindparam("request_id"), _tasks.c.state == TASK_OPEN)
    .values(state=TASK_CLOSED, updated_at=bindparam("now"))
)


def close_open(request_id: str) -> int:
    """The request no longer waits (completed or canceled): its open tasks close; how many did."""
    return run(_CLOSE, {"request_id": request_id, "now": utcnow()}).rowcount


_waiting = select(PrivacyRequest.id).where(PrivacyRequest.status == "requires_input")


def reopen_stale(connection_id: int) -> int:
    """The system's fields changed: entries saved before are stale, so its done tasks of requests still
    waiting open again (same assignee); how many did. One statement, whatever the number of requests."""
    return run(
        update(_tasks)
        .where(
            _tasks.c.connection_config_id == connection_id,
            _tasks.c.state == TASK_DONE,
            _tasks.c.privacy_request_id.in_(_waiting),
        )
        .values(state=TASK_OPEN, updated_at=utcnow())
    ).rowcount


def open_for_waiting(connection_id: int) -> int:
    """A system got its first fields: every request waiting for input now waits for it too, so each gets
    an (unassigned) task for it; how many. One INSERT ... SELECT."""
    now = utcnow()
    existing = select(Task.id).where(
        Task.privacy_request_id == PrivacyRequest.id, Task.connection_config_id == connection_id
    )
    rows = select(
        PrivacyRequest.id,
        literal(connection_id),
        literal(TASK_OPEN),
        PrivacyRequest.due_date,
        literal(now, _tasks.c.created_at.type),
        literal(now, _tasks.c.updated_at.type),
    ).where(PrivacyRequest.status == "requires_input", ~existing.exists())
    columns = ["privacy_request_id", "connection_config_id", "state", "due_date", "created_at", "updated_at"]
    return run(insert(_tasks).from_select(columns, rows)).rowcount
