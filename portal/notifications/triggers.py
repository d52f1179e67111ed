"""Mails caused by request transitions, found in the audit trail as it is written.

Every transition is audited, so rather than a call in the runner, the portal watches the INSERTs into
``audit_events`` on its engine (however they are written: an ORM flush, ``record_now``, or PostgreSQL's
UPDATE-and-INSERT in one statement, counted only when the UPDATE changed a row). The events a transaction
wrote are kept on its connection; just before the session commits, the mails they call for are logged in
the same transaction (``outbox``), so they are sent only if the transition is. A savepoint's events are
forgotten when it rolls back. Logging mails can never fail the transition: it runs in a savepoint of its
own, and an error there is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from portal.models import AuditEvent, utcnow
from portal.notifications import outbox
from portal.notifications.kinds import PACKAGE_READY, REQUEST_ERROR

log = logging.getLogger(__name__)

_AUDIT = AuditEvent.__table__
_EVENTS = "portal.notify_events"  # on Connection.info: [(action, request id, details)]
_MARKS = "portal.notify_savepoints"  # on Connection.info: len(events) at each open savepoint
_CONNECTION = "portal.notify_connection"  # on Session.info: the connection of its transaction


def _package_ready(session: Session, request_id: str, details: dict[str, Any]) -> None:
    outbox.enqueue_for_kind(PACKAGE_READY, request_id, _moment(), {"request_id": request_id}, session)


def _request_error(session: Session, request_id: str, details: dict[str, Any]) -> None:
    # The exception's type name, as the audit event has it: never its message.
    context = {"request_id": request_id, "error": str(details.get("error") or "")[:80]}
    outbox.enqueue_for_kind(REQUEST_ERROR, request_id, _moment(), context, session)


# audit action → what to log for it. The lead's task and review features add theirs here.
HANDLERS: dict[str, Callable[[Session, str, dict[str, Any]], None]] = {
    "request.completed": _package_ready,
    "request.errored": _request_error,
}


def _moment() -> str:
    """The period of a mail about one event: its moment, so a request that errs again is told again."""
    return utcnow().strftime("%Y%m%dT%H%M%S.%fZ")


def _param(params: dict[str, Any], name: str) -> Any:
    # ``change_and_record`` binds the event's columns as ``event_<column>``.
    return params[name] if name in params else params.get(f"event_{name}")


def _after_execute(conn: Connection, clause, multiparams, params, execution_options, result) -> None:
    if not isinstance(clause, Insert) or clause.table is not _AUDIT:
        return
    found = []
    for row in multiparams or [params]:
        action = _param(row, "action")
        if action in HANDLERS:
            found.append((action, _param(row, "privacy_request_id"), _param(row, "details") or {}))
    if not found:
        return
    if clause.select is not None and result.rowcount == 0:
        return  # an INSERT ... SELECT whose compare-and-swap changed nothing: no transition happened
    conn.info.setdefault(_EVENTS, []).extend(found)


def _info(conn: Connection) -> dict | None:
    """The connection's info, or None once the database dropped it: reading ``info`` then would try to
    reconnect inside the rollback that is cleaning up (and the events died with the transaction)."""
    return None if conn.invalidated or conn.closed else conn.info


def _forget(conn: Connection) -> None:
    info = _info(conn)
    if info is not None:
        info.pop(_EVENTS, None)
        info.pop(_MARKS, None)


def _savepoint(conn: Connection, name) -> None:
    info = _info(conn)
    if info is not None:
        info.setdefault(_MARKS, []).append(len(info.get(_EVENTS, [])))


def _rollback_savepoint(conn: Connection, name, context) -> None:
    info = _info(conn)
    if info is not None and info.get(_MARKS):
        del info.get(_EVENTS, [])[info[_MARKS].pop() :]


def _release_savepoint(conn: Connection, name, context) -> None:
    info = _info(conn)
    if info is not None and info.get(_MARKS):
        info[_MARKS].pop()


def watch(engine: Engine) -> None:
    """Watch ``engine``'s audit INSERTs (``create_app`` calls it for the portal's engine)."""
    event.listen(engine, "after_execute", _after_execute)
    event.listen(engine, "begin", _forget)
    event.listen(engine, "rollback", _forget)
    event.listen(engine, "commit", _forget)
    event.listen(engine, "savepoint", _savepoint)
    event.listen(engine, "rollback_savepoint", _rollback_savepoint)
    event.listen(engine, "release_savepoint", _release_savepoint)


@event.listens_for(Session, "after_begin")
def _began(session: Session, transaction, connection: Connection) -> None:
    session.info[_CONNECTION] = connection


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CONNECTION, None)


@event.listens_for(Session, "before_commit")
def _log_mails(session: Session) -> None:
    """Log the mails this transaction's events call for, inside it (outermost commit only)."""
    if session.get_nested_transaction() is not None:
        return
    if session.new:
        session.flush()  # audit events added as objects are written now, not after this hook
    conn = session.info.get(_CONNECTION)
    info = _info(conn) if conn is not None else None
    if info is None:
        return
    events = info.pop(_EVENTS, None)
    if not events:
        return
    try:
        with conn.begin_nested():
            for action, request_id, details in events:
                HANDLERS[action](session, request_id, details)
    except Exception as exc:  # noqa: BLE001 - mail must never fail the work that caused it
        log.error(
            "Could not log the mails for %d event(s) (%s); the change is saved.",
            len(events),
            type(exc).__name__,
        )
