"""The manual gate (S4): every enabled webhook with fields needs a current-version ManualInput.

``gated_webhooks()`` is on the hot path of the queue, the request page and every run, so it returns light
snapshots rather than ORM objects: one small query reads the connections' current columns on every call
(so a rename, a disable or a new version is seen at once, by every process), and the field lists — the
large JSON — come from ``portal.cache``, keyed by (webhook id, created_at, version): a list is immutable at
a version, and ``created_at`` tells a webhook from a later one that reused its id (SQLite reuses the highest
rowid after a delete). A request's progress (``PROGRESS``) is counted by the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Text, bindparam, cast, func, select, text

from portal import cache
from portal.extensions import db, run
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    ManualWebhookVersion,
    PrivacyRequest,
)


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
    """Which webhooks gate a request: enabled manual connections whose field list is not empty."""
    return (
        ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK,
        ConnectionConfig.disabled.is_(False),
        # A JSON array, never NULL, written by json.dumps: "[]" when empty. Its length rather than
        # json_array_length: parsing every webhook's fields cost half of this query on SQLite.
        func.length(cast(ManualWebhook.fields, Text)) > 2,
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


def webhook_fields(hook_id: int, created_at: datetime, version: int) -> tuple[dict[str, Any], ...]:
    """One webhook's field definitions at exactly ``version`` (kept per version, so immutable), cached."""
    key = (hook_id, created_at, version)
    fields = cache.field_lists.get(key)
    if fields is None:
        stored = run(_VERSION_FIELDS, {"hook_id": hook_id, "version": version}).scalar()
        if stored is None:
            return ()
        fields = cache.field_lists[key] = tuple(stored)
    return fields


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
    return _gated_from(tuple(map(tuple, run(_GATED).all())))


def _gated_from(rows: tuple[tuple, ...]) -> list[GatedWebhook]:
    """The gated webhooks for these rows of ``_GATED``'s columns, each with its fields at the row's version.

    The rows name every webhook's version, so the same rows always give the same answer: it is cached by
    them (building 50 snapshots cost more than the query that reads the rows).
    """
    gated = cache.gated.get(rows)
    if gated is None:
        gated = cache.gated[rows] = tuple(
            GatedWebhook(
                GatedConnection(conn_id, key, name, description), GatedFields(hook_id, version, fields)
            )
            for conn_id, key, name, description, hook_id, created_at, version in rows
            if (fields := webhook_fields(hook_id, created_at, version))
        )
    return list(gated)


def gated_webhook_models() -> list[tuple[ConnectionConfig, ManualWebhook]]:
    """The same webhooks as ORM objects, for the API's full representation (one query)."""
    rows = db.session.execute(
        select(ConnectionConfig, ManualWebhook)
        .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
        .where(*_gated_condition())
        .order_by(ConnectionConfig.name)
    ).all()
    return [(conn, hook) for conn, hook in rows]


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
    sent_back_at: datetime | None = None  # a reviewer sent the package back naming this system


# --- "done": an entry saved against the webhook's current version, not sent back by a reviewer ------
# The one rule, in its three forms: for one entry in Python, for a fixed set of webhooks as SQL (a page of
# requests), and joined to the webhooks as SQL (one request's progress).


def is_done(entry: StoredInput | None, version: int) -> bool:
    """Whether ``entry`` counts for a webhook now at ``version`` (None: nothing entered)."""
    return entry is not None and entry.version == version and entry.sent_back_at is None


def current_entries(current: tuple[tuple[int, int], ...]):
    """SQL: a manual_inputs row is done for one of the ``current`` (connection id, version) pairs.

    The pairs are written into the statement as integer literals rather than bound: expanding 100 bound
    values on every call cost as much as the query, and they change only when an admin edits a webhook.
    """
    pairs = ", ".join(f"({int(connection)}, {int(version)})" for connection, version in current)
    return text(
        f"(manual_inputs.connection_config_id, manual_inputs.version) IN (VALUES {pairs}) "
        "AND manual_inputs.sent_back_at IS NULL"
    )


_ENTRY_COLUMNS = (  # ``StoredInput``'s, read with the gate by ``gated_with_inputs``
    ManualInput.connection_config_id,
    ManualInput.version,
    ManualInput.values,
    ManualInput.entered_by_label,
    ManualInput.entered_at,
    ManualInput.sent_back_at,
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
    gated = _gated_from(tuple(tuple(row[:_GATED_COLUMNS]) for row in rows))
    inputs = {
        row[_GATED_COLUMNS]: StoredInput(*row[_GATED_COLUMNS:])
        for row in rows
        if row[_GATED_COLUMNS] is not None
    }
    return gated, inputs


# One request's progress, counted by the database (one row back; reading the 50 gated rows to count them in
# Python cost four times as much). A resume reads it with the request's status (``resume_check``).
PROGRESS = (
    select(func.count().label("systems"), func.count(ManualInput.version).label("done"))
    .select_from(ConnectionConfig)
    .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
    .outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id"))
        & (ManualInput.version == ManualWebhook.version)
        & ManualInput.sent_back_at.is_(None),
    )
    .where(*_gated_condition())
)


def missing_webhooks(webhooks: list[GatedWebhook], inputs: dict[int, StoredInput]) -> list[GatedWebhook]:
    """The gated webhooks with no input, or only a stale one (``gated_with_inputs``'s answer), in name
    order."""
    return [
        gated for gated in webhooks if not is_done(inputs.get(gated.connection.id), gated.webhook.version)
    ]
