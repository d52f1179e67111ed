"""What every connector is given and may raise (``portal.execution.collection`` calls them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from portal.models import ConnectionConfig

Found = Iterator[tuple[str, Iterable[dict[str, Any]]]]


class Subject(NamedTuple):
    """The request a run collects for: its id, and the identity (decrypted) the connectors look up."""

    id: str
    identity: dict[str, Any] | None


Connector = Callable[[list[ConnectionConfig], Subject], Found | Mapping[str, list[dict[str, Any]]]]


class CollectionError(RuntimeError):
    """A connector failed; the message is shown to staff, so it must name the connection, not data."""

    def __init__(self, message: str, steps: Sequence[dict[str, Any]] = ()):
        super().__init__(message)
        self.steps = list(steps)  # CollectionStep column values, saved by ``record_failed_steps``
