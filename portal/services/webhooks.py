"""Manual webhooks (S2): validating field definitions, and creating, replacing and deleting them.

Labels (``dsr_package_label``) are the keys of the access package. They stay plain dictionary keys
everywhere: never attribute names, keyword arguments or class fields, so a label such as ``dict``,
``__class__`` or ``_x`` is as good as any other.

Messages follow fidesops where it has its own (``pii_fields must be unique``, ``dsr_package_labels must be
unique``; an empty list gets pydantic's "ensure this value has at least 1 items", which is what fidesops
answers); the per-field messages are ours, written for a person reading them next to a form row.

Over 400 lines because the field-list rules (validation, ids kept over renames, versions) and the
writes that apply them are one job: every write goes through the same rules.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.execution import tasks
from portal.extensions import db
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualInput,
    ManualWebhook,
    ManualWebhookVersion,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.services import (
    FieldsChanged,
    InvalidState,
    NotFound,
    ValidationFailed,
    connections,
    privacy_requests,
    text_problem,
)
from portal.services.keys import snake_case

FIELD_TYPES = ("text", "textarea", "email", "number", "date", "boolean", "file")
FIELD_KEYS = ("id", "pii_field", "dsr_package_label", "type", "required", "help_text")
# A field's stable identity: given by the client (the editor sends it back), else kept from the field it
# matches in the current list, else new. It names the field's form input, so it stays a plain token.
FIELD_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,40}$")
MAX_PII_FIELD_LENGTH = 200
MAX_LABEL_LENGTH = 200
MAX_HELP_TEXT_LENGTH = 500
# Staff fill every field in for each request, on one page: 200 is more than any system needs, and what
# the field editor shows and posts back within the form limits (portal/config.py).
MAX_FIELDS = 200

AT_LEAST_ONE_FIELD = "ensure this value has at least 1 items"
PII_FIELDS_UNIQUE = "pii_fields must be unique"
LABELS_UNIQUE = "dsr_package_labels must be unique"
IDS_UNIQUE = "field ids must be unique"
# What the API's keys are called in the HTML UI's messages.
IN_WORDS = {
    "pii_field": "The PII field",
    "dsr_package_label": "The package label",
    "help_text": "The help text",
}

Location = tuple[Any, ...]
# A problem with one key of a field definition: (key or None, the API's message, the UI's message).
Problem = tuple[str | None, str, str]


def generated_label(pii_field: str) -> str:
    """The label used when none is given: the snake-case of ``pii_field`` ("Phone Number" → phone_number)."""
    return snake_case(pii_field)[:MAX_LABEL_LENGTH]


def _problem(name: str, rest: str) -> Problem:
    return (name, f"{name} {rest}", f"{IN_WORDS.get(name, name)} {rest}")


def _optional_text(value: Any, name: str, limit: int, errors: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(_problem(name, "must be a string."))
        return None
    if problem := text_problem(value):
        errors.append(_problem(name, f"{problem}."))
        return None
    value = value.strip()
    if len(value) > limit:
        errors.append(_problem(name, f"must be at most {limit} characters long (it has {len(value)})."))
    return value or None


def _normalize_row(item: Any) -> tuple[dict[str, Any], list[Problem]]:
    """One field definition, completed with defaults, and its problems."""
    errors: list[Problem] = []
    if not isinstance(item, dict):
        message = "Each field must be an object with at least a pii_field."
        return {}, [(None, message, "Each field needs at least a PII field.")]
    for unknown in [k for k in item if k not in FIELD_KEYS]:
        message = f"Unknown key '{unknown}' in a field definition; allowed: {', '.join(FIELD_KEYS)}."
        errors.append((str(unknown), message, message))

    field_id = item.get("id")
    if field_id is not None and (not isinstance(field_id, str) or not FIELD_ID_PATTERN.match(field_id)):
        message = "id must be 1 to 40 letters, digits or underscores (or left out)."
        errors.append(("id", message, message))
        field_id = None

    pii_field = item.get("pii_field")
    if pii_field is None:
        errors.append(
            ("pii_field", "pii_field is required.", "Enter a PII field: the name of what staff look up.")
        )
        pii_field = ""
    elif not isinstance(pii_field, str):
        errors.append(_problem("pii_field", "must be a string."))
        pii_field = ""
    elif problem := text_problem(pii_field):
        errors.append(_problem("pii_field", f"{problem}."))
        pii_field = ""
    else:
        pii_field = pii_field.strip()
        if not pii_field:
            message = "Enter a PII field: the name of what staff look up."
            errors.append(("pii_field", "pii_field must not be empty.", message))
        elif len(pii_field) > MAX_PII_FIELD_LENGTH:
            errors.append(
                _problem(
                    "pii_field",
                    f"must be at most {MAX_PII_FIELD_LENGTH} characters long (it has {len(pii_field)}).",
                )
            )

    label = _optional_text(item.get("dsr_package_label"), "dsr_package_label", MAX_LABEL_LENGTH, errors)

    field_type = item.get("type")
    if field_type is None or field_type == "":
        field_type = "text"
    elif field_type not in FIELD_TYPES:
        message = f"Unknown type '{field_type}'; choose one of: {', '.join(FIELD_TYPES)}."
        errors.append(("type", message, message))

    required = item.get("required")
    if required is None:
        required = False
    elif not isinstance(required, bool):
        errors.append(("required", "required must be true or false.", "Required must be yes or no."))

    help_text = _optional_text(item.get("help_text"), "help_text", MAX_HELP_TEXT_LENGTH, errors)
    row = {
        "pii_field": pii_field,
        "dsr_package_label": label,
        "type": field_type,
        "required": required,
        "help_text": help_text,
    }
    if field_id is not None:
        row = {"id": field_id, **row}
    return row, errors


def _rows_sharing(values: list[str | None]) -> list[int]:
    """Indexes of every row whose value appears more than once (None never counts)."""
    seen: dict[str, list[int]] = defaultdict(list)
    for index, value in enumerate(values):
        if value is not None:
            seen[value].append(index)
    return sorted(i for indexes in seen.values() if len(indexes) > 1 for i in indexes)


def normalize_fields(raw: list[dict]) -> list[dict]:
    """Validated field definitions with every key present and labels generated, in the given order.

    Raises ``ValidationFailed`` whose ``errors`` are ``((index, key), message)``; a uniqueness error marks
    every row involved. Row problems are all reported at once; then the list rules run in S2's order (the
    two label rules together) and the message is that of the first rule that fails.
    """
    if not isinstance(raw, list):
        raise ValidationFailed("fields must be a list of field definitions.", [((), "must be a list")])
    if not raw:
        raise ValidationFailed(
            AT_LEAST_ONE_FIELD,
            [((), AT_LEAST_ONE_FIELD)],
            words="Add at least one field before saving.",
            error_words=["Add at least one field before saving."],
        )
    if len(raw) > MAX_FIELDS:
        message = f"A manual webhook has at most {MAX_FIELDS} fields; this list has {len(raw):,}."
        raise ValidationFailed(message, [((), message)])

    rows: list[dict[str, Any]] = []
    errors: list[tuple[Location, str]] = []
    error_words: list[str] = []
    for index, item in enumerate(raw):
        row, problems = _normalize_row(item)
        rows.append(row)
        for key, message, said in problems:
            errors.append((((index,) if key is None else (index, key)), message))
            error_words.append(said)
    if errors:
        (location, message) = errors[0]
        raise ValidationFailed(
            f"Field {location[0] + 1}: {message}",
            errors,
            words=f"Field {location[0] + 1}: {error_words[0]}",
            error_words=error_words,
        )

    _refuse_shared(rows, "pii_field", PII_FIELDS_UNIQUE, "PII field")
    _refuse_shared(rows, "id", IDS_UNIQUE, "id")

    for row in rows:
        if row["dsr_package_label"] is None:
            row["dsr_package_label"] = generated_label(row["pii_field"])

    # Empty labels are not "duplicates" of each other: they get their own message, in the same answer.
    _refuse_shared(rows, "dsr_package_label", LABELS_UNIQUE, "package label", also=_unlabelled(rows))
    return rows


def _unlabelled(rows: list[dict]) -> list[tuple[Location, str, str]]:
    """A row whose label could not be generated: (location, the API's message, the UI's message)."""
    return [
        (
            (index, "dsr_package_label"),
            f"Cannot generate a dsr_package_label from the pii_field '{row['pii_field']}': it has no "
            "letters or digits. Enter a dsr_package_label.",
            f"Cannot make a package label from the PII field “{row['pii_field']}”: it has no letters or "
            "digits. Enter a package label.",
        )
        for index, row in enumerate(rows)
        if not row["dsr_package_label"]
    ]


def _refuse_shared(rows: list[dict], key: str, message: str, name: str, also=()) -> None:
    """Refuses a list in which two rows share a value of ``key`` (every row involved is marked), or which
    has the ``also`` problems; the API keeps fidesops' message, the UI names the value shared."""
    duplicates = _rows_sharing([row.get(key) or None for row in rows])
    problems = [
        ((i, key), message, f"Two fields have the same {name}: {rows[i][key]}") for i in duplicates
    ] + list(also)
    if problems:
        raise ValidationFailed(
            problems[0][1],
            [(location, api) for location, api, _ in problems],
            words=problems[0][2],
            error_words=[said for _, _, said in problems],
        )


