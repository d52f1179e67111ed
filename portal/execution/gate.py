"""The manual gate (S4): every enabled webhook with fields needs a current-version ManualInput.

``gated_webhooks()`` is on the hot path of the queue, the request page and every run, so it returns light
snapshots rather than ORM objects: one small query reads the connections' current columns on every call
(so a rename, a disable or a new version is seen at once, by every process), and only the field lists —
the large JSON — are cached per process, keyed by (webhook id, created_at, version). A webhook's
``version`` grows whenever its field list changes, and ``created_at`` tells a webhook from a later one
that reused its id (SQLite reuses the highest rowid after a delete), so a cached list is never stale. The
last answer is kept too, with the rows it came from: when the rows are the same, so is the answer,
without building 50 snapshots again. A request's progress (``PROGRESS``) is counted by the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select

from portal.extensions import db, run
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    ManualWebhookVersion,
    PrivacyRequest,
)

# (webhook id, created_at, version) → field definitions. Bounded: cleared when it outgrows any real deployment.
_FIELDS_CACHE: dict[tuple[int, datetime, int], tuple[dict[str, Any], ...]] = {}
_FIELDS_CACHE_LIMIT = 5_000
# The last answer of ``gated_webhooks`` per database, with the rows it was built from.
_LAST_GATED: dict[Any, tuple[list, tuple[GatedWebhook, ...]]] = {}


@dataclass(frozen=True)
class GatedConnection:
    id: int
    key: str
    name: str
    description: str | None


@dataclass(frozen=True)
class GatedFields:
    """A webhook's field definitions at one version (shared between requests: never mutate them)."""

    id: int
    version: int
    fields: tuple[dict[str, Any], ...]

    @property
    def labels(self) -> list[str]:
        return [f["dsr_package_label"] for f in self.fields]


@dataclass(frozen=True)
class GatedWebhook:
    connection: GatedConnection
    webhook: GatedFields

    @property
    def key(self) -> str:
        return self.connection.key


def _gated_condition():
    return (
        ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK,
        ConnectionConfig.disabled.is_(False),
    )


_GATED = (
    select(
        ConnectionConfig.id,
        ConnectionConfig.key,
        ConnectionConfig.name,
        ConnectionConfig.description,
        ManualWebhook.id,
        ManualWebhook.created_at,
        ManualWebhook.version,
    )
    .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
    .where(*_gated_condition())
    .order_by(ConnectionConfig.name)
)  # built once: building a statement costs more than running this one


def _load_fields(hook_ids: list[int]) -> dict[int, tuple[int, tuple[dict[str, Any], ...]]]:
    """Read these webhooks' field lists now, cache them, and return ``{id: (version, fields)}``."""
    if len(_FIELDS_CACHE) > _FIELDS_CACHE_LIMIT:
        _FIELDS_CACHE.clear()
    loaded = run(
        select(ManualWebhook.id, ManualWebhook.created_at, ManualWebhook.version, ManualWebhook.fields).where(
            ManualWebhook.id.in_(hook_ids)
        )
    )
    now = {}
    for hook_id, created_at, version, fields in loaded:
        now[hook_id] = (version, tuple(fields or ()))
        _FIELDS_CACHE[(hook_id, created_at, version)] = now[hook_id][1]
    return now


def webhook_fields(hook_id: int, created_at: datetime, version: int) -> tuple[dict[str, Any], ...]:
    """One webhook's field definitions at exactly ``version`` (kept per version, so immutable), cached."""
    key = (hook_id, created_at, version)
    cached = _FIELDS_CACHE.get(key)
    if cached is None:
        fields = run(_VERSION_FIELDS, {"hook_id": hook_id, "version": version}).scalar()
        if fields is None:
            return ()
        cached = _FIELDS_CACHE[key] = tuple(fields)
    return cached


# The kept list of that version; the webhook's own list when it is that version and none was kept (a row
# written around the service, as bulk seeding does).
_VERSION_FIELDS = (
    select(func.coalesce(ManualWebhookVersion.fields, ManualWebhook.fields))
    .select_from(ManualWebhook)
    .outerjoin(
        ManualWebhookVersion,
        (ManualWebhookVersion.webhook_id == ManualWebhook.id)
        & (ManualWebhookVersion.version == bindparam("version")),
    )
    .where(
        ManualWebhook.id == bindparam("hook_id"),
        ManualWebhookVersion.id.is_not(None) | (ManualWebhook.version == bindparam("version")),
    )
)


def gated_webhooks() -> list[GatedWebhook]:
    """Enabled manual connections whose webhook has at least one field, by name."""
    return _gated_from([tuple(row) for row in run(_GATED)])


