"""API tokens: created once (the secret is returned a single time), stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, or_, select

from portal.extensions import db, run
from portal.models import ApiToken, User, utcnow
from portal.models.audit import Actor, record
from portal.services import ValidationFailed

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


@dataclass(frozen=True)
class ActiveToken:
    """What an API call needs of its token and owner, read in one query without loading ORM objects."""

    id: int
    name: str
    scopes: list[str] | None
    last_used_at: datetime | None
    user_id: int
    user_email: str
    user_role: str


# Built once: building a statement costs more than running it (hot paths keep theirs prebuilt).
_ACTIVE_TOKEN = (
    select(
        ApiToken.id,
        ApiToken.name,
        ApiToken.scopes,
        ApiToken.last_used_at,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        User.id,
        User.email,
        User.role,
        User.active,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def find_active_token(secret: str) -> ActiveToken | None:
    """The token for ``secret`` if it is neither revoked nor expired and its owner is active.

    Read on every API call, so it selects columns (one indexed query, the owner joined in) rather than
    entities: an ORM load of a token and its user costs several times more than the query itself.
    """
    row = run(_ACTIVE_TOKEN, {"token_hash": hash_token(secret)}).first()
    if row is None:
        return None
    token_id, name, scopes, last_used_at, revoked_at, expires_at, user_id, email, role, active = row
    if revoked_at is not None or not active:
        return None
    if expires_at is not None and expires_at <= utcnow():
        return None
    return ActiveToken(token_id, name, scopes, last_used_at, user_id, email, role)


def revoke_token(token: ApiToken, actor: Actor, *, reason: str | None = None) -> None:
    """Revoke ``token`` (audited, with ``reason`` when it is revoked as part of something else)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        details = {"reason": reason} if reason else {}
        record(
            actor,
            "token.revoked",
            token_name=token.name,
            owner=token.user.email,
            token_id=token.id,
            **details,
        )


def revoke_user_tokens(user: User, actor: Actor, *, reason: str) -> int:
    """Revoke every token of ``user`` that still works (neither revoked nor expired); returns how many."""
    live = db.session.scalars(
        select(ApiToken)
        .where(
            ApiToken.user_id == user.id,
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
        )
        .order_by(ApiToken.id)
    ).all()
    for token in live:
        revoke_token(token, actor, reason=reason)
    return len(live)
