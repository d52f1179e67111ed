"""Manual inputs (S4 upload rules): what staff found by hand for one request and one manual system."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import contains_eager

from portal.execution import gate
from portal.extensions import db
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    PrivacyRequest,
    RequestStatus,
    utcnow,
)
from portal.services import InvalidState, NotFound, ValidationFailed, text_problem
from portal.services.audit import Actor, record
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


def _connection_refusal(connection: ConnectionConfig, webhook: ManualWebhook) -> str | None:
    if connection.disabled:
        return f"Connection config '{connection.key}' is disabled: its data is no longer needed for this request."
    if not webhook.fields:
        return f"The manual webhook '{connection.key}' has no fields to fill in."
    return None


def upload_refusal(
    privacy_request: PrivacyRequest, connection: ConnectionConfig, webhook: ManualWebhook
) -> str | None:
    """Why ``save_manual_input`` would refuse right now (None when it would accept), for forms to warn early."""
    if privacy_request.status != RequestStatus.REQUIRES_INPUT:
        return (
            f"Invalid access manual webhook upload request: privacy request '{privacy_request.id}' "
            f"status = {privacy_request.status}."
        )
    return _connection_refusal(connection, webhook)


_requests = PrivacyRequest.__table__
# A Core statement on the table, built once: the ORM's bulk-update path costs more than the UPDATE.
_TAKE_FOR_UPLOAD = (
    update(_requests)
    .where(
        _requests.c.id == bindparam("request_id"), _requests.c.status == RequestStatus.REQUIRES_INPUT.value
    )
    .values(updated_at=bindparam("now"))
)


def save_manual_input(
    request_id: str, connection_key: str, values: dict[str, Any], actor: Actor, found: Found | None = None
) -> ManualInput:
    """Replace the entry for (request, connection). Refused unless the request waits in requires_input.

    ``found``: what ``find_manual_input`` returned for them earlier in this transaction, if the caller
    has it (a form that showed the fields), so it is not read twice.
    """
    connection, webhook, entry = found or find_manual_input(request_id, connection_key)
    # Take the row (and, on PostgreSQL, its lock) only if the status still allows uploads, so a resume
    # committing at the same moment cannot slip between our check and our write.
    locked = db.session.execute(_TAKE_FOR_UPLOAD, {"request_id": request_id, "now": utcnow()})
    if locked.rowcount != 1:
        privacy_request = get_request(request_id)
        db.session.refresh(privacy_request)  # the status now, not as this session first read it
        raise InvalidState(
            f"Invalid access manual webhook upload request: privacy request '{request_id}' "
            f"status = {privacy_request.status}."
        )
    refusal = _connection_refusal(connection, webhook)
    if refusal:
        raise InvalidState(refusal)
    cleaned = validate_values(webhook.fields, values)
    replaced = entry is not None
    if entry is None:
        entry = ManualInput(privacy_request_id=request_id, connection_config_id=connection.id)
        db.session.add(entry)
    entry.connection_config = connection  # keeps it (and its webhook) loaded for ``saved_view``
    entry.values = cleaned
    entry.version = webhook.version
    entry.entered_by_user_id = actor.user_id
    entry.entered_by_token_id = actor.token_id
    entry.entered_by_label = actor.label
    entry.entered_at = utcnow()
    db.session.flush()
    record(
        actor,
        "manual_input.saved",
        privacy_request_id=request_id,
        connection_key=connection_key,
        labels=sorted(label for label, v in cleaned.items() if v is not None),
        nothing_found=all(v is None for v in cleaned.values()),
        version=webhook.version,
        replaced=replaced,
    )
    return entry


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


_VALUES = (
    select(
        ConnectionConfig.connection_type,
        ManualWebhook.id,
        ManualWebhook.created_at,
        ManualWebhook.version,
        ManualInput.values,
        ManualInput.version,
        exists().where(PrivacyRequest.id == bindparam("request_id")),
    )
    .select_from(ConnectionConfig)
    .outerjoin(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
    .outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id")),
    )
    .where(ConnectionConfig.key == bindparam("key"))
)  # built once: see ``tokens._ACTIVE_TOKEN``


def stored_values(request_id: str, connection_key: str) -> tuple[bool, dict[str, str | None]]:
    """(checked, label → value): ``view_manual_input`` without the entry, as the API's view answers it.

    Columns rather than objects, and the field labels from the gate's cache: the API serves this on every
    view call. Anything not found is left to ``view_manual_input``, for the message naming it.
    """
    row = db.session.execute(_VALUES, {"request_id": request_id, "key": connection_key}).first()
    if row is None or not row[6] or row[0] != ConnectionType.MANUAL_WEBHOOK or row[1] is None:
        view = view_manual_input(request_id, connection_key)  # raises NotFound
        return view.checked, view.fields
    _, hook_id, created_at, version, values, entry_version, _ = row
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


def saved_view(entry: ManualInput) -> InputView:
    """The view of an entry ``save_manual_input`` just wrote, without reading it back (call before commit)."""
    webhook = entry.connection_config.manual_webhook  # both loaded by the save: no query
    return InputView(
        checked=True, fields={label: entry.values.get(label) for label in webhook.labels}, entry=entry
    )


@dataclass(frozen=True)
class Card:
    """One manual system on the request page."""

    gated: gate.GatedWebhook
    entry: ManualInput | None

    @property
    def state(self) -> str:
        if self.entry is None:
            return "not_started"
        return "stale" if self.entry.is_stale(self.gated.webhook.version) else "done"

    @property
    def nothing_found(self) -> bool:
        return self.entry is not None and all(v is None for v in (self.entry.values or {}).values())


def cards_for(privacy_request: PrivacyRequest) -> list[Card]:
    """The manual-input section of the request page in two queries, whatever the number of webhooks."""
    webhooks = gate.gated_webhooks() if gate.applies_to(privacy_request) else []
    inputs = gate.inputs_by_connection(privacy_request.id)
    return [Card(g, inputs.get(g.connection.id)) for g in webhooks]
