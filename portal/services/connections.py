"""Connections (S2): keys, names, create / update / disable / delete, and the paginated list.

The HTML admin views and the JSON API both call these functions, so every rule and message lives here.
Messages that fidesops clients may match on are kept word for word.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import ConnectionConfig, ConnectionType, ManualInput, utcnow
from portal.models.audit import Actor, record
from portal.models.connections import ACCESS_LEVELS, CONNECTION_TYPES
from portal.services import Conflict, NotFound, ValidationFailed, privacy_requests
from portal.services.keys import (
    clean_name,
    duplicate_key_message,
    duplicate_key_words,
    duplicate_name_message,
    duplicate_name_words,
    fail,
    key_or_generated,
    text,
)

MAX_DESCRIPTION_LENGTH = 2000

# "Not given" for update_connection's keyword arguments (None is a real value for description).
_UNSET = object()


class DuplicateKey(Conflict):
    """Another connection already has this key."""


class DuplicateName(Conflict):
    """Another connection already has this name."""


def _clean_description(description: str | None) -> str | None:
    description = text(description, "description", "description").strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise fail(
            "description", f"The description must be at most {MAX_DESCRIPTION_LENGTH} characters long."
        )
    return description or None


def _clean_access(access: str) -> str:
    if access not in ACCESS_LEVELS:
        raise fail("access", f"Unknown access '{access}'; choose one of: {', '.join(ACCESS_LEVELS)}.")
    return access


def _name_taken(name: str, except_id: int | None = None) -> bool:
    query = select(ConnectionConfig.id).where(ConnectionConfig.name == name)
    if except_id is not None:
        query = query.where(ConnectionConfig.id != except_id)
    return db.session.scalar(query) is not None


def _key_taken(key: str) -> bool:
    return db.session.scalar(select(ConnectionConfig.id).where(ConnectionConfig.key == key)) is not None


def _flush_unique(key: str, name: str) -> None:
    """Flush in a savepoint so a concurrent insert that won the race still gets the friendly message."""
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        detail = str(exc.orig)
        if "connection_configs_name" in detail or "connection_configs.name" in detail:
            raise DuplicateName(duplicate_name_message(name), words=duplicate_name_words(name)) from exc
        raise DuplicateKey(duplicate_key_message(key), words=duplicate_key_words(key)) from exc


def _is_manual(conn: ConnectionConfig) -> bool:
    return conn.connection_type == ConnectionType.MANUAL_WEBHOOK


def get_connection(key: str) -> ConnectionConfig:
    conn = db.session.scalar(select(ConnectionConfig).where(ConnectionConfig.key == key))
    if conn is None:
        raise NotFound(f"No connection config with key '{key}'")
    return conn


def list_connections(page: int = 1, size: int = 50) -> tuple[list[ConnectionConfig], int]:
    """One page ordered by name, each with its manual webhook loaded (two queries, whatever the size)."""
    if page < 1 or size < 1:
        raise ValidationFailed("page and size must be at least 1.", [(("page",), "must be at least 1")])
    total = db.session.scalar(select(func.count()).select_from(ConnectionConfig))
    if (page - 1) * size >= total:
        return [], total  # past the end (and no OFFSET too large for the database)
    items = db.session.scalars(
        select(ConnectionConfig)
        .options(selectinload(ConnectionConfig.manual_webhook))
        .order_by(func.lower(ConnectionConfig.name), ConnectionConfig.id)
        .limit(size)
        .offset((page - 1) * size)
    ).all()
    return list(items), total


def saved_input_count(conn: ConnectionConfig) -> int:
    """How many manual entries staff saved for this connection (deleted with it)."""
    return db.session.scalar(
        select(func.count()).select_from(ManualInput).where(ManualInput.connection_config_id == conn.id)
    )


def create_connection(
    *,
    name: str,
    connection_type: str,
    actor: Actor,
    key: str | None = None,
    access: str = "read",
    description: str | None = None,
    disabled: bool = False,
) -> ConnectionConfig:
    """A new connection; a blank key is generated from the name. Manual webhooks get no fields here."""
    name = clean_name(name)
    key = key_or_generated(key, name)
    if connection_type not in CONNECTION_TYPES:
        raise fail(
            "connection_type",
            f"Unknown connection type '{connection_type}'; choose one of: {', '.join(CONNECTION_TYPES)}.",
        )
    access = _clean_access(access)
    description = _clean_description(description)
    if _key_taken(key):
        raise DuplicateKey(duplicate_key_message(key), words=duplicate_key_words(key))
    if _name_taken(name):
        raise DuplicateName(duplicate_name_message(name), words=duplicate_name_words(name))
    conn = ConnectionConfig(
        key=key,
        name=name,
        connection_type=connection_type,
        access=access,
        description=description,
        disabled=bool(disabled),
        disabled_at=utcnow() if disabled else None,
    )
    db.session.add(conn)
    _flush_unique(key, name)
    record(
        actor,
        "connection.created",
        connection_key=key,
        key=key,
        name=name,
        connection_type=connection_type,
        disabled=bool(disabled),
    )
    return conn


def update_connection(
    conn: ConnectionConfig,
    *,
    actor: Actor,
    name=_UNSET,
    description=_UNSET,
    access=_UNSET,
    disabled=_UNSET,
    connection_type=_UNSET,
) -> ConnectionConfig:
    """Change only the arguments given. The key never changes: packages and saved data are keyed by it.

    Nor does the type: a manual webhook's inputs or a database's dataset would lose their meaning.
    """
    if connection_type is not _UNSET and connection_type != conn.connection_type:
        raise fail(
            "connection_type",
            f"Cannot change the connection_type of '{conn.key}' from {conn.connection_type} "
            f"to {connection_type}; create a new connection instead.",
        )
    changed: list[str] = []
    if name is not _UNSET:
        name = clean_name(name)
        if name != conn.name:
            if _name_taken(name, except_id=conn.id):
                raise DuplicateName(duplicate_name_message(name), words=duplicate_name_words(name))
            conn.name = name
            changed.append("name")
    if description is not _UNSET:
        description = _clean_description(description)
        if description != conn.description:
            conn.description = description
            changed.append("description")
    if access is not _UNSET:
        access = _clean_access(access)
        if access != conn.access:
            conn.access = access
            changed.append("access")
    if changed:
        _flush_unique(conn.key, conn.name)
        record(actor, "connection.changed", connection_key=conn.key, key=conn.key, changed=changed)
    if disabled is not _UNSET:
        set_disabled(conn, bool(disabled), actor)
    return conn


def set_disabled(conn: ConnectionConfig, disabled: bool, actor: Actor) -> ConnectionConfig:
    """Disable (the manual gate stops waiting for it) or enable; repeating the current state is a no-op."""
    if conn.disabled == disabled:
        return conn
    conn.disabled = disabled
    conn.disabled_at = utcnow() if disabled else None
    db.session.flush()
    record(
        actor,
        "connection.disabled" if disabled else "connection.enabled",
        connection_key=conn.key,
        key=conn.key,
    )
    if disabled and _is_manual(conn):
        privacy_requests.reevaluate_waiting(actor)
    return conn


def delete_connection(conn: ConnectionConfig, actor: Actor) -> None:
    """Delete the connection with its webhook and the manual entries saved for it (database cascade)."""
    details = {
        "key": conn.key,
        "name": conn.name,
        "connection_type": conn.connection_type,
        "had_webhook": conn.manual_webhook is not None,
        "saved_inputs_deleted": saved_input_count(conn),
    }
    was_manual = _is_manual(conn)
    db.session.delete(conn)
    db.session.flush()
    record(actor, "connection.deleted", connection_key=details["key"], **details)
    if was_manual:
        privacy_requests.reevaluate_waiting(actor)
