"""API tokens: created once (the secret is returned a single time), stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import ApiToken, User, utcnow
from portal.services import ValidationFailed
from portal.services.audit import Actor, record

TOKEN_PREFIX = "mwp_"  # noqa: S105 - a public marker, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    user: User,
    name: str,
    actor: Actor,
    *,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns (row, secret). Only the hash of the secret is stored."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("A token needs a name of 1–200 characters.", [(("name",), "invalid")])
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        user=user,
        scopes=sorted(set(scopes)) if scopes is not None else None,
        token_hash=hash_token(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 4],
        expires_at=expires_at,
    )
    db.session.add(token)
    db.session.flush()
    record(actor, "token.created", token_name=name, owner=user.email, token_id=token.id)
    return token, secret


def find_active_token(secret: str) -> ApiToken | None:
    # The owner comes in the same query: every API call needs both.
    token = db.session.scalar(
        select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == hash_token(secret))
    )
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    return token


def revoke_token(token: ApiToken, actor: Actor) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(actor, "token.revoked", token_name=token.name, owner=token.user.email, token_id=token.id)
