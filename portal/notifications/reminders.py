"""The unassigned-task reminder: every sender run logs, for each open task nobody has taken for over a day
(``UNASSIGNED_AFTER``), one mail per day to its system's active owners, or to the active admins when it has
none, who take the kind immediately (digest readers find it in their digest, ``digest``).

A task waits unassigned since its row last changed (opened, reopened, given back, its assignee deactivated),
which is what ``tasks.updated_at`` records. The log's unique key (person, kind, ``task-<id>``, day) keeps one
reminder per person, task and day when two senders run at once; tasks already reminded today are left out
before any row is built, so a run costs a few queries and one pass over the tasks still waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from portal.extensions import db
from portal.models import DeliveryMode, Notification, Task
from portal.models.tasks import TASK_OPEN
from portal.notifications import outbox
from portal.notifications.digest import SYSTEM_NAMES, unassigned_watchers
from portal.notifications.kinds import UNASSIGNED_AFTER, UNASSIGNED_TASK
from portal.notifications.preferences import receivers


def subject_key(task_id: int) -> str:
    return f"task-{task_id}"


def taken_since(keys: list[str]) -> set[str]:
    """Of these reminders' subject keys, those whose task someone has taken (or that closed) since the
    reminder was logged: the sender skips them rather than ask people to claim what is claimed."""
    ids = {int(key.removeprefix("task-")) for key in keys if key.removeprefix("task-").isdigit()}
    waiting = db.session.scalars(
        select(Task.id).where(Task.id.in_(ids), Task.state == TASK_OPEN, Task.assignee_id.is_(None))
    )
    return set(keys) - {subject_key(task_id) for task_id in waiting}


def enqueue_unassigned(now: datetime) -> int:
    """Log today's reminders of the tasks unassigned for over a day; how many rows were offered. Never
    commits."""
    now = now.astimezone(UTC)
    period = now.date().isoformat()
    waiting = db.session.execute(
        select(Task.id, Task.privacy_request_id, Task.connection_config_id)
        .where(
            Task.state == TASK_OPEN,
            Task.assignee_id.is_(None),
            Task.updated_at <= now - UNASSIGNED_AFTER,
        )
        .order_by(Task.id)
    ).all()
    if not waiting:
        return 0
    reminded = set(
        db.session.scalars(
            select(Notification.subject_key).where(
                Notification.kind == UNASSIGNED_TASK.name, Notification.period == period
            )
        )
    )
    waiting = [task for task in waiting if subject_key(task.id) not in reminded]
    if not waiting:
        return 0
    immediate = set(db.session.scalars(receivers(UNASSIGNED_TASK, (DeliveryMode.IMMEDIATE,))))
    watchers = {system: users & immediate for system, users in unassigned_watchers().items()}
    names = dict(db.session.execute(SYSTEM_NAMES).all())
    rows = [
        {
            "user_id": user_id,
            "kind": UNASSIGNED_TASK.name,
            "subject_key": subject_key(task.id),
            "period": period,
            "context": {
                "request_id": task.privacy_request_id,
                "system": names.get(task.connection_config_id, ""),
            },
        }
        for task in waiting
        for user_id in sorted(watchers.get(task.connection_config_id, ()))
    ]
    outbox.enqueue(rows, now=now)
    return len(rows)
