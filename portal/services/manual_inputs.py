"""Manual inputs (S4 upload rules): what staff found by hand for one request and one manual system.

Over 400 lines because an entry's rules (values by field type, files kept and added, required fields, the
version check in the write itself, re-review of stale entries) are one job with one save path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, exists, insert, select, update

from portal.execution import gate, tasks, typed_values
from portal.extensions import run
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    PrivacyRequest,
    RequestStatus,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.services import (
    FieldsChanged,
    InvalidState,
    NotFound,
    ValidationFailed,
    attachments,
    text_problem,
)
from portal.services.attachments import Upload
from portal.services.privacy_requests import request_not_found

MAX_VALUE_LENGTH = 10_000
TRUE_WORDS = typed_values.TRUE_WORDS
FALSE_WORDS = typed_values.FALSE_WORDS
SAVED_ACTION = "manual_input.saved"

# --- values ------------------------------------------------------------------------------------------

# What is wrong with a value of a typed field, as the API says it; the form says the same in its own words.
PROBLEMS = {
    "email": "must be an email address",
    "number": "must be a number",
    "finite": "must be a finite number",
    "date": "must be a date as YYYY-MM-DD",
    "boolean": "must be true or false",
    "string": "must be a string or null",
}
# The JSON values an upload may give a typed field besides a string (the API keeps accepting strings).
_JSON_VALUES = {"number": (int, float), "boolean": (bool,)}


def typed_problem(kind: str, value: Any) -> tuple[str | None, Any]:
    """(problem, stored value) for a non-blank value of a field of type ``kind``: the problem is a key of
    ``PROBLEMS`` (None: the value is fine) and the stored value is typed (``typed_values.convert``)."""
    if kind == "email":
        if not isinstance(value, str):
            return "string", value
        try:
            validate_email(value.strip(), check_deliverability=False)
        except EmailNotValidError:
            return "email", value
    try:
        return None, typed_values.convert(kind, value)
    except typed_values.NotConvertible as exc:
        return exc.problem, value


def _kept_files(label: str, value: Any, errors: list) -> list[str] | None:
    """A file field's value in an upload: the ids of the files already stored to keep (as ids, or as the
    references the API answers with), or null; None when there are none."""
    items = value if isinstance(value, list) else None
    ids = [item.get("id") if isinstance(item, dict) else item for item in items or []]
    if (items is None and value is not None) or not all(isinstance(i, str) for i in ids):
        errors.append(((label,), f"{label}: must be a list of attachment ids to keep, or null"))
        return None
    return list(dict.fromkeys(ids)) or None


def validate_values(
    fields: list[dict[str, Any]], values: dict[str, Any], uploaded: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Every label of ``fields`` → its typed value or None; raises ValidationFailed naming each bad label.

    Blank strings are stored as null. Numbers become JSON numbers, yes/no booleans, dates ISO strings, and
    text has ``\n`` line ends (``typed_values``). A file field's value is the list of ids of stored files
    to keep (the save resolves them); ``uploaded`` names the file fields that receive new files.
    ``required`` applies to an entry that holds any value at all; an all-null entry means "searched,
    nothing found" and is always accepted.
    """
    if not isinstance(values, dict):
        raise ValidationFailed("The upload must be an object of label → value.", [((), "not an object")])
    labels = [f["dsr_package_label"] for f in fields]
    errors: list[tuple[tuple, str]] = []
    file_labels = {f["dsr_package_label"] for f in fields if f.get("type") == "file"}
    unknown = [label for label in dict.fromkeys([*values, *uploaded]) if label not in labels]
    if unknown:
        message = f"Unknown labels: {', '.join(repr(u) for u in unknown)}; expected only {', '.join(repr(lb) for lb in labels)}."
        errors.extend(((label,), f"unknown label {label!r}") for label in unknown)
        raise ValidationFailed(message, errors)
    errors.extend(
        ((label,), f"{label}: only a field of type file takes files")
        for label in uploaded
        if label not in file_labels
    )
    cleaned: dict[str, Any] = {}
    for field in fields:
        label = field["dsr_package_label"]
        kind = field.get("type") or "text"
        value = values.get(label)
        if kind == "file":
            cleaned[label] = _kept_files(label, value, errors)
            continue
        if value is not None and not isinstance(value, str):
            if isinstance(value, _JSON_VALUES.get(kind, ())) and (kind == "boolean") == isinstance(
                value, bool
            ):
                problem, typed = typed_problem(kind, value)
                if problem:
                    errors.append(((label,), f"{label}: {PROBLEMS[problem]}"))
                cleaned[label] = typed
                continue
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
        problem, typed = typed_problem(kind, value)
        if problem:
            errors.append(((label,), f"{label}: {PROBLEMS[problem]}"))
        cleaned[label] = typed
    if not errors and (uploaded or any(v is not None for v in cleaned.values())):
        for field in fields:
            label = field["dsr_package_label"]
            if field.get("required") and cleaned[label] is None and label not in uploaded:
                errors.append(((label,), f"{label}: is required"))
    if errors:
        raise ValidationFailed("; ".join(message for _, message in errors), errors)
    return cleaned


