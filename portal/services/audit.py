"""Writing the audit trail (S7). Callers pass an ``Actor``; details must never carry PII values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
