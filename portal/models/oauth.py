"""OAuth clients (S12): client credentials that get short-lived bearer tokens, both stored only as hashes.

A client belongs to the user who created it and never acts beyond that user's current role; deleting it
deletes its access tokens with it (the database cascades), so they stop working at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, utcnow
from portal.models.users import User


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    # The public client_id (random hex, as fidesops makes them).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
    access_tokens: Mapped[list[OAuthAccessToken]] = relationship(
        back_populates="client", cascade="all, delete-orphan", passive_deletes=True
    )


class OAuthAccessToken(Base):
    __tablename__ = "oauth_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the token was issued for (the client's scopes, or fewer when the request asked for fewer).
    scopes: Mapped[list[Any]]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    client: Mapped[OAuthClient] = relationship(back_populates="access_tokens")
