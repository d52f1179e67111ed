"""OAuth clients (S12): client credentials, their scopes, and the access tokens issued to them.

A client's secret and its access tokens are random 256-bit strings stored only as SHA-256 hashes (like API
tokens: a fast hash is enough for a secret nobody can guess). A client never holds scopes beyond those of
whoever grants them, and at use its token acts with ``token scopes ∩ client scopes ∩ its creator's current
role scopes``: a creator demoted or deactivated takes its clients down with it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from portal.extensions import db, run
from portal.models import OAuthAccessToken, OAuthClient, User, utcnow
from portal.models.audit import Actor, record
from portal.scopes import ALL_SCOPES, ROLE_SCOPES
from portal.services import Forbidden, NotFound, ValidationFailed

# Access tokens carry a prefix of their own, so a bearer token is looked up in one table, not two (API
# tokens start with "mwp_", which no random "mwc_" token can).
ACCESS_TOKEN_PREFIX = "mwc_"  # noqa: S105 - a public marker, not a secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def invalid_scope_message() -> str:
    """fidesops' answer to a scope it does not know, word for word (its registry printed as a list)."""
    return f"Invalid Scope. Scopes must be one of {list(ALL_SCOPES)}."


def _clean_scopes(scopes: list[str], granted_by: frozenset[str], creator: User) -> list[str]:
    """``scopes`` sorted and deduplicated, or an error: unknown scopes (422, fidesops' message), scopes the
    caller does not hold, or scopes beyond the client creator's role (403)."""
    wanted = set(scopes)
    if not wanted <= set(ALL_SCOPES):
        raise ValidationFailed(invalid_scope_message())
    beyond_creator = wanted - ROLE_SCOPES.get(creator.role, frozenset())
    if beyond_creator:
        raise Forbidden(
            f"Not Authorized: a client cannot hold scopes beyond its creator's role ({creator.role}): "
            f"{', '.join(sorted(beyond_creator))}."
        )
    beyond_caller = wanted - granted_by
    if beyond_caller:
        raise Forbidden(
            "Not Authorized: a client cannot be given scopes you do not hold yourself: "
            f"{', '.join(sorted(beyond_caller))}."
        )
    return sorted(wanted)


def create_client(
    creator: User, scopes: list[str], actor: Actor, *, granted_by: frozenset[str]
) -> tuple[OAuthClient, str]:
    """A new client of ``creator``; returns (row, secret). The secret is shown once: only its hash is kept.

    ``granted_by``: the scopes of whoever creates it (an API caller's effective scopes, or the creator's
    role scopes from the command line); the client gets none beyond them.
    """
    if not creator.active:
        raise Forbidden(f"{creator.email} is deactivated: a client of theirs could do nothing.")
    cleaned = _clean_scopes(scopes, granted_by, creator)
    secret = secrets.token_urlsafe(32)
    client = OAuthClient(id=secrets.token_hex(16), secret_hash=_hash(secret), scopes=cleaned, user=creator)
    db.session.add(client)
    db.session.flush()
    record(actor, "oauth_client.created", client_id=client.id, creator=creator.email, scopes=cleaned)
    return client, secret


def get_client(client_id: str) -> OAuthClient:
    client = db.session.get(OAuthClient, client_id) if len(client_id) <= 64 else None
    if client is None:
        raise NotFound(f"No client found with id '{client_id}'.")
    return client


def find_client(client_id: str) -> OAuthClient | None:
    try:
        return get_client(client_id)
    except NotFound:
        return None


def set_scopes(client: OAuthClient, scopes: list[str], actor: Actor, *, granted_by: frozenset[str]) -> None:
    """Replace the client's scopes (its tokens act with the new ones at once)."""
    cleaned = _clean_scopes(scopes, granted_by, client.user)
    before = list(client.scopes)
    client.scopes = cleaned
    record(actor, "oauth_client.scopes_updated", client_id=client.id, before=before, after=cleaned)


def delete_client(client: OAuthClient, actor: Actor) -> None:
    """Delete the client and every access token issued to it: they stop working at once."""
    record(actor, "oauth_client.deleted", client_id=client.id, creator=client.user.email)
    db.session.execute(delete(OAuthAccessToken).where(OAuthAccessToken.client_id == client.id))
    db.session.delete(client)
    db.session.flush()