def _require_manual(conn: ConnectionConfig) -> None:
    if conn.connection_type != ConnectionType.MANUAL_WEBHOOK:
        raise InvalidState(
            "You can only create manual webhooks for ConnectionConfigs of type 'manual_webhook'.",
            words=f"“{conn.name}” is not a manual webhook: only manual webhooks have fields.",
        )


def _already_exists(conn: ConnectionConfig) -> InvalidState:
    return InvalidState(
        f"An Access Manual Webhook already exists for ConnectionConfig '{conn.key}'.",
        words=f"The connection with the key {conn.key} already has manual webhook fields.",
    )


def _labels(fields: list[dict]) -> list[str]:
    return [field["dsr_package_label"] for field in fields]


def _with_ids(rows: list[dict], previous: list[dict]) -> list[dict]:
    """``rows`` with every ``id`` filled: a row without one keeps the id of the current field it matches
    (same label, else same pii_field), so a rename or a reorder through the API keeps each field's
    identity; a row that matches nothing is a new field."""
    given = {row["id"] for row in rows if "id" in row}
    unclaimed = [field for field in previous if field.get("id") and field["id"] not in given]
    rows = [dict(row) for row in rows]
    for attribute in ("dsr_package_label", "pii_field"):
        for row in rows:
            match = next((f for f in unclaimed if f.get(attribute) == row[attribute]), None)
            if "id" not in row and match is not None:
                row["id"] = match["id"]
                unclaimed.remove(match)
    taken = {row.get("id") for row in rows} | {field.get("id") for field in previous}
    for row in rows:
        while "id" not in row:
            candidate = secrets.token_hex(6)
            if candidate not in taken:
                row["id"] = candidate
                taken.add(candidate)
    # The id first, as stored lists have it, so an unchanged list compares equal.
    return [{"id": row["id"], **{k: v for k, v in row.items() if k != "id"}} for row in rows]