def _gated_from(rows: list[tuple]) -> list[GatedWebhook]:
    """The gated webhooks for these rows of ``_GATED``'s columns (the last answer again if they match)."""
    last = _LAST_GATED.get(db.engine.url)
    if last is not None and last[0] == rows:  # nothing changed since the last call: the same answer
        return list(last[1])
    unknown = [row[4] for row in rows if tuple(row[4:]) not in _FIELDS_CACHE]
    fields_now = _load_fields(unknown) if unknown else {}
    gated = []
    for conn_id, key, name, description, hook_id, created_at, version in rows:
        if hook_id in fields_now:  # read just now: its version may be newer than the first query's
            version, fields = fields_now[hook_id]
        else:
            fields = _FIELDS_CACHE[(hook_id, created_at, version)]
        if fields:
            gated.append(
                GatedWebhook(
                    GatedConnection(conn_id, key, name, description), GatedFields(hook_id, version, fields)
                )
            )
    if not fields_now:  # every definition came from the cache, so ``rows`` say all there is to say
        if len(_LAST_GATED) > 100:
            _LAST_GATED.clear()
        _LAST_GATED[db.engine.url] = (rows, tuple(gated))
    return gated


def gated_webhook_models() -> list[tuple[ConnectionConfig, ManualWebhook]]:
    """The same webhooks as ORM objects, for the API's full representation (one query)."""
    rows = db.session.execute(
        select(ConnectionConfig, ManualWebhook)
        .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
        .where(*_gated_condition())
        .order_by(ConnectionConfig.name)
    ).all()
    return [(conn, hook) for conn, hook in rows if hook.fields]


def applies_to(privacy_request: PrivacyRequest) -> bool:
    """Erasure-only policies are not gated until erasure support exists."""
    return applies_to_action(privacy_request.policy.action_type)


def applies_to_action(action_type: str) -> bool:
    """``applies_to`` for a request whose policy has this action type."""
    return action_type == "access"


class StoredInput(NamedTuple):
    """A request's entry for one manual connection, as columns: the request page and every run read all
    of a request's entries, and loading them as ORM objects cost more than decrypting them."""

    connection_config_id: int
    version: int
    values: Any  # label → str | None, or an UndecryptableValue
    entered_by_label: str
    entered_at: datetime

    def is_stale(self, current_version: int) -> bool:
        return self.version != current_version


_ENTRY_COLUMNS = (  # ``StoredInput``'s, read with the gate by ``gated_with_inputs``
    ManualInput.connection_config_id,
    ManualInput.version,
    ManualInput.values,
    ManualInput.entered_by_label,
    ManualInput.entered_at,
)


def _with_entries(*entry_columns):
    """``_GATED``'s rows, each with these columns of ``:request_id``'s entry for it (NULL when none)."""
    return _GATED.add_columns(*entry_columns).outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id")),
    )


_GATED_WITH_INPUTS = _with_entries(*_ENTRY_COLUMNS)
_GATED_COLUMNS = len(_GATED.selected_columns)


def gated_with_inputs(request_id: str) -> tuple[list[GatedWebhook], dict[int, StoredInput]]:
    """``gated_webhooks()`` and this request's entries for them (connection id → entry; entries for
    connections that are not gated are left out), in one query: the request page and every run need both."""
    rows = run(_GATED_WITH_INPUTS, {"request_id": request_id}).all()
    gated = _gated_from([tuple(row[:_GATED_COLUMNS]) for row in rows])
    inputs = {
        row[_GATED_COLUMNS]: StoredInput(*row[_GATED_COLUMNS:])
        for row in rows
        if row[_GATED_COLUMNS] is not None
    }
    return gated, inputs


def _has_fields():
    """``_gated_from``'s "at least one field", in SQL (the field list is a JSON array, never NULL)."""
    return func.json_array_length(ManualWebhook.fields) > 0


# Counted by the database, one row back: reading the 50 gated rows to count them in Python cost four times
# as much (issue 9). A resume reads it with the request's status (``privacy_requests.resume_check``).
PROGRESS = (
    select(func.count().label("systems"), func.count(ManualInput.version).label("done"))
    .select_from(ConnectionConfig)
    .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
    .outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id"))
        & (ManualInput.version == ManualWebhook.version),
    )
    .where(*_gated_condition(), _has_fields())
)


def missing_webhooks(webhooks: list[GatedWebhook], inputs: dict[int, StoredInput]) -> list[GatedWebhook]:
    """The gated webhooks with no input, or only a stale one (``gated_with_inputs``'s answer), in name
    order."""
    return [
        gated
        for gated in webhooks
        if (entry := inputs.get(gated.connection.id)) is None or entry.is_stale(gated.webhook.version)
    ]
