"""Database connections (S5): their secrets (kept only in the encrypted ``secrets`` column) and the test.

Secrets are either ``{"url": ...}`` or the parts ``host``, ``port``, ``dbname``, ``username``, ``password``
(plus ``db_schema`` for PostgreSQL) — fidesops' names — or ``{"path": ...}`` for SQLite. Nothing here ever
returns or records a password: audit events name the keys that were set, messages mask the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from portal.execution.connectors import fides, sql
from portal.extensions import db
from portal.models import ConnectionConfig, DatasetConfig, utcnow
from portal.models.audit import Actor, record
from portal.services import InvalidState, NotFound, ValidationFailed, connections

DATABASE_TYPES = sql.SQL_CONNECTION_TYPES
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "postgres": ("url", "host", "port", "dbname", "username", "password", "db_schema"),
    "mysql": ("url", "host", "port", "dbname", "username", "password"),
    "sqlite": ("url", "path"),
}
URL_PARTS = ("host", "port", "dbname", "username", "password", "path")
MAX_SECRET_LENGTH = 2000


@dataclass(frozen=True)
class ConnectionTest:
    succeeded: bool
    message: str


def is_database(conn: ConnectionConfig) -> bool:
    return conn.connection_type in DATABASE_TYPES


def get_database(key: str) -> ConnectionConfig:
    """The connection ``key`` when it is a database connection (NotFound otherwise)."""
    conn = connections.get_connection(key)
    if not is_database(conn):
        raise NotFound(f"Connection '{key}' is not a database connection.")
    return conn


def require_database(conn: ConnectionConfig) -> ConnectionConfig:
    if not is_database(conn):
        raise InvalidState(
            f"Connection '{conn.key}' is of type '{conn.connection_type}'; only database connections "
            f"({', '.join(DATABASE_TYPES)}) have connection details and datasets."
        )
    return conn


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [((field,), message)])


def clean_secrets(
    connection_type: str, values: dict[str, Any], existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validated secrets: blanks dropped, a URL replaces the parts, a blank password keeps the saved one."""
    allowed = SECRET_KEYS[connection_type]
    unknown = sorted(k for k in values if k not in allowed)
    if unknown:
        message = f"Unknown connection detail{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}."
        raise _fail(unknown[0], message + f" A {connection_type} connection takes: {', '.join(allowed)}.")
    secrets: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "port" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _fail(key, f"{key} must be a string.")
        value = value if key == "password" else value.strip()
        if len(value) > MAX_SECRET_LENGTH:
            raise _fail(key, f"{key} must be at most {MAX_SECRET_LENGTH} characters long.")
        if value:
            secrets[key] = value
    if "port" in secrets:
        if not secrets["port"].isdigit() or not 1 <= int(secrets["port"]) <= 65535:
            raise _fail("port", "The port must be a number from 1 to 65535.")
        secrets["port"] = int(secrets["port"])
    if secrets.get("url"):
        secrets = {k: v for k, v in secrets.items() if k not in URL_PARTS}
    elif (
        existing
        and "password" not in secrets
        and existing.get("password")
        and all(secrets.get(k) == existing.get(k) for k in ("host", "username"))
    ):
        secrets["password"] = existing["password"]  # "leave blank to keep": same server, same user
    if not secrets.get("url") and not any(secrets.get(k) for k in ("host", "path")):
        what = "the path of the database file" if connection_type == "sqlite" else "the host"
        raise _fail("url", f"Enter a connection URL, or {what}.")
    field = "url" if secrets.get("url") else "path" if connection_type == "sqlite" else "host"
    try:
        url = sql.database_url(connection_type, secrets)
    except sql.SecretsError as exc:
        raise _fail(field, str(exc)) from None
    if connection_type == "sqlite" and _is_portal_database(url):
        raise _fail(field, "That is the portal's own database file; point to the database to collect from.")
    return secrets


