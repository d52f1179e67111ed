"""Automated collection (S5): a pluggable step producing ``"<dataset>:<collection>" → rows``.

Connectors register per connection type with ``register``. A connector is called once per run with every
enabled connection of the types it was registered for (so references can cross connections) and yields
``("<fides_key>:<collection>", rows)`` pairs, ``rows`` an iterator the caller exhausts before asking for
the next pair; a key may come again with more rows (they follow the earlier ones). So rows stream into the
package and a run never holds a whole collection. A connector may also return a plain
``{key: rows}`` dict. It is called with the run's ``Subject`` (the request's id and identity), and writes
a ``CollectionStep`` per connection in the run's transaction (the runner commits); on failure it raises
``CollectionError`` carrying those steps, which the runner saves after rolling the run back. The database
connectors live in ``portal.execution.connectors`` and are registered here.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from portal.execution.connectors.base import CollectionError, Connector, Found, Subject
from portal.execution.connectors.sql import SQL_CONNECTION_TYPES, collect_databases
from portal.extensions import db
from portal.models import CollectionStep, ConnectionConfig, ConnectionType

__all__ = ["CollectionError", "Connector", "Found", "Subject", "collect", "record_failed_steps", "register"]

_connectors: dict[str, Connector] = dict.fromkeys(SQL_CONNECTION_TYPES, collect_databases)


def register(connection_type: str, connector: Connector) -> None:
    _connectors[connection_type] = connector


# Built once (every run executes it; see ``tokens._ACTIVE_TOKEN``).
_AUTOMATED = (
    select(ConnectionConfig)
    .where(
        ConnectionConfig.connection_type != ConnectionType.MANUAL_WEBHOOK,
        ConnectionConfig.disabled.is_(False),
    )
    .order_by(ConnectionConfig.key)
)


def collect(privacy_request: Subject) -> Found:
    """Every connector's ``(key, rows)`` pairs in turn; close it (``contextlib.closing``) when done."""
    groups: dict[Connector, list[ConnectionConfig]] = {}
    connections = db.session.scalars(_AUTOMATED)
    for connection in connections:
        connector = _connectors.get(connection.connection_type)
        if connector is not None:
            groups.setdefault(connector, []).append(connection)
    for connector, group in groups.items():
        found = connector(group, privacy_request)
        if isinstance(found, Mapping):
            yield from found.items()
        else:
            yield from found


def record_failed_steps(error: CollectionError) -> None:
    """Add the steps of a failed collection to the (new) transaction the runner records the error in."""
    for values in error.steps:
        db.session.add(CollectionStep(**values))