def _keep_version(webhook: ManualWebhook) -> None:
    """Keep the list as it is at ``webhook.version`` (flushed), for entries saved against it."""
    db.session.add(
        ManualWebhookVersion(webhook_id=webhook.id, version=webhook.version, fields=webhook.fields)
    )
    db.session.flush()


def _first_version(conn: ConnectionConfig) -> int:
    """1, or past every version an entry of this connection was saved against: a webhook deleted and
    defined again must not make an entry for its old fields look current."""
    highest = db.session.scalar(
        select(func.max(ManualInput.version)).where(ManualInput.connection_config_id == conn.id)
    )
    return (highest or 0) + 1


def _insert(conn: ConnectionConfig, fields: list[dict], actor: Actor) -> ManualWebhook:
    version = _first_version(conn)
    webhook = ManualWebhook(connection_config=conn, fields=_with_ids(fields, []), version=version)
    db.session.add(webhook)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # another admin created it a moment ago
        raise _already_exists(conn) from exc
    _keep_version(webhook)
    tasks.open_for_waiting(conn.id)  # waiting requests now wait for this system too
    record(
        actor,
        "webhook.created",
        connection_key=conn.key,
        key=conn.key,
        version=version,
        labels=_labels(fields),
    )
    return webhook


def get_manual_connection(key: str) -> ConnectionConfig:
    """The connection ``key`` when it is a manual one (NotFound otherwise: it has no fields to edit)."""
    conn = connections.get_connection(key)
    if conn.connection_type != ConnectionType.MANUAL_WEBHOOK:
        raise NotFound(f"Connection '{key}' is not a manual webhook, so it has no fields to edit.")
    return conn