def _is_portal_database(url: sa.URL) -> bool:
    """A SQLite connection must not read the portal's own tables (users, tokens) into packages."""
    portal = sa.make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if portal.get_backend_name() != "sqlite" or not portal.database:
        return False
    target = unquote((url.database or "").removeprefix("file:"))
    return Path(target).resolve() == Path(portal.database).resolve()


def save_secrets(
    conn: ConnectionConfig, values: dict[str, Any], actor: Actor, *, keep_password: bool = True
) -> dict[str, Any]:
    """Replace the connection's secrets (encrypted at rest). The audit event lists keys, never values."""
    require_database(conn)
    secrets = clean_secrets(conn.connection_type, values, conn.secrets if keep_password else None)
    conn.secrets = secrets
    db.session.flush()
    record(actor, "connection.secrets_changed", connection_key=conn.key, keys=sorted(secrets))
    return secrets


def describe(conn: ConnectionConfig) -> str | None:
    """Where the connection points, password masked; None when no details are saved."""
    if not conn.secrets or not is_database(conn):
        return None
    return sql.describe_url(conn.connection_type, conn.secrets)


def form_defaults(conn: ConnectionConfig) -> dict[str, Any]:
    """Saved parts to pre-fill a form with: never the password, never the URL (it may hold one)."""
    return {k: v for k, v in (conn.secrets or {}).items() if k not in ("password", "url")}


def test_connection(conn: ConnectionConfig, actor: Actor) -> ConnectionTest:
    """Connect, run ``SELECT 1``, and look each dataset collection up; the message is plain words."""
    require_database(conn)
    result = _test(conn)
    # A test is not an edit of the connection: its updated_at stays.
    db.session.execute(
        sa.update(ConnectionConfig)
        .where(ConnectionConfig.id == conn.id)
        .values(
            last_test_timestamp=utcnow(),
            last_test_succeeded=result.succeeded,
            updated_at=ConnectionConfig.updated_at,
        ),
        execution_options={"synchronize_session": "fetch"},
    )
    record(actor, "connection.tested", connection_key=conn.key, succeeded=result.succeeded)
    return result


def _test(conn: ConnectionConfig) -> ConnectionTest:
    secrets = conn.secrets or {}
    if not secrets:
        return ConnectionTest(False, "No connection details are saved yet: enter a URL or host first.")
    where = describe(conn)
    try:
        engine = sql.create_engine(conn.connection_type, secrets)
    except sql.SecretsError as exc:
        return ConnectionTest(False, f"The saved connection details are incomplete: {exc}")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            missing = _missing_collections(conn, connection)
    except SQLAlchemyError as exc:
        return ConnectionTest(False, f"Could not connect to {where}: {sql.plain_error(exc, secrets)}")
    finally:
        engine.dispose()
    if missing:
        return ConnectionTest(
            False, f"Connected to {where}, but the dataset does not match the database: " + " ".join(missing)
        )
    return ConnectionTest(True, f"Connected to {where}.")


def _missing_collections(conn: ConnectionConfig, connection: sa.Connection) -> list[str]:
    """Each dataset collection queried with ``LIMIT 0``: its table and columns must exist."""
    problems: list[str] = []
    configs = db.session.scalars(
        sa.select(DatasetConfig)
        .where(DatasetConfig.connection_config_id == conn.id)
        .order_by(DatasetConfig.fides_key)
    )
    for config in configs:
        dataset = fides.Dataset.model_validate(config.dataset)
        graph = fides.build_graph([(conn.key, dataset)])
        for node in graph.nodes.values():
            if node.skip:
                continue
            table = sa.table(
                node.name,
                *(sa.column(name) for name in node.fields),
                schema=sql.schema_for(conn.connection_type, conn.secrets or {}, node),
            )
            try:
                connection.execute(sa.select(*table.c).limit(0))
            except SQLAlchemyError as exc:
                connection.rollback()  # PostgreSQL refuses further statements in a failed transaction
                message = sql.plain_error(exc, conn.secrets).rstrip(".")
                problems.append(f"Collection '{node.key}': {message}.")
    return problems
