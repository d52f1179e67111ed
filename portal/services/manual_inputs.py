"""Manual inputs (S4 upload rules): what staff found by hand for one request and one manual system."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import JSON, bindparam, exists, select, text, update
from sqlalchemy.orm import contains_eager

from portal.execution import gate
from portal.extensions import db, run
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    PrivacyRequest,
    RequestStatus,
    utcnow,
)
from portal.services import FieldsChanged, InvalidState, NotFound, ValidationFailed, text_problem
from portal.services.audit import Actor
from portal.services.privacy_requests import get_request

MAX_VALUE_LENGTH = 10_000
TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}


def _typed_problem(field: dict[str, Any], value: str) -> tuple[str | None, str]:
    """(problem, normalised value) for a non-blank value of a typed field."""
    kind = field.get("type", "text")
    if kind == "email":
        try:
            validate_email(value.strip(), check_deliverability=False)
        except EmailNotValidError:
            return "must be an email address", value
    elif kind == "number":
        try:
            number = float(value.strip())
        except ValueError:
            return "must be a number", value
        if not math.isfinite(number):
            return "must be a finite number", value
    elif kind == "date":
        try:
            date.fromisoformat(value.strip())
        except ValueError:
            return "must be a date as YYYY-MM-DD", value
    elif kind == "boolean":
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return None, "true"
        if word in FALSE_WORDS:
            return None, "false"
        return "must be true or false", value
    return None, value


def validate_values(fields: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, str | None]:
    """Every label of ``fields`` → a string or None; raises ValidationFailed naming each bad label.

    Blank strings are stored as null. ``required`` applies to an entry that holds any value at all; an
    all-null entry means "searched, nothing found" and is always accepted.
    """
    if not isinstance(values, dict):
        raise ValidationFailed("The upload must be an object of label → value.", [((), "not an object")])
    labels = [f["dsr_package_label"] for f in fields]
    errors: list[tuple[tuple, str]] = []
    unknown = [label for label in values if label not in labels]
    if unknown:
        message = f"Unknown labels: {', '.join(repr(u) for u in unknown)}; expected only {', '.join(repr(lb) for lb in labels)}."
        errors.extend(((label,), f"unknown label {label!r}") for label in unknown)
        raise ValidationFailed(message, errors)
    cleaned: dict[str, str | None] = {}
    for field in fields:
        label = field["dsr_package_label"]
        value = values.get(label)
        if value is not None and not isinstance(value, str):
            errors.append(((label,), f"{label}: must be a string or null"))
            continue
        if value is not None and (problem := text_problem(value)):
            errors.append(((label,), f"{label}: {problem}"))
            continue
        if value is not None and len(value) > MAX_VALUE_LENGTH:
            errors.append(((label,), f"{label}: must be at most {MAX_VALUE_LENGTH} characters"))
            continue
        if value is None or not value.strip():
            cleaned[label] = None
            continue
        problem, normalised = _typed_problem(field, value)
        if problem:
            errors.append(((label,), f"{label}: {problem}"))
        cleaned[label] = normalised
    if not errors and any(v is not None for v in cleaned.values()):
        for field in fields:
            if field.get("required") and cleaned[field["dsr_package_label"]] is None:
                label = field["dsr_package_label"]
                errors.append(((label,), f"{label}: is required"))
    if errors:
        raise ValidationFailed("; ".join(message for _, message in errors), errors)
    return cleaned


def _connection_refusal(key: str, disabled: bool, fields) -> str | None:
    if disabled:
        return f"Connection config '{key}' is disabled: its data is no longer needed for this request."
    if not fields:
        return f"The manual webhook '{key}' has no fields to fill in."
    return None


def upload_refusal(
    privacy_request: PrivacyRequest, connection: ConnectionConfig, webhook: ManualWebhook
) -> str | None:
    """Why ``save_manual_input`` would refuse right now (None when it would accept), for forms to warn early."""
    if privacy_request.status != RequestStatus.REQUIRES_INPUT:
        return _status_refusal(privacy_request.id, privacy_request.status)
    return _connection_refusal(connection.key, connection.disabled, webhook.fields)


def _status_refusal(request_id: str, status: str) -> str:
    return f"Invalid access manual webhook upload request: privacy request '{request_id}' status = {status}."


class UploadTarget(NamedTuple):
    """What a save needs to know about the manual connection, as plain values."""

    connection_id: int
    disabled: bool
    webhook_id: int
    version: int
    fields: tuple[dict[str, Any], ...] | list[dict[str, Any]]
    replacing: bool  # this request already has an entry for it
    request_status: str  # as read with the rest, for an early refusal
    name: str  # the connection's name, for messages

    def refusal(self, request_id: str, connection_key: str) -> str | None:
        """``upload_refusal`` from these values: why a save would be refused now (None: it would not)."""
        if self.request_status != RequestStatus.REQUIRES_INPUT:
            return _status_refusal(request_id, self.request_status)
        return _connection_refusal(connection_key, self.disabled, self.fields)


_requests = PrivacyRequest.__table__
_inputs = ManualInput.__table__
# Core statements on the tables, built once: an upload is the API's busiest write, and the ORM's unit of
# work (or its bulk-update path) costs more than the statements themselves.
_webhooks = ManualWebhook.__table__
# The fields an entry is mapped onto are those of ``:version``: the write happens only while that is still
# the webhook's version, checked in the write itself, so a field edit committed a moment earlier cannot
# slip in between (the save is refused instead: ``FieldsChanged``).
_VERSION_STILL_CURRENT = (
    "EXISTS (SELECT 1 FROM manual_webhooks WHERE id = :webhook_id AND version = :version)"
)
_TAKE_FOR_UPLOAD = (
    update(_requests)
    .where(
        _requests.c.id == bindparam("request_id"),
        _requests.c.status == RequestStatus.REQUIRES_INPUT.value,
        exists()
        .where(_webhooks.c.id == bindparam("webhook_id"), _webhooks.c.version == bindparam("version"))
        .correlate(None),
    )
    .values(updated_at=bindparam("now"))
)
_INPUT_COLUMNS = (
    'privacy_request_id, connection_config_id, "values", version, '
    "entered_by_user_id, entered_by_token_id, entered_by_label, entered_at"
)
_ON_CONFLICT = (
    "ON CONFLICT (privacy_request_id, connection_config_id) DO UPDATE SET "
    '"values" = excluded."values", version = excluded.version, '
    "entered_by_user_id = excluded.entered_by_user_id, entered_by_token_id = excluded.entered_by_token_id, "
    "entered_by_label = excluded.entered_by_label, entered_at = excluded.entered_at"
)
_NOW = bindparam("now", type_=_inputs.c.entered_at.type)
_TYPED = (bindparam("values", type_=_inputs.c["values"].type), _NOW)
# SQLite and PostgreSQL spell this UPSERT the same way. Written as text because SQLAlchemy cannot cache
# its dialect-specific ``on_conflict_do_update`` statements: built that way, every save compiled it again.
_UPSERT = text(
    f"INSERT INTO manual_inputs ({_INPUT_COLUMNS}) "
    f"VALUES (:request_id, :connection_id, :values, :version, :user_id, :token_id, :label, :now) {_ON_CONFLICT}"
).bindparams(*_TYPED)
# A save's audit event, as an INSERT ... SELECT whose last column (its details) each backend appends.
_LOG_SAVE = (
    "INSERT INTO audit_events (created_at, actor_type, actor_user_id, actor_token_id, actor_label, action, "
    "privacy_request_id, connection_key, details) "
    "SELECT :now, :actor_type, :user_id, :token_id, :label, :action, :request_id, :connection_key, "
)
_DETAILS = (bindparam("details_new", type_=JSON), bindparam("details_replaced", type_=JSON))
# PostgreSQL: take the request's row, UPSERT the entry and write the audit event in one statement (one
# round trip instead of three), each step only if the one before it happened. ``xmax = 0`` tells a new
# row from an updated one, so the event's ``replaced`` is exact even when two saves race.
_SAVE_POSTGRESQL = text(
    "WITH locked AS ("
    "UPDATE privacy_requests SET updated_at = :now "
    f"WHERE id = :request_id AND status = '{RequestStatus.REQUIRES_INPUT.value}' "
    f"AND {_VERSION_STILL_CURRENT} RETURNING id"
    "), saved AS ("
    f"INSERT INTO manual_inputs ({_INPUT_COLUMNS}) "
    f"SELECT id, :connection_id, :values, :version, :user_id, :token_id, :label, :now FROM locked {_ON_CONFLICT} "
    "RETURNING xmax = 0 AS inserted"
    f"), logged AS ({_LOG_SAVE}"
    "CASE WHEN inserted THEN CAST(:details_new AS JSON) ELSE CAST(:details_replaced AS JSON) END FROM saved"
    ") SELECT count(*) FROM locked"
).bindparams(*_TYPED, *_DETAILS)
# SQLite: the audit event of a save, written just before its UPSERT, under the write lock the request's
# UPDATE took: whether an entry is being replaced is read by the same statement (one statement, not two).
_LOG_SAVE_SQLITE = text(
    f"{_LOG_SAVE}CASE WHEN EXISTS (SELECT 1 FROM manual_inputs WHERE privacy_request_id = :request_id "
    "AND connection_config_id = :connection_id) THEN :details_replaced ELSE :details_new END"
).bindparams(_NOW, *_DETAILS)
SAVED_ACTION = "manual_input.saved"


def fields_changed(name: str) -> FieldsChanged:
    return FieldsChanged(
        f"The fields of {name} changed while you were typing: check the values below and save again."
    )


def save_manual_input(
    request_id: str,
    connection_key: str,
    values: dict[str, Any],
    actor: Actor,
    target: UploadTarget | None = None,
    built_from: int | None = None,
) -> dict[str, str | None]:
    """Replace the entry for (request, connection). Refused unless the request waits in requires_input.

    ``target``: what ``upload_target`` returned for them earlier in this transaction, if the caller has
    it (a form built from those fields), so it is not read twice. ``built_from``: the webhook version a
    form was built from; any other version is refused with ``FieldsChanged``, nothing stored. The write
    takes the request's row first, and only if its status still allows uploads and the fields are still
    those the values were checked against, so neither a resume nor a field edit committing at the same
    moment can slip between the check and the write; the audit event says whether an entry was replaced
    as the write found it. Returns what was stored: every current label with its value (blank → None).
    """
    target = target if target is not None else upload_target(request_id, connection_key)
    if built_from is not None and built_from != target.version:
        raise fields_changed(target.name)
    if target.request_status != RequestStatus.REQUIRES_INPUT:
        raise InvalidState(_status_refusal(request_id, target.request_status))
    refusal = _connection_refusal(connection_key, target.disabled, target.fields)
    if refusal:
        raise InvalidState(refusal)
    cleaned = validate_values(target.fields, values)
    details = {
        "labels": sorted(label for label, v in cleaned.items() if v is not None),
        "nothing_found": all(v is None for v in cleaned.values()),
        "version": target.version,
    }
    params = {
        "request_id": request_id,
        "connection_id": target.connection_id,
        "webhook_id": target.webhook_id,
        "values": cleaned,
        "version": target.version,
        "user_id": actor.user_id,
        "token_id": actor.token_id,
        "label": actor.label,
        "now": utcnow(),
    }
    params.update(
        actor_type=actor.kind,
        action=SAVED_ACTION,
        connection_key=connection_key,
        details_new={**details, "replaced": False},
        details_replaced={**details, "replaced": True},
    )
    if db.session.get_bind().dialect.name == "postgresql":
        locked = run(_SAVE_POSTGRESQL, params).scalar() == 1
    else:  # SQLite: the same steps as statements of their own (no round trips to save there)
        locked = run(_TAKE_FOR_UPLOAD, params).rowcount == 1
        if locked:
            run(_LOG_SAVE_SQLITE, params)  # before the UPSERT: it reads whether an entry is replaced
            run(_UPSERT, params)
    if not locked:
        privacy_request = get_request(request_id)
        db.session.refresh(privacy_request)  # the status now, not as this session first read it
        if privacy_request.status != RequestStatus.REQUIRES_INPUT:
            raise InvalidState(_status_refusal(request_id, privacy_request.status))
        raise fields_changed(target.name)
    return cleaned


@dataclass(frozen=True)
class InputView:
    checked: bool
    fields: dict[str, str | None]
    entry: ManualInput | None

    @property
    def stale(self) -> bool:
        return self.entry is not None and not self.checked


_VIEW = (
    select(
        ConnectionConfig,
        ManualInput,
        exists().where(PrivacyRequest.id == bindparam("request_id")),
    )
    .outerjoin(ConnectionConfig.manual_webhook)
    .outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id")),
    )
    .options(contains_eager(ConnectionConfig.manual_webhook))
    .where(ConnectionConfig.key == bindparam("key"))
)  # built once: see ``tokens._ACTIVE_TOKEN``


class Found(NamedTuple):
    connection: ConnectionConfig
    webhook: ManualWebhook
    entry: ManualInput | None


def find_manual_input(request_id: str, connection_key: str) -> Found:
    """The manual connection, its webhook and this request's entry, or NotFound naming what is missing.

    One query (the entry outer-joined, and whether the request exists), since the API serves views and
    uploads on every call. An unknown request is named before an unknown connection.
    """
    row = db.session.execute(_VIEW, {"request_id": request_id, "key": connection_key}).first()
    connection, entry, request_exists = row if row is not None else (None, None, False)
    webhook = connection.manual_webhook if connection is not None else None
    if not request_exists:
        get_request(request_id)  # raises NotFound
    if connection is None:
        raise NotFound(f"No connection config with key '{connection_key}'")
    if connection.connection_type != ConnectionType.MANUAL_WEBHOOK or webhook is None:
        raise NotFound(f"No access manual webhook exists for connection config with key '{connection_key}'")
    return Found(connection, webhook, entry)


def _by_key(*columns):
    """``columns`` of the connection with key ``:key``, its webhook and ``:request_id``'s entry (outer
    joins), and that request's status (None: no such request), in one row (none when the key is unknown)."""
    return (
        select(
            ConnectionConfig.connection_type,
            ManualWebhook.id,
            ManualWebhook.created_at,
            ManualWebhook.version,
            select(PrivacyRequest.status)
            .where(PrivacyRequest.id == bindparam("request_id"))
            .scalar_subquery(),
            *columns,
        )
        .select_from(ConnectionConfig)
        .outerjoin(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
        .outerjoin(
            ManualInput,
            (ManualInput.connection_config_id == ConnectionConfig.id)
            & (ManualInput.privacy_request_id == bindparam("request_id")),
        )
        .where(ConnectionConfig.key == bindparam("key"))
    )  # built once per use below: see ``tokens._ACTIVE_TOKEN``


_VALUES = _by_key(ManualInput.values, ManualInput.version)
_TARGET = _by_key(ConnectionConfig.id, ConnectionConfig.disabled, ManualInput.id, ConnectionConfig.name)


def _found_row(statement, request_id: str, connection_key: str):
    """The row of ``statement`` when the request and an access manual webhook with that key exist; else
    None, for ``find_manual_input`` to name what is missing."""
    row = run(statement, {"request_id": request_id, "key": connection_key}).first()
    if row is None or row[4] is None or row[0] != ConnectionType.MANUAL_WEBHOOK or row[1] is None:
        return None
    return row


def upload_target(request_id: str, connection_key: str) -> UploadTarget:
    """``find_manual_input`` as the values a save needs (field lists from the gate's cache)."""
    row = _found_row(_TARGET, request_id, connection_key)
    if row is None:
        find_manual_input(request_id, connection_key)  # raises NotFound naming what is missing
        raise AssertionError("find_manual_input found what the upload query did not")  # pragma: no cover
    _, hook_id, created_at, version, status, connection_id, disabled, entry_id, name = row
    fields = gate.webhook_fields(hook_id, created_at, version)
    return UploadTarget(connection_id, disabled, hook_id, version, fields, entry_id is not None, status, name)


def stored_values(request_id: str, connection_key: str) -> tuple[bool, dict[str, str | None]]:
    """(checked, label → value): ``view_manual_input`` without the entry, as the API's view answers it.

    Columns rather than objects, and the field labels from the gate's cache: the API serves this on every
    view call. Anything not found is left to ``view_manual_input``, for the message naming it.
    """
    row = _found_row(_VALUES, request_id, connection_key)
    if row is None:
        view = view_manual_input(request_id, connection_key)  # raises NotFound
        return view.checked, view.fields
    _, hook_id, created_at, version, _, values, entry_version = row
    stored = values if entry_version is not None and values is not None else {}
    labels = [field["dsr_package_label"] for field in gate.webhook_fields(hook_id, created_at, version)]
    return entry_version == version, {label: stored.get(label) for label in labels}


def view_manual_input(request_id: str, connection_key: str, found: Found | None = None) -> InputView:
    """The current labels with the stored values (stale entries keep the labels that still exist)."""
    _, webhook, entry = found or find_manual_input(request_id, connection_key)
    stored = entry.values if entry is not None else {}
    fields = {label: stored.get(label) for label in webhook.labels}
    checked = entry is not None and not entry.is_stale(webhook.version)
    return InputView(checked=checked, fields=fields, entry=entry)


@dataclass(frozen=True)
class Card:
    """One manual system on the request page."""

    gated: gate.GatedWebhook
    entry: gate.StoredInput | None

    @property
    def state(self) -> str:
        if self.entry is None:
            return "not_started"
        return "stale" if self.entry.is_stale(self.gated.webhook.version) else "done"

    @property
    def nothing_found(self) -> bool:
        return self.entry is not None and all(v is None for v in (self.entry.values or {}).values())


def cards_for(privacy_request: PrivacyRequest) -> list[Card]:
    """The manual-input section of the request page in one query, whatever the number of webhooks."""
    if not gate.applies_to(privacy_request):
        return []
    webhooks, inputs = gate.gated_with_inputs(privacy_request.id)
    return [Card(g, inputs.get(g.connection.id)) for g in webhooks]
