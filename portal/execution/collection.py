"""Automated collection (S5): a pluggable step producing ``"<dataset>:<collection>" → rows``.

Connectors register per connection type with ``register``. The database connectors arrive with the
collection feature; until then no connection type has a connector and the step yields nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import ConnectionConfig, ConnectionType, PrivacyRequest

Rows = dict[str, list[dict[str, Any]]]
Connector = Callable[[ConnectionConfig, PrivacyRequest], Rows]

_connectors: dict[str, Connector] = {}


class CollectionError(RuntimeError):
    """A connector failed; the message is shown to staff, so it must name the connection, not data."""


def register(connection_type: str, connector: Connector) -> None:
    _connectors[connection_type] = connector


def collect(privacy_request: PrivacyRequest) -> Rows:
    results: Rows = {}
    connections = db.session.scalars(
        select(ConnectionConfig)
        .where(
            ConnectionConfig.connection_type != ConnectionType.MANUAL_WEBHOOK,
            ConnectionConfig.disabled.is_(False),
        )
        .order_by(ConnectionConfig.key)
    )
    for connection in connections:
        connector = _connectors.get(connection.connection_type)
        if connector is not None:
            results.update(connector(connection, privacy_request))
    return results
