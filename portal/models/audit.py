"""Append-only audit trail (S7), and its one writer. Details never hold uploaded values or identity values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal import extensions  # a module reference: extensions itself imports models.base
from portal.models.base import Base, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_request_time", "privacy_request_id", "created_at"),
        Index("ix_audit_events_action_time", "action", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # user | token | client | system
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    # A snapshot of who it was (email or token name), kept when the user or token is later removed.
    actor_label: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(64))
    # No foreign keys below: the trail outlives the request or connection it mentions.
    privacy_request_id: Mapped[str | None] = mapped_column(String(64))
    connection_key: Mapped[str | None] = mapped_column(String(200), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


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
_INSERT = AuditEvent.__table__.insert()
# action → functions called with (request id, details) after an event of that action is written in the
# session's transaction (the notifications of a transition). A registry filled at start, not a cache.
_WATCHERS: dict[str, list[Callable[[str | None, dict[str, Any]], None]]] = {}


def watch(action: str, watcher: Callable[[str | None, dict[str, Any]], None]) -> None:
    """Call ``watcher(request_id, details)`` whenever ``record`` writes an event of ``action`` in the
    session's transaction: whatever it writes is committed, or rolled back, with the event."""
    if watcher not in _WATCHERS.setdefault(action, []):
        _WATCHERS[action].append(watcher)


def record(
    actor: Actor,
    action: str,
    *,
    privacy_request_id: str | None = None,
    connection_key: str | None = None,
    connection=None,
    **details: Any,
) -> None:
    """Write one audit event: the only writer of the trail (S7). ``details`` never hold personal data.

    It is written at once, in the session's transaction (after its pending changes, so events keep their
    order in time), or on ``connection`` when given: a transaction of the caller's own, for an event
    that must outlive a rollback of the session.
    """
    values = {
        "created_at": utcnow(),
        "actor_type": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_token_id": actor.token_id,
        "actor_label": actor.label,
        "action": action,
        "privacy_request_id": privacy_request_id,
        "connection_key": connection_key,
        "details": details,
    }
    if connection is not None:
        connection.execute(_INSERT, values)
        return
    extensions.run(_INSERT, values)
    watched = {**details, "connection_key": connection_key} if connection_key is not None else details
    for watcher in _WATCHERS.get(action, ()):
        watcher(privacy_request_id, watched)