# --- one manual system of one request ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldChanges:
    """What changed in a webhook's fields since an entry was saved, by field name (``pii_field``)."""

    added: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    renamed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name then, name now)
    unknown: bool = False  # the list the entry was saved against was not kept

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.unknown)


class ManualSystem(NamedTuple):
    """A manual connection, its webhook and one request's entry for it, as plain values (one query)."""

    request_status: str
    connection_id: int
    key: str
    name: str
    description: str | None
    disabled: bool
    webhook_id: int
    webhook_created_at: datetime
    version: int
    entry: gate.StoredInput | None

    @property
    def fields(self) -> tuple[dict[str, Any], ...]:
        """The field definitions at ``version`` (from the cache)."""
        return gate.webhook_fields(self.webhook_id, self.webhook_created_at, self.version)

    @property
    def fields_key(self) -> tuple[int, datetime, int]:
        """What names this field list for good (it is immutable at a version)."""
        return (self.webhook_id, self.webhook_created_at, self.version)

    @property
    def checked(self) -> bool:
        return gate.is_done(self.entry, self.version)

    @property
    def stale(self) -> bool:
        return self.entry is not None and not self.checked

    @property
    def sent_back(self) -> bool:
        """A reviewer sent the package back naming this system: save the entry again."""
        return self.entry is not None and self.entry.sent_back_at is not None

    def entry_fields(self) -> tuple[dict[str, Any], ...]:
        """The field definitions the entry was saved against (empty: no entry, or that list was not kept)."""
        if self.entry is None:
            return ()
        return gate.webhook_fields(self.webhook_id, self.webhook_created_at, self.entry.version)

    def current_values(self) -> dict[str, str | None]:
        """The current labels with the stored values. A stale entry's values follow their fields by id, so a
        renamed field keeps its value and a new one starts empty; for an entry saved before fields had ids
        (its list was not kept), the labels that still exist keep theirs."""
        stored = self.entry.values if self.entry is not None else {}
        then = {field["id"]: field["dsr_package_label"] for field in self.entry_fields() if "id" in field}
        if not then:
            return {
                field["dsr_package_label"]: stored.get(field["dsr_package_label"]) for field in self.fields
            }
        return {
            field["dsr_package_label"]: stored.get(then[field["id"]]) if field["id"] in then else None
            for field in self.fields
        }

    def changes(self) -> FieldChanges:
        """How the fields differ from those the entry was saved against (nothing when it is current)."""
        if not self.stale or self.entry.version == self.version:
            return FieldChanges()
        before = {field.get("id"): field for field in self.entry_fields()}
        now = {field["id"]: field for field in self.fields}
        if not before:
            return FieldChanges(unknown=True)
        renamed = [
            (before[i]["pii_field"], now[i]["pii_field"])
            for i in now
            if i in before
            and (before[i]["pii_field"], before[i]["dsr_package_label"])
            != (now[i]["pii_field"], now[i]["dsr_package_label"])
        ]
        return FieldChanges(
            added=[now[i]["pii_field"] for i in now if i not in before],
            removed=[before[i]["pii_field"] for i in before if i not in now],
            renamed=renamed,
        )

    def refusal(self, request_id: str) -> str | None:
        """Why a save would be refused now (None: it would not), for forms to say before anything is typed."""
        if self.request_status != RequestStatus.REQUIRES_INPUT:
            return _status_refusal(request_id, self.request_status)
        if self.disabled:
            return (
                f"Connection config '{self.key}' is disabled: its data is no longer needed for this request."
            )
        if not self.fields:
            return f"The manual webhook '{self.key}' has no fields to fill in."
        return None


def _status_refusal(request_id: str, status: str) -> str:
    return f"Invalid access manual webhook upload request: privacy request '{request_id}' status = {status}."


