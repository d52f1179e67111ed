"""Reading the audit trail (S7): filter, paginate in SQL, export CSV. Events are append-only: nothing here
(or anywhere) edits or deletes them.

Filters carry request ids, staff emails, action names and dates only, never data-subject identity values,
so they may travel in a query string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, select

from portal.extensions import db
from portal.models import AuditEvent
from portal.services.reports import csv_text

# Every action the portal writes today; actions found in the table are added, so a new one shows up
# in the filter as soon as it has happened once.
KNOWN_ACTIONS = (
    "connection.secrets_changed",
    "connection.tested",
    "dataset.saved",
    "dataset.deleted",
    "connection.changed",
    "connection.created",
    "connection.deleted",
    "connection.disabled",
    "connection.enabled",
    "login.failed",
    "login.succeeded",
    "logout",
    "manual_input.saved",
    "notification.preferences_changed",
    "package.downloaded",
    "package.viewed",
    "request.approved",
    "request.canceled",
    "request.completed",
    "request.created",
    "request.denied",
    "request.errored",
    "request.identity_revealed",
    "request.requires_input",
    "request.resumed",
    "request.retried",
    "request.run_started",
    "token.created",
    "token.revoked",
    "user.changed",
    "user.created",
    "user.password_changed",
    "user.password_reset",
    "webhook.changed",
    "webhook.created",
    "webhook.deleted",
)
CSV_HEADER = ["id", "time_utc", "actor", "actor_kind", "action", "request_id", "connection_key", "details"]
CSV_BATCH = 500
CSV_CUT_OFF = (
    "The export stopped early because of an error: events are missing below this line. Export again."
)


@dataclass(frozen=True)
class AuditFilter:
    """All optional. ``actor`` matches as a case-insensitive substring, or exactly with ``actor_exact``;
    ``date_from`` / ``date_to`` are whole UTC days, both inclusive."""

    request_id: str | None = None
    actor: str | None = None
    actor_exact: bool = False
    action: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    @property
    def active(self) -> bool:
        return any((self.request_id, self.actor, self.action, self.date_from, self.date_to))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def events_query(filters: AuditFilter) -> Select:
    """Newest first (id breaks ties between events written in the same instant)."""
    stmt = select(AuditEvent)
    if filters.request_id:
        stmt = stmt.where(AuditEvent.privacy_request_id == filters.request_id.strip())
    if filters.actor:
        actor = filters.actor.strip()
        if filters.actor_exact:
            stmt = stmt.where(AuditEvent.actor_label == actor)
        else:
            stmt = stmt.where(AuditEvent.actor_label.ilike(_like_pattern(actor), escape="\\"))
    if filters.action:
        stmt = stmt.where(AuditEvent.action == filters.action)
    if filters.date_from:
        stmt = stmt.where(AuditEvent.created_at >= _start_of(filters.date_from))
    if filters.date_to and filters.date_to < date.max:  # up to the last day of the calendar: no bound
        stmt = stmt.where(AuditEvent.created_at < _start_of(filters.date_to + timedelta(days=1)))
    return stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


def list_events(filters: AuditFilter, *, page: int = 1, per_page: int = 50):
    """One page of events (a Flask-SQLAlchemy ``Pagination``: LIMIT/OFFSET and a COUNT in SQL)."""
    return db.paginate(
        events_query(filters),
        page=max(1, page),
        per_page=per_page,
        max_per_page=per_page,
        error_out=False,
    )


def known_actions() -> list[str]:
    found = db.session.scalars(select(AuditEvent.action).distinct()).all()
    return sorted(set(KNOWN_ACTIONS) | set(found))


def detail_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def detail_pairs(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Details as (key, text) pairs for people; the template escapes both."""
    return [(str(key), detail_text(value)) for key, value in (details or {}).items()]


def _csv_row(event: AuditEvent) -> list[Any]:
    return [
        event.id,
        event.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        event.actor_label,
        event.actor_type,
        event.action,
        event.privacy_request_id or "",
        event.connection_key or "",
        json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True),
    ]


def iter_csv(filters: AuditFilter) -> Iterator[bytes]:
    """The filtered trail as CSV chunks (header first), read in batches so memory stays flat.

    UTF-8 with a byte-order mark and CSV-injection safe, like the package CSVs (see ``reports``). The
    query runs before this returns, so a filter that cannot run is the caller's error, never a file with
    a header and nothing else.
    """
    chunks = _csv_chunks(events_query(filters))
    return _after(next(chunks), chunks)


def _after(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _csv_chunks(statement: Select) -> Iterator[bytes]:
    result = db.session.execute(statement.execution_options(yield_per=CSV_BATCH))
    try:
        yield ("\ufeff" + csv_text(CSV_HEADER, [])).encode("utf-8")
        for batch in result.scalars().partitions():
            yield csv_text(None, [_csv_row(event) for event in batch]).encode("utf-8")
    except Exception:
        # The status line is long gone: say so in the file, then fail the transfer, so neither a person
        # opening the file nor a browser or script downloading it takes it for the whole trail.
        yield csv_text(None, [[CSV_CUT_OFF]]).encode("utf-8")
        raise
    finally:
        result.close()  # also when the download is abandoned (a server-side cursor on PostgreSQL)
