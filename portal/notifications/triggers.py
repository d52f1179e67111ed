"""Mails caused by request transitions: each is a watcher of the audit event its transition writes
(``models.audit.watch``), so the mails are logged in the transition's own transaction (``outbox``) and
sent only if it commits. Logging mails never fails the transition: a watcher runs in a savepoint, and an
error there is logged and dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import ConnectionConfig, audit, utcnow
from portal.notifications import outbox
from portal.notifications.kinds import PACKAGE_READY, PACKAGE_SENT_BACK, REQUEST_ERROR, TASK_ASSIGNED

log = logging.getLogger(__name__)


def _package_ready(request_id: str, details: dict[str, Any]) -> None:
    outbox.enqueue_for_kind(PACKAGE_READY, request_id, _moment(), {"request_id": request_id})


def _request_error(request_id: str, details: dict[str, Any]) -> None:
    # The exception's type name, as the audit event has it: never its message.
    context = {"request_id": request_id, "error": str(details.get("error") or "")[:80]}
    outbox.enqueue_for_kind(REQUEST_ERROR, request_id, _moment(), context)


def _sent_back(request_id: str, details: dict[str, Any]) -> None:
    # The systems by name (the reviewer's reason stays in the portal: it may describe the person).
    keys = list(details.get("systems") or [])
    names = dict(
        db.session.execute(
            select(ConnectionConfig.key, ConnectionConfig.name).where(ConnectionConfig.key.in_(keys))
        ).all()
    )
    context = {"request_id": request_id, "systems": [names.get(key, key) for key in keys]}
    outbox.enqueue_for_kind(PACKAGE_SENT_BACK, request_id, _moment(), context)


def _task_assigned(request_id: str, details: dict[str, Any]) -> None:
    """A task given to someone — opened for a system's owner as the request starts waiting, or handed to
    them — is mailed to them (a task one claims oneself is not)."""
    user_id, key = details.get("assignee_id"), details.get("connection_key")
    if user_id is None or not key:
        return
    name = db.session.scalar(select(ConnectionConfig.name).where(ConnectionConfig.key == key))
    if name is None:
        return
    # One mail per task and moment; the system's key is hashed to keep the mail log's key short.
    subject_key = f"{request_id}:{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    context = {"request_id": request_id, "system": name}
    outbox.enqueue_for_users(TASK_ASSIGNED, [user_id], subject_key, _moment(), context)


# audit action → what to log for it.
HANDLERS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "request.completed": _package_ready,
    "request.errored": _request_error,
    "request.sent_back": _sent_back,
    "task.opened": _task_assigned,
    "task.assigned": _task_assigned,
}


def _moment() -> str:
    """The period of a mail about one event: its moment, so a request that errs again is told again."""
    return utcnow().strftime("%Y%m%dT%H%M%S.%fZ")


def _logged_safely(
    handler: Callable[[str, dict[str, Any]], None],
) -> Callable[[str | None, dict[str, Any]], None]:
    def watcher(request_id: str | None, details: dict[str, Any]) -> None:
        try:
            with db.session.begin_nested():
                handler(request_id, details)
        except Exception as exc:  # noqa: BLE001 - mail must never fail the work that caused it
            log.error(
                "Could not log the mails for %s (%s); the change is saved.", request_id, type(exc).__name__
            )

    return watcher


def init() -> None:
    """Watch the audit events that call for mails (``create_app`` calls it once)."""
    for action, handler in HANDLERS.items():
        audit.watch(action, _WATCHERS.setdefault(action, _logged_safely(handler)))


_WATCHERS: dict[str, Callable] = {}  # one wrapper per action, so watching twice adds nothing
