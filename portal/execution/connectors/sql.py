"""SQL collection (S5): connect with the saved secrets, walk the reference graph, run parameterised SELECTs.

Every query is SQLAlchemy Core (``select(...).where(column.in_(values))``): table and column names are
quoted identifiers from the dataset, values are always bound parameters, never text in the SQL.

The walk is breadth-first and runs to a fixed point: identity values seed the identity fields; each query
returns rows whose field values flow along the graph's edges into the next collections; a collection is
queried again only with values it has not been searched by. Rows are de-duplicated (by primary key when the
dataset declares one). Emails are matched case-insensitively because the portal stores them lower-cased.

Rows stream: each query is read in batches (a server-side cursor on PostgreSQL and MySQL) and
each row goes straight on to the package writer; the walk keeps only a digest of every row it returned
(for de-duplication) and the values it still has to follow, never the rows.

Over 400 lines because the walk, its statements and the streaming cursor are one job whose parts share
the row digests and the per-run engine; split, each part would need the others' internals.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import math
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app
from pydantic import ValidationError
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from portal.execution.connectors.base import CollectionError, Subject
from portal.execution.connectors.fides import CollectionNode, Dataset, DatasetGraph, build_graph
from portal.extensions import db
from portal.extensions import run as run_statement  # ``run`` is a run number here
from portal.models import CollectionStep, ConnectionConfig, DatasetConfig

SQL_CONNECTION_TYPES = ("postgres", "mysql", "sqlite")
DRIVERS = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql", "sqlite": "sqlite"}
URL_BACKENDS = {"postgres": {"postgresql"}, "mysql": {"mysql", "mariadb"}, "sqlite": {"sqlite"}}
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 30
CHUNK_SIZE = 500  # values per query
FETCH_BATCH = 500  # rows fetched from the driver at a time
DEFAULT_MAX_ROWS = 10_000
MAX_MESSAGE_LENGTH = 400


class SecretsError(ValueError):
    """The saved connection details cannot make a URL; the message names the problem, never a value."""


# --- connecting ---------------------------------------------------------------------------------------


def database_url(connection_type: str, secrets: dict[str, Any]) -> URL:
    """The SQLAlchemy URL (with this portal's driver) for a connection's secrets: ``url`` or the parts."""
    if connection_type not in SQL_CONNECTION_TYPES:
        raise SecretsError(f"'{connection_type}' is not a database connection type.")
    if secrets.get("url"):
        try:
            url = make_url(secrets["url"])
        except (ArgumentError, ValueError):
            raise SecretsError(
                "The connection URL cannot be read; it looks like " + _example_url(connection_type) + "."
            ) from None
        backend = url.get_backend_name()
        if backend not in URL_BACKENDS[connection_type]:
            raise SecretsError(
                f"The connection URL is for '{backend}', but this is a {connection_type} connection; it looks "
                f"like {_example_url(connection_type)}."
            )
        url = url.set(drivername=DRIVERS[connection_type])
    elif connection_type == "sqlite":
        url = URL.create("sqlite", database=secrets.get("path") or None)
    else:
        url = URL.create(
            DRIVERS[connection_type],
            username=secrets.get("username") or None,
            password=secrets.get("password") or None,
            host=secrets.get("host") or None,
            port=int(secrets["port"]) if secrets.get("port") else None,
            database=secrets.get("dbname") or None,
        )
    if connection_type == "sqlite":
        return _read_only_sqlite(url)
    if not url.host:
        raise SecretsError("A host is required.")
    return url


def _example_url(connection_type: str) -> str:
    return {
        "postgres": "postgresql://user:password@host:5432/database",
        "mysql": "mysql://user:password@host:3306/database",
        "sqlite": "sqlite:////absolute/path/to/file.db",
    }[connection_type]


def _read_only_sqlite(url: URL) -> URL:
    """SQLite opened read-only through a URI, so a wrong path fails instead of creating an empty file."""
    path = url.database or ""
    if path.startswith("file:"):
        return url
    if not path or path == ":memory:" or not path.startswith("/"):
        raise SecretsError("The SQLite path must be an absolute path to an existing database file.")
    return URL.create("sqlite", database=f"file:{quote(path)}", query={"mode": "ro", "uri": "true"})


def create_engine(connection_type: str, secrets: dict[str, Any]) -> Engine:
    """An engine with short connect and statement timeouts and no pool (one run, one connection)."""
    url = database_url(connection_type, secrets)
    if connection_type == "postgres":
        options = (
            f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000} -c default_transaction_read_only=on"
        )
        connect_args: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": options,
            "application_name": "manual-webhook-portal",
        }
    elif connection_type == "mysql":
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": STATEMENT_TIMEOUT_SECONDS,
            "write_timeout": STATEMENT_TIMEOUT_SECONDS,
        }
    else:
        connect_args = {"timeout": CONNECT_TIMEOUT_SECONDS}
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


# Runs reuse one engine per source (per process): an engine compiles and caches the source's SELECTs, so a
# new engine per run compiled them again on every run, and building one costs as much again.
# Still no pool: each run opens its own connection and closes it at the end. Keyed by the URL and type,
# so changed connection details get a new engine.
_SHARED_ENGINES: dict[tuple[str, str], Engine] = {}
_SHARED_ENGINES_LIMIT = 64
_shared_engines_lock = threading.Lock()


def shared_engine(connection_type: str, secrets: dict[str, Any]) -> Engine:
    """``create_engine`` for this source, made once per process and kept (see ``_SHARED_ENGINES``)."""
    key = (connection_type, database_url(connection_type, secrets).render_as_string(hide_password=False))
    with _shared_engines_lock:
        engine = _SHARED_ENGINES.get(key)
        if engine is None:
            if len(_SHARED_ENGINES) >= _SHARED_ENGINES_LIMIT:
                _SHARED_ENGINES.clear()  # engines without a pool hold no connections: nothing to close
            engine = _SHARED_ENGINES[key] = create_engine(connection_type, secrets)
        return engine


def schema_for(connection_type: str, secrets: dict[str, Any], node: CollectionNode) -> str | None:
    """The dataset's ``fides_meta.namespace.schema`` wins over the connection's ``db_schema``."""
    if connection_type == "sqlite":
        return None
    return node.schema or secrets.get("db_schema") or None


_WHITESPACE = re.compile(r"\s+")


def plain_error(exc: BaseException, secrets: dict[str, Any] | None = None, hide: Iterable[Any] = ()) -> str:
    """The driver's own message in one line, with secrets and the searched values masked.

    Only the DBAPI exception is used (SQLAlchemy's text appends the SQL parameters). Masking every value we
    sent keeps identity values out of error messages, which are stored unencrypted and shown to staff.
    """
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    pymysql_style = len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str)
    text = args[1] if pymysql_style else str(orig)  # PyMySQL's args are (code, message)
    text = text.split("\nLINE ", 1)[0]  # PostgreSQL's echo of the statement
    text = _WHITESPACE.sub(" ", text).strip() or type(orig).__name__
    secrets = secrets or {}
    hidden = [secrets.get("password"), secrets.get("url"), *(str(v) for v in hide if v is not None)]
    with contextlib.suppress(ArgumentError, ValueError):
        hidden.append(make_url(secrets["url"]).password if secrets.get("url") else None)
    for value in sorted({str(h) for h in hidden if h and len(str(h)) >= 2}, key=len, reverse=True):
        text = text.replace(value, "***")
    if len(text) > MAX_MESSAGE_LENGTH:
        text = text[: MAX_MESSAGE_LENGTH - 1] + "…"
    return text


def describe_url(connection_type: str, secrets: dict[str, Any]) -> str:
    """Where a connection points, password masked (for admin pages and messages)."""
    try:
        url = database_url(connection_type, secrets)
    except SecretsError:
        return "(incomplete)"
    if connection_type == "sqlite":
        return secrets.get("path") or (make_url(secrets["url"]).database or "")
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


# --- values -------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A database value as JSON the package can hold (dates as ISO text, bytes as base64)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


_SKIP = object()


def coerce(value: Any, data_type: str | None) -> Any:
    """A value to search a field by, cast to the field's declared ``data_type``; ``_SKIP`` if it cannot be."""
    if isinstance(value, dict | list | bytes | bytearray | memoryview):
        return _SKIP  # structured values are returned, never searched by
    try:
        if data_type == "string":
            return value if isinstance(value, str) else str(jsonable(value))
        if data_type == "integer":
            number = Decimal(str(value).strip())
            return int(number) if number == number.to_integral_value() else _SKIP
        if data_type == "float":
            return float(value)
        if data_type == "boolean":
            return value if isinstance(value, bool) else _SKIP
    except (ArithmeticError, ValueError, TypeError):
        return _SKIP
    return value


# --- the walk -----------------------------------------------------------------------------------------

Row = dict[str, Any]
Fetch = Callable[[CollectionNode, str, list[Any], bool], Iterable[Row]]


class TooManyRows(Exception):
    def __init__(self, node: CollectionNode, limit: int):
        super().__init__(node.key)
        self.node = node
        self.limit = limit


def _row_key(node: CollectionNode, row: Row) -> bytes:
    """A row's identity (its primary key when the dataset declares one) as a 16-byte digest."""
    if node.primary_keys and all(row.get(k) is not None for k in node.primary_keys):
        key: tuple = ("pk", *(repr(jsonable(row[k])) for k in node.primary_keys))
    else:
        key = ("row", repr(sorted((k, repr(jsonable(v))) for k, v in row.items())))
    return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()


def traverse(
    graph: DatasetGraph, identities: dict[str, Any], fetch: Fetch, max_rows: int = DEFAULT_MAX_ROWS
) -> Iterator[tuple[CollectionNode, Iterator[Row]]]:
    """Breadth-first from the identities to a fixed point, one query step at a time.

    Yields ``(node, rows)`` for every step: the rows of that collection no earlier step returned, as JSON
    values. Exhaust ``rows`` before the next step: the walk goes on from the values they carry.
    """
    known: dict[tuple[str, str], dict[tuple[str, bool], set[Any]]] = defaultdict(lambda: defaultdict(set))
    searched: dict[tuple[str, str], dict[tuple[str, bool], set[Any]]] = defaultdict(lambda: defaultdict(set))
    returned: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    queue: deque[tuple[str, str]] = deque()
    queued: set[tuple[str, str]] = set()

    def offer(node_id: tuple[str, str], field: str, value: Any, case_insensitive: bool = False) -> None:
        node = graph.nodes.get(node_id)
        if node is None or node.skip or value is None:
            return
        value = coerce(value, node.data_types.get(field))
        if value is _SKIP:
            return
        values = known[node_id][(field, case_insensitive)]
        if value not in values:
            values.add(value)
            if node_id not in queued:
                queued.add(node_id)
                queue.append(node_id)

    for node in graph.nodes.values():
        for field, identity in node.identities.items():
            value = identities.get(identity)
            if isinstance(value, str) and value:
                if identity == "email":
                    offer(node.id, field, value.lower(), case_insensitive=True)
                else:
                    offer(node.id, field, value)

    outgoing = graph.outgoing()

    def step(node: CollectionNode, follow: list[tuple[Any, Any]], done: list[bool]) -> Iterator[Row]:
        seen = returned[node.id]
        edges = outgoing.get(node.id, ())
        for (field, case_insensitive), values in known[node.id].items():
            pending = values - searched[node.id][(field, case_insensitive)]
            if not pending:
                continue
            searched[node.id][(field, case_insensitive)] |= pending
            ordered = sorted(pending, key=lambda v: (type(v).__name__, repr(v)))
            for start in range(0, len(ordered), CHUNK_SIZE):
                for row in fetch(node, field, ordered[start : start + CHUNK_SIZE], case_insensitive):
                    key = _row_key(node, row)
                    if key in seen:
                        continue
                    seen.add(key)
                    if len(seen) > max_rows:
                        raise TooManyRows(node, max_rows)
                    follow.extend((edge, row.get(edge.source.field)) for edge in edges)
                    yield {k: jsonable(v) for k, v in row.items()}
        done.append(True)

    while queue:
        node_id = queue.popleft()
        queued.discard(node_id)
        follow: list[tuple[Any, Any]] = []
        done: list[bool] = []
        yield graph.nodes[node_id], step(graph.nodes[node_id], follow, done)
        if not done:
            raise RuntimeError("traverse: a step's rows were not read to the end")
        for edge, value in follow:
            offer(edge.target.node, edge.target.field, value)


# --- one connection during a run --------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _lookup(
    name: str,
    fields: tuple[str, ...],
    primary_keys: tuple[str, ...],
    schema: str | None,
    field: str,
    lower: bool,
) -> sa.Select:
    """The SELECT of one collection's rows by one field's values (``:values``), built once per shape: a
    statement built on every step had SQLAlchemy construct it and compute its cache key each time."""
    table = sa.table(name, *(sa.column(column) for column in fields), schema=schema)
    column = table.c[field]
    values = sa.bindparam("values", expanding=True)
    query = sa.select(*table.c).where(sa.func.lower(column).in_(values) if lower else column.in_(values))
    if primary_keys:
        query = query.order_by(*(table.c[k] for k in primary_keys))
    return query


class SourceFailed(Exception):
    def __init__(self, source: Source, message: str):
        super().__init__(message)
        self.source = source
        self.message = message


class Source:
    """One database connection during one run: opened at its first query, timed, closed at the end."""

    def __init__(self, connection: ConnectionConfig):
        self.connection = connection
        self.secrets: dict[str, Any] = connection.secrets or {}
        self.seconds = 0.0
        self.row_counts: dict[str, int] = {}
        self._conn: sa.Connection | None = None

    def _open(self) -> sa.Connection:
        if not self.secrets:
            raise SourceFailed(
                self, "no connection details are saved for it; an admin can enter them on its database page."
            )
        try:
            self._conn = shared_engine(self.connection.connection_type, self.secrets).connect()
        except SecretsError as exc:
            raise SourceFailed(self, str(exc)) from None
        except SQLAlchemyError as exc:
            raise SourceFailed(self, plain_error(exc, self.secrets)) from None
        return self._conn

    def fetch(
        self, node: CollectionNode, field: str, values: list[Any], case_insensitive: bool
    ) -> Iterator[Row]:
        """The matching rows, read from the driver ``FETCH_BATCH`` at a time (timed, errors masked)."""
        start = time.perf_counter()
        try:
            conn = self._conn or self._open()
            schema = schema_for(self.connection.connection_type, self.secrets, node)
            query = _lookup(
                node.name, tuple(node.fields), tuple(node.primary_keys), schema, field, case_insensitive
            )
            result = conn.execute(query, {"values": values}, execution_options={"yield_per": FETCH_BATCH})
        except SQLAlchemyError as exc:
            raise SourceFailed(self, plain_error(exc, self.secrets, hide=values)) from None
        finally:
            self.seconds += time.perf_counter() - start
        # Rows returned so far (before de-duplication); replaced by the final counts when the walk ends.
        self.row_counts.setdefault(node.key, 0)
        batches = result.mappings().partitions()
        try:
            while True:
                start = time.perf_counter()
                try:
                    batch = next(batches, None)
                except SQLAlchemyError as exc:
                    raise SourceFailed(self, plain_error(exc, self.secrets, hide=values)) from None
                finally:
                    self.seconds += time.perf_counter() - start
                if batch is None:
                    return
                self.row_counts[node.key] += len(batch)
                for row in batch:
                    yield dict(row)
        finally:
            result.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def step(self, privacy_request_id: str, run: int, error: str | None = None) -> dict[str, Any]:
        return {
            "privacy_request_id": privacy_request_id,
            "run": run,
            "connection_key": self.connection.key,
            "connection_name": self.connection.name,
            "rows_found": sum(self.row_counts.values()),
            "row_counts": dict(sorted(self.row_counts.items())),
            "duration_ms": round(self.seconds * 1000),
            "error": error,
        }


# Core statements built once (every run with a database connection executes both).
_steps = CollectionStep.__table__
_LAST_RUN = sa.select(sa.func.max(_steps.c.run)).where(
    _steps.c.privacy_request_id == sa.bindparam("request_id")
)
_INSERT_STEP = sa.insert(_steps)


_DATASETS = (
    sa.select(DatasetConfig)
    .where(DatasetConfig.connection_config_id.in_(sa.bindparam("connection_ids", expanding=True)))
    .order_by(DatasetConfig.fides_key)
)


def _next_run(privacy_request_id: str) -> int:
    last = run_statement(_LAST_RUN, {"request_id": privacy_request_id}).scalar()
    return (last or 0) + 1


def _failed(connection: ConnectionConfig, message: str) -> str:
    return f"Collection from connection '{connection.key}' failed: {message}"


def collect_databases(
    connections: list[ConnectionConfig], privacy_request: Subject
) -> Iterator[tuple[str, Iterator[Row]]]:
    """The registered connector for every SQL type: one graph over all their datasets, one step each."""
    by_id = {c.id: c for c in connections}
    configs = db.session.scalars(_DATASETS, {"connection_ids": list(by_id)}).all()
    if not configs:
        return
    run = _next_run(privacy_request.id)
    sources = {cid: Source(by_id[cid]) for cid in dict.fromkeys(c.connection_config_id for c in configs)}
    entries = []
    for config in configs:
        try:
            entries.append((by_id[config.connection_config_id].key, Dataset.model_validate(config.dataset)))
        except ValidationError:
            source = sources[config.connection_config_id]
            message = f"its dataset '{config.fides_key}' no longer loads; save it again on its database page."
            raise CollectionError(
                _failed(source.connection, message),
                [s.step(privacy_request.id, run, message if s is source else None) for s in sources.values()],
            ) from None
    graph = build_graph(entries)  # references to disabled or deleted datasets are simply not followed
    by_key = {s.connection.key: s for s in sources.values()}
    max_rows = current_app.config.get("COLLECTION_MAX_ROWS", DEFAULT_MAX_ROWS)
    found: dict[tuple[str, str], int] = {}

    def fetch(node: CollectionNode, field: str, values: list[Any], case_insensitive: bool) -> Iterator[Row]:
        return by_key[node.connection_key].fetch(node, field, values, case_insensitive)

    def counted(node: CollectionNode, rows: Iterator[Row]) -> Iterator[Row]:
        """The step's rows, counted; a failing source or too many rows become a ``CollectionError``."""
        try:
            for row in rows:
                found[node.id] += 1
                yield row
        except (SourceFailed, TooManyRows) as exc:
            if isinstance(exc, TooManyRows):
                failing = by_key[exc.node.connection_key]
                message = (
                    f"collection '{exc.node.key}' matched more than {exc.limit:,} rows; check the dataset's "
                    "references (a reference on a field shared by many rows pulls in the whole table)."
                )
            else:
                failing, message = exc.source, exc.message
            steps = [
                s.step(privacy_request.id, run, message if s is failing else None) for s in sources.values()
            ]
            raise CollectionError(_failed(failing.connection, message), steps) from None

    try:
        for node, rows in traverse(graph, privacy_request.identity or {}, fetch, max_rows):
            found.setdefault(node.id, 0)
            yield node.key, counted(node, rows)
    finally:
        for source in sources.values():
            source.close()

    for node_id, count in found.items():
        node = graph.nodes[node_id]
        by_key[node.connection_key].row_counts[node.key] = count
    run_statement(_INSERT_STEP, [source.step(privacy_request.id, run) for source in sources.values()])
