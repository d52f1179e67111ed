"""Manual webhooks (S2): validating field definitions, and creating, replacing and deleting them.

Labels (``dsr_package_label``) are the keys of the access package. They stay plain dictionary keys
everywhere: never attribute names, keyword arguments or class fields, so a label such as ``dict``,
``__class__`` or ``_x`` is as good as any other.

Messages follow fidesops where it has its own (``pii_fields must be unique``, ``dsr_package_labels must be
unique``; an empty list gets pydantic's "ensure this value has at least 1 items", which is what fidesops
answers); the per-field messages are ours, written for a person reading them next to a form row.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import ConnectionConfig, ConnectionType, ManualWebhook
from portal.services import InvalidState, NotFound, ValidationFailed, gate_hooks, text_problem
from portal.services.audit import Actor, record
from portal.services.connections import snake_case

FIELD_TYPES = ("text", "textarea", "email", "number", "date", "boolean")
FIELD_KEYS = ("pii_field", "dsr_package_label", "type", "required", "help_text")
MAX_PII_FIELD_LENGTH = 200
MAX_LABEL_LENGTH = 200
MAX_HELP_TEXT_LENGTH = 500
# Staff fill every field in for each request, on one page: 200 is more than any system needs, and what
# the field editor shows and posts back within the form limits (portal/config.py).
MAX_FIELDS = 200

AT_LEAST_ONE_FIELD = "ensure this value has at least 1 items"
PII_FIELDS_UNIQUE = "pii_fields must be unique"
LABELS_UNIQUE = "dsr_package_labels must be unique"

Location = tuple[Any, ...]


def generated_label(pii_field: str) -> str:
    """The label used when none is given: the snake-case of ``pii_field`` ("Phone Number" → phone_number)."""
    return snake_case(pii_field)[:MAX_LABEL_LENGTH]


def _optional_text(value: Any, name: str, limit: int, errors: list) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append((name, f"{name} must be a string."))
        return None
    if problem := text_problem(value):
        errors.append((name, f"{name} {problem}."))
        return None
    value = value.strip()
    if len(value) > limit:
        errors.append((name, f"{name} must be at most {limit} characters long (it has {len(value)})."))
    return value or None


def _normalize_row(item: Any) -> tuple[dict[str, Any], list[tuple[str | None, str]]]:
    """One field definition, completed with defaults, and its problems as (key or None, message)."""
    errors: list[tuple[str | None, str]] = []
    if not isinstance(item, dict):
        return {}, [(None, "Each field must be an object with at least a pii_field.")]
    for unknown in [k for k in item if k not in FIELD_KEYS]:
        errors.append(
            (
                str(unknown),
                f"Unknown key '{unknown}' in a field definition; allowed: {', '.join(FIELD_KEYS)}.",
            )
        )

    pii_field = item.get("pii_field")
    if pii_field is None:
        errors.append(("pii_field", "pii_field is required."))
        pii_field = ""
    elif not isinstance(pii_field, str):
        errors.append(("pii_field", "pii_field must be a string."))
        pii_field = ""
    elif problem := text_problem(pii_field):
        errors.append(("pii_field", f"pii_field {problem}."))
        pii_field = ""
    else:
        pii_field = pii_field.strip()
        if not pii_field:
            errors.append(("pii_field", "pii_field must not be empty."))
        elif len(pii_field) > MAX_PII_FIELD_LENGTH:
            errors.append(
                (
                    "pii_field",
                    f"pii_field must be at most {MAX_PII_FIELD_LENGTH} characters long "
                    f"(it has {len(pii_field)}).",
                )
            )

    label = _optional_text(item.get("dsr_package_label"), "dsr_package_label", MAX_LABEL_LENGTH, errors)

    field_type = item.get("type")
    if field_type is None or field_type == "":
        field_type = "text"
    elif field_type not in FIELD_TYPES:
        errors.append(("type", f"Unknown type '{field_type}'; choose one of: {', '.join(FIELD_TYPES)}."))

    required = item.get("required")
    if required is None:
        required = False
    elif not isinstance(required, bool):
        errors.append(("required", "required must be true or false."))

    help_text = _optional_text(item.get("help_text"), "help_text", MAX_HELP_TEXT_LENGTH, errors)
    row = {
        "pii_field": pii_field,
        "dsr_package_label": label,
        "type": field_type,
        "required": required,
        "help_text": help_text,
    }
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
        raise ValidationFailed(AT_LEAST_ONE_FIELD, [((), AT_LEAST_ONE_FIELD)])
    if len(raw) > MAX_FIELDS:
        message = f"A manual webhook has at most {MAX_FIELDS} fields; this list has {len(raw):,}."
        raise ValidationFailed(message, [((), message)])

    rows: list[dict[str, Any]] = []
    errors: list[tuple[Location, str]] = []
    for index, item in enumerate(raw):
        row, row_errors = _normalize_row(item)
        rows.append(row)
        errors.extend((((index,) if key is None else (index, key)), message) for key, message in row_errors)
    if errors:
        (location, message) = errors[0]
        raise ValidationFailed(f"Field {location[0] + 1}: {message}", errors)

    duplicates = _rows_sharing([row["pii_field"] for row in rows])
    if duplicates:
        raise ValidationFailed(PII_FIELDS_UNIQUE, [((i, "pii_field"), PII_FIELDS_UNIQUE) for i in duplicates])

    for row in rows:
        if row["dsr_package_label"] is None:
            row["dsr_package_label"] = generated_label(row["pii_field"])

    # Empty labels are not "duplicates" of each other: they get their own message, in the same answer.
    duplicates = _rows_sharing([row["dsr_package_label"] or None for row in rows])
    errors = [((i, "dsr_package_label"), LABELS_UNIQUE) for i in duplicates]
    errors.extend(
        (
            (index, "dsr_package_label"),
            f"Cannot generate a dsr_package_label from the pii_field '{row['pii_field']}': it has no "
            "letters or digits. Enter a dsr_package_label.",
        )
        for index, row in enumerate(rows)
        if not row["dsr_package_label"]
    )
    if errors:
        raise ValidationFailed(errors[0][1], errors)
    return rows


def _require_manual(conn: ConnectionConfig) -> None:
    if conn.connection_type != ConnectionType.MANUAL_WEBHOOK:
        raise InvalidState(
            "You can only create manual webhooks for ConnectionConfigs of type 'manual_webhook'."
        )


def _already_exists(conn: ConnectionConfig) -> InvalidState:
    return InvalidState(f"An Access Manual Webhook already exists for ConnectionConfig '{conn.key}'.")


def _labels(fields: list[dict]) -> list[str]:
    return [field["dsr_package_label"] for field in fields]


def _insert(conn: ConnectionConfig, fields: list[dict], actor: Actor) -> ManualWebhook:
    webhook = ManualWebhook(connection_config=conn, fields=fields, version=1)
    db.session.add(webhook)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # another admin created it a moment ago
        raise _already_exists(conn) from exc
    record(actor, "webhook.created", connection_key=conn.key, key=conn.key, version=1, labels=_labels(fields))
    return webhook


def get_webhook(conn: ConnectionConfig) -> ManualWebhook:
    if conn.manual_webhook is None:
        raise NotFound(f"No access manual webhook exists for connection config with key '{conn.key}'")
    return conn.manual_webhook


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


def replace_fields(conn: ConnectionConfig, fields: list[dict], actor: Actor) -> ManualWebhook:
    """The fidesops PATCH: replace the list, or create it when absent. An identical list changes nothing.

    A changed list gets the next ``version``, so data entered against the old one becomes stale (S4).
    """
    normalized = normalize_fields(fields)
    _require_manual(conn)
    webhook = conn.manual_webhook
    if webhook is None:
        return _insert(conn, normalized, actor)
    before = _stored_normalized(webhook)
    if before == normalized:
        return webhook
    old_labels = _labels(before) if before is not None else list(webhook.labels)
    webhook.fields = normalized
    # Incremented in SQL so two admins saving at once still get two distinct versions.
    webhook.version = ManualWebhook.version + 1
    db.session.flush()
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
        gate_hooks.webhooks_changed(actor)
    return webhook


def delete_webhook(conn: ConnectionConfig, actor: Actor) -> None:
    """Remove the field definition; the connection stays, and stops gating requests (S4 "never stuck")."""
    webhook = get_webhook(conn)
    details = {"key": conn.key, "version": webhook.version, "labels": list(webhook.labels)}
    conn.manual_webhook = None  # delete-orphan: the row goes at flush
    db.session.flush()
    record(actor, "webhook.deleted", connection_key=conn.key, **details)
    gate_hooks.webhooks_changed(actor)
