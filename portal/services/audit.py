"""Writing the audit trail (S7). Callers pass an ``Actor``; details must never carry PII values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select

from portal.extensions import db, run
from portal.models import AuditEvent, utcnow


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, an API token, or the system (runner, sweeper, CLI)."""

    kind: str  # user | token | system
    label: str
    user_id: int | None = None
    token_id: int | None = None

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls("user", user.email, user_id=user.id)

    @classmethod
    def for_token(cls, token) -> Actor:
        return cls(
            "token", f"token:{token.name} ({token.user_email})", user_id=token.user_id, token_id=token.id
        )

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", label)


SYSTEM = Actor.system()


def _columns(actor: Actor, action: str, privacy_request_id, connection_key, details) -> dict[str, Any]:
    return {
        "actor_type": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_token_id": actor.token_id,
        "actor_label": actor.label,
        "action": action,
        "privacy_request_id": privacy_request_id,
        "connection_key": connection_key,
        "details": details,
    }


def record(
    actor: Actor,
    action: str,
    *,
    privacy_request_id: str | None = None,
    connection_key: str | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(**_columns(actor, action, privacy_request_id, connection_key, details))
    db.session.add(event)
    return event


_INSERT_EVENT = AuditEvent.__table__.insert()


def record_now(actor: Actor, action: str, *, privacy_request_id: str | None = None, **details: Any) -> None:
    """``record``, written at once with one INSERT (no ORM object): for the busiest writes.

    ``connection_key`` goes in ``details`` like any other keyword, and is taken out for its column.
    """
    connection_key = details.pop("connection_key", None)
    values = _columns(actor, action, privacy_request_id, connection_key, details)
    run(_INSERT_EVENT, {"created_at": utcnow(), **values})


_events = AuditEvent.__table__
_EVENT_COLUMNS = (
    "created_at",
    "actor_type",
    "actor_user_id",
    "actor_token_id",
    "actor_label",
    "action",
    "privacy_request_id",
    "connection_key",
    "details",
)
_CHANGE_AND_RECORD: dict[int, tuple[Any, Any]] = {}


def _change_and_record_statement(change: Any) -> Any:
    """``change`` (an UPDATE of one table, by bound parameters) with its audit event written in the same
    statement, only when it changed a row: PostgreSQL's data-modifying WITH, built once per UPDATE."""
    cached = _CHANGE_AND_RECORD.get(id(change))
    if cached is not None and cached[0] is change:
        return cached[1]
    table = change.table
    changed = change.returning(table.c.id).cte("changed")
    values = select(
        *(bindparam(f"event_{name}", type_=_events.c[name].type) for name in _EVENT_COLUMNS)
    ).select_from(changed)
    # An INSERT's row count is read only when asked to keep it (UPDATE and DELETE keep theirs anyway).
    statement = (
        insert(_events).from_select(list(_EVENT_COLUMNS), values).execution_options(preserve_rowcount=True)
    )
    _CHANGE_AND_RECORD[id(change)] = (change, statement)
    return statement


def change_and_record(
    change: Any,
    params: dict[str, Any],
    actor: Actor,
    action: str,
    *,
    privacy_request_id: str | None = None,
    **details: Any,
) -> bool:
    """Run ``change`` (a compare-and-swap UPDATE built once, by bound parameters) and, if it changed a row,
    ``record_now`` its event; True when it did. On PostgreSQL the two are one statement (one round trip
    instead of two; a resume makes three such changes, issue 9); SQLite runs in this process and takes
    them one after the other, in the same transaction either way."""
    if db.session.get_bind().dialect.name != "postgresql":
        if run(change, params).rowcount != 1:
            return False
        record_now(actor, action, privacy_request_id=privacy_request_id, **details)
        return True
    db.session.flush()  # events still pending (the request's creation, say) are older than this one
    connection_key = details.pop("connection_key", None)
    event = {"created_at": utcnow(), **_columns(actor, action, privacy_request_id, connection_key, details)}
    statement = _change_and_record_statement(change)
    return (
        run(statement, {**params, **{f"event_{name}": value for name, value in event.items()}}).rowcount == 1
    )