_SYSTEM = (
    select(
        select(PrivacyRequest.status).where(PrivacyRequest.id == bindparam("request_id")).scalar_subquery(),
        ConnectionConfig.id,
        ConnectionConfig.key,
        ConnectionConfig.name,
        ConnectionConfig.description,
        ConnectionConfig.disabled,
        ManualWebhook.id,
        ManualWebhook.created_at,
        ManualWebhook.version,
        ConnectionConfig.connection_type,
        ManualInput.connection_config_id,
        ManualInput.version,
        ManualInput.values,
        ManualInput.entered_by_label,
        ManualInput.entered_at,
        ManualInput.sent_back_at,
    )
    .select_from(ConnectionConfig)
    .outerjoin(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
    .outerjoin(
        ManualInput,
        (ManualInput.connection_config_id == ConnectionConfig.id)
        & (ManualInput.privacy_request_id == bindparam("request_id")),
    )
    .where(ConnectionConfig.key == bindparam("key"))
)
_REQUEST_EXISTS = select(exists().where(PrivacyRequest.id == bindparam("request_id")))


def manual_system(request_id: str, connection_key: str) -> ManualSystem:
    """The manual connection ``connection_key`` with its webhook and this request's entry, or NotFound
    naming what is missing (an unknown request before an unknown connection)."""
    row = run(_SYSTEM, {"request_id": request_id, "key": connection_key}).first()
    if row is None:
        if not run(_REQUEST_EXISTS, {"request_id": request_id}).scalar():
            raise request_not_found(request_id)
        raise NotFound(f"No connection config with key '{connection_key}'")
    if row[0] is None:
        raise request_not_found(request_id)
    if row[9] != ConnectionType.MANUAL_WEBHOOK or row[6] is None:
        raise NotFound(f"No access manual webhook exists for connection config with key '{connection_key}'")
    entry = gate.StoredInput(*row[10:]) if row[10] is not None else None
    return ManualSystem(*row[:9], entry)


@dataclass(frozen=True)
class InputView:
    checked: bool
    fields: dict[str, str | None]  # the current labels with the stored values
    entry: gate.StoredInput | None

    @property
    def stale(self) -> bool:
        return self.entry is not None and not self.checked


def view_manual_input(request_id: str, connection_key: str) -> InputView:
    """What is stored for (request, connection), as the API's view and the form show it."""
    system = manual_system(request_id, connection_key)
    return InputView(system.checked, system.current_values(), system.entry)


# --- saving ------------------------------------------------------------------------------------------


def from_parts(
    system: ManualSystem, fields: Mapping[str, list[str]], files: Mapping[str, list[Upload]]
) -> tuple[dict[str, Any], dict[str, list[Upload]]]:
    """A ``multipart/form-data`` upload as (values, uploads): each name is a label, or a field's
    ``pii_field``; a text field takes its one value, a file field its parts as new files and its form
    values as the ids of stored files to keep. Names that match no field stay as they are, so the save
    refuses them as unknown labels."""
    by_name = {f["dsr_package_label"]: f for f in system.fields}
    by_name.update({f["pii_field"]: f for f in system.fields if f["pii_field"] not in by_name})
    values: dict[str, Any] = {}
    for name, given in fields.items():
        definition = by_name.get(name)
        label = definition["dsr_package_label"] if definition else name
        if definition is not None and definition.get("type") == "file":
            values[label] = [*values.get(label, []), *given]
        else:
            values[label] = given[-1] if len(given) == 1 else given  # two values: refused as not a string
    uploads: dict[str, list[Upload]] = {}
    for name, parts in files.items():
        definition = by_name.get(name)
        label = definition["dsr_package_label"] if definition else name
        uploads[label] = [*uploads.get(label, []), *parts]
    return values, uploads


def fields_changed(name: str) -> FieldsChanged:
    return FieldsChanged(
        f"The fields of {name} changed while you were typing: check the values below and save again."
    )


_requests = PrivacyRequest.__table__
_inputs = ManualInput.__table__
_webhooks = ManualWebhook.__table__
# A save takes the request's row first, and only while it still waits for input and the webhook is still at
# the version the values were checked against: a resume or a field edit committing at the same moment
# cannot slip in between, and saves of one request happen one after the other (the row lock on
# PostgreSQL, the write lock on SQLite), so replacing or adding the entry below cannot race.
_TAKE = (
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
_ENTRY = {
    "values": bindparam("values", type_=_inputs.c["values"].type),
    "version": bindparam("version"),
    "entered_by_user_id": bindparam("user_id"),
    "entered_by_token_id": bindparam("token_id"),
    "entered_by_label": bindparam("label"),
    "entered_at": bindparam("now"),
    "sent_back_at": None,  # saved again: a send-back is answered
}
_REPLACE = (
    update(_inputs)
    .where(
        _inputs.c.privacy_request_id == bindparam("request_id"),
        _inputs.c.connection_config_id == bindparam("connection_id"),
    )
    .values(**_ENTRY)
)
_ADD = insert(_inputs).values(
    privacy_request_id=bindparam("request_id"), connection_config_id=bindparam("connection_id"), **_ENTRY
)


def save_manual_input(
    request_id: str,
    connection_key: str,
    values: dict[str, Any],
    actor: Actor,
    system: ManualSystem | None = None,
    built_from: int | None = None,
    uploads: Mapping[str, list[Upload]] | None = None,
) -> dict[str, Any]:
    """Replace the entry for (request, connection). Refused unless the request waits in requires_input.

    ``uploads``: new files by the label of their file field, added to the files the values keep.

    ``system``: what ``manual_system`` returned for them earlier in this transaction, if the caller has it.
    ``built_from``: the webhook version a form was built from; any other version is refused with
    ``FieldsChanged``, nothing stored. Returns what was stored: every current label with its value.
    """
    system = system if system is not None else manual_system(request_id, connection_key)
    if built_from is not None and built_from != system.version:
        raise fields_changed(system.name)
    refusal = system.refusal(request_id)
    if refusal:
        raise InvalidState(refusal)
    uploads = {label: list(files) for label, files in (uploads or {}).items() if files}
    cleaned = validate_values(list(system.fields), values, frozenset(uploads))
    kept = attachments.resolve(
        request_id,
        system.connection_id,
        system.fields,
        system.entry.values if system.entry else {},
        cleaned,
        uploads,
    )
    params = {
        "request_id": request_id,
        "connection_id": system.connection_id,
        "webhook_id": system.webhook_id,
        "values": cleaned,
        "version": system.version,
        "user_id": actor.user_id,
        "token_id": actor.token_id,
        "label": actor.label,
        "now": utcnow(),
    }
    if run(_TAKE, params).rowcount != 1:
        status = run(select(_requests.c.status).where(_requests.c.id == request_id)).scalar()
        if status != RequestStatus.REQUIRES_INPUT:
            raise InvalidState(_status_refusal(request_id, status))
        raise fields_changed(system.name)
    replaced = run(_REPLACE, params).rowcount == 1
    if not replaced:
        run(_ADD, params)
    if attachments.missing(request_id, system.connection_id, kept):
        raise InvalidState(  # another save removed a file this one keeps, after this one was checked
            f"The files of {system.name} changed while you were editing: nothing was saved; reload and "
            "save again."
        )
    files = [ref["id"] for value in cleaned.values() if _is_files(value) for ref in value]
    # Without a file field now or a file in the entry before, there is nothing to drop: skipping the
    # DELETE saved a ninth of a form save's CPU time.
    removed = (
        attachments.drop_unreferenced(request_id, system.connection_id, files)
        if files or _may_hold_files(system)
        else 0
    )
    tasks.mark_done(request_id, system.connection_id)  # saved against the current version: done
    record(
        actor,
        SAVED_ACTION,
        privacy_request_id=request_id,
        connection_key=connection_key,
        labels=sorted(label for label, v in cleaned.items() if v is not None),
        nothing_found=all(v is None for v in cleaned.values()),
        version=system.version,
        replaced=replaced,
        **({"files": len(files), "files_removed": removed} if files or removed else {}),
    )
    return cleaned


def _is_files(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) and "id" in item for item in value)


def _may_hold_files(system: ManualSystem) -> bool:
    """Whether (request, connection) may have stored files: a file field, or files in the entry before
    this save (an unreadable entry may have them too)."""
    if any(definition.get("type") == "file" for definition in system.fields):
        return True
    previous = system.entry.values if system.entry is not None else None
    if previous is None:
        return False
    if not isinstance(previous, dict):
        return True  # undecryptable: it may have held files
    return any(_is_files(value) for value in previous.values())


# --- the request page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One manual system on the request page."""

    gated: gate.GatedWebhook
    entry: gate.StoredInput | None

    @property
    def state(self) -> str:
        if self.entry is None:
            return "not_started"
        if gate.is_done(self.entry, self.gated.webhook.version):
            return "done"
        return "sent_back" if self.entry.sent_back_at is not None else "stale"

    @property
    def nothing_found(self) -> bool:
        return self.entry is not None and all(v is None for v in (self.entry.values or {}).values())


def cards_for(privacy_request: PrivacyRequest) -> list[Card]:
    """The manual-input section of the request page in one query, whatever the number of webhooks."""
    if not gate.applies_to(privacy_request):
        return []
    webhooks, inputs = gate.gated_with_inputs(privacy_request.id)
    return [Card(g, inputs.get(g.connection.id)) for g in webhooks]