def list_clients() -> list[OAuthClient]:
    return list(db.session.scalars(select(OAuthClient).order_by(OAuthClient.created_at.desc())))


def effective_scopes(client: OAuthClient) -> frozenset[str]:
    """What the client's tokens may do now: its scopes within its creator's current role."""
    if not client.user.active:
        return frozenset()
    return frozenset(client.scopes) & ROLE_SCOPES.get(client.user.role, frozenset())


# --- the token endpoint ----------------------------------------------------------------------------


def find_usable_client(client_id: str) -> OAuthClient | None:
    """The client ``client_id`` if it exists and its creator is active (else it gets no token)."""
    client = find_client(client_id)
    return client if client is not None and client.user.active else None


def secret_matches(client: OAuthClient, secret: str) -> bool:
    return hmac.compare_digest(client.secret_hash, _hash(secret))


def token_lifetime_seconds() -> int:
    return int(current_app.config["OAUTH_TOKEN_MINUTES"]) * 60


def new_access_token() -> str:
    return ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)


def store_access_token(client: OAuthClient, token: str, scopes: list[str], expires_in: int) -> None:
    """Keep the hash of an access token just issued to ``client`` (audited), and drop its expired ones."""
    now = utcnow()
    db.session.execute(
        delete(OAuthAccessToken).where(
            OAuthAccessToken.client_id == client.id, OAuthAccessToken.expires_at <= now
        )
    )
    db.session.add(
        OAuthAccessToken(
            client_id=client.id,
            token_hash=_hash(token),
            scopes=sorted(set(scopes)),
            issued_at=now,
            expires_at=now + timedelta(seconds=expires_in),
        )
    )
    client.last_used_at = now
    actor = Actor("client", client_label(client.id, client.user.email), user_id=client.user_id)
    record(actor, "oauth_client.token_issued", client_id=client.id, expires_in=expires_in)


# --- API calls with an access token ----------------------------------------------------------------


def client_label(client_id: str, creator_email: str) -> str:
    return f"client:{client_id} ({creator_email})"


@dataclass(frozen=True)
class ActiveClientToken:
    """What an API call needs of an access token, its client and the client's creator (one query)."""

    client_id: str
    scopes: frozenset[str]
    last_used_at: datetime | None
    user_id: int
    user_email: str

    @property
    def actor(self) -> Actor:
        return Actor("client", client_label(self.client_id, self.user_email), user_id=self.user_id)


_ACTIVE_ACCESS_TOKEN = (
    select(
        OAuthAccessToken.scopes,
        OAuthAccessToken.expires_at,
        OAuthClient.id,
        OAuthClient.scopes,
        OAuthClient.last_used_at,
        User.id,
        User.email,
        User.role,
        User.active,
    )
    .join(OAuthClient, OAuthClient.id == OAuthAccessToken.client_id)
    .join(User, User.id == OAuthClient.user_id)
    .where(OAuthAccessToken.token_hash == bindparam("token_hash"))
)


def find_active_access_token(token: str) -> ActiveClientToken | None:
    """The access token ``token`` if it has not expired, its client exists and its creator is active."""
    row = run(_ACTIVE_ACCESS_TOKEN, {"token_hash": _hash(token)}).first()
    if row is None:
        return None
    token_scopes, expires_at, client_id, client_scopes, last_used_at, user_id, email, role, active = row
    if not active or expires_at <= utcnow():
        return None
    scopes = frozenset(token_scopes) & frozenset(client_scopes) & ROLE_SCOPES.get(role, frozenset())
    return ActiveClientToken(client_id, scopes, last_used_at, user_id, email)


def touch(token: ActiveClientToken) -> bool:
    """Record the client's use at most once a minute; True when it did (the caller commits)."""
    now = utcnow()
    if token.last_used_at is not None and (now - token.last_used_at).total_seconds() <= 60:
        return False
    db.session.execute(update(OAuthClient).where(OAuthClient.id == token.client_id).values(last_used_at=now))
    return True