def get_webhook(conn: ConnectionConfig) -> ManualWebhook:
    if conn.manual_webhook is None:
        raise NotFound(f"No access manual webhook exists for connection config with key '{conn.key}'")
    return conn.manual_webhook


def fields_at(webhook_id: int, version: int) -> list[dict]:
    """The webhook's field list as it was at ``version`` (empty when that version is not kept)."""
    fields = db.session.scalar(
        select(ManualWebhookVersion.fields).where(
            ManualWebhookVersion.webhook_id == webhook_id, ManualWebhookVersion.version == version
        )
    )
    return list(fields or [])


def create_webhook(conn: ConnectionConfig, fields: list[dict], actor: Actor) -> ManualWebhook:
    """The fidesops POST: the connection must be a manual one that has no webhook yet."""
    normalized = normalize_fields(fields)
    _require_manual(conn)
    if conn.manual_webhook is not None:
        raise _already_exists(conn)
    return _insert(conn, normalized, actor)


def _stored_normalized(webhook: ManualWebhook) -> list[dict] | None:
    """The stored list in today's full shape (older rows may lack the optional keys), or None if invalid."""
    try:
        return normalize_fields(list(webhook.fields or []))
    except ValidationFailed:
        return None


def _changed_meanwhile(conn: ConnectionConfig, current: int | None) -> FieldsChanged:
    now = f"they are now version {current}" if current else "they were deleted"
    return FieldsChanged(
        f"Someone else saved the fields of {conn.name} while you were editing them ({now}). Nothing was "
        "saved. Your list is below: save it again to replace theirs, or reload the page to start from theirs."
    )


def replace_fields(
    conn: ConnectionConfig, fields: list[dict], actor: Actor, expected_version: int | None = None
) -> ManualWebhook:
    """The fidesops PATCH: replace the list, or create it when absent. An identical list changes nothing.

    A changed list gets the next ``version``, so data entered against the old one becomes stale (S4).
    ``expected_version``: the version the caller's list was edited from (the field editor; 0 when there
    was no list); when the webhook has another one now, nothing is changed and ``FieldsChanged`` says so.
    """
    normalized = normalize_fields(fields)
    _require_manual(conn)
    webhook = conn.manual_webhook
    current = webhook.version if webhook is not None else 0
    if expected_version is not None and expected_version != current:
        raise _changed_meanwhile(conn, current)
    if webhook is None:
        return _insert(conn, normalized, actor)
    before = _stored_normalized(webhook)
    normalized = _with_ids(normalized, before if before is not None else list(webhook.fields))
    if before == normalized:
        return webhook
    old_labels = _labels(before) if before is not None else list(webhook.labels)
    # Incremented in SQL so two admins saving at once still get two distinct versions; with an expected
    # version, only if it is still the current one (a check and its write in one statement).
    change = update(ManualWebhook).where(ManualWebhook.id == webhook.id)
    if expected_version is not None:
        change = change.where(ManualWebhook.version == expected_version)
    changed = db.session.execute(
        change.values(fields=normalized, version=ManualWebhook.version + 1, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount != 1:
        raise _changed_meanwhile(
            conn, db.session.scalar(select(ManualWebhook.version).where(ManualWebhook.id == webhook.id))
        )
    db.session.refresh(webhook)
    _keep_version(webhook)
    tasks.reopen_stale(conn.id)  # entries saved against the old fields need a re-review
    new_labels = _labels(normalized)
    record(
        actor,
        "webhook.changed",
        connection_key=conn.key,
        key=conn.key,
        version=webhook.version,
        labels=new_labels,
        added_labels=[label for label in new_labels if label not in old_labels],
        removed_labels=[label for label in old_labels if label not in new_labels],
    )
    if not webhook.fields:
        # normalize_fields refuses an empty list today; this keeps the gate right if that ever changes.
        privacy_requests.reevaluate_waiting(actor)
    return webhook


def delete_webhook(conn: ConnectionConfig, actor: Actor) -> None:
    """Remove the field definition; the connection stays, and stops gating requests (S4 "never stuck")."""
    webhook = get_webhook(conn)
    details = {"key": conn.key, "version": webhook.version, "labels": list(webhook.labels)}
    conn.manual_webhook = None  # delete-orphan: the row goes at flush
    db.session.flush()
    record(actor, "webhook.deleted", connection_key=conn.key, **details)
    privacy_requests.reevaluate_waiting(actor)
