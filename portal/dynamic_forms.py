"""Manual-input forms built from a webhook's field definitions (S2, S4).

``build_manual_input_form(fields, version)`` returns a *fresh* FlaskForm class on every call, so fields
and validators never leak between webhooks or requests. Inputs are named ``field_<id>`` after each
definition's stable id (never its position, so a reorder or rename cannot move a value to another field),
and the form carries the webhook version it was built from; ``dsr_package_label``s never become attribute
names (a label may be ``dict`` or ``__class__``) and ``pii_field`` is only ever label *text*.

The rules are ``manual_inputs``': a save is checked by ``validate_values``, and the form's own type checks
call the same ``typed_problem``, saying it in a person's words next to each input.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import FileStorage
from wtforms import (
    Field,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.utils import unset_value
from wtforms.validators import Length, Optional, StopValidation, ValidationError
from wtforms.widgets import DateInput, EmailInput

from portal import cache
from portal.services import ValidationFailed
from portal.services.attachments import Upload
from portal.services.manual_inputs import (
    FALSE_WORDS,
    MAX_VALUE_LENGTH,
    TRUE_WORDS,
    ManualSystem,
    typed_problem,
)

BOOLEAN_CHOICES = [SelectChoice("", "(blank)"), SelectChoice("true", "Yes"), SelectChoice("false", "No")]
NOTHING_ENTERED = (
    "Fill in at least one field, or press “Nothing found in this system” if this system holds no data "
    "about the person."
)
# ``manual_inputs.PROBLEMS`` as the form says them, next to the input.
FORM_MESSAGES = {
    "email": "Enter an email address, e.g. name@example.com.",
    "number": "Enter a number, e.g. 42 or 3.5.",
    "finite": "Enter a finite number, e.g. 42 or 3.5.",
    "date": "Enter a date as YYYY-MM-DD.",
}


def field_name(field_id: str) -> str:
    return f"field_{field_id}"


def _blank(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


class RequiredOnSave:
    """Required when saving data; the separate "Nothing found" button skips form validation entirely."""

    field_flags = {"required": True}

    def __call__(self, form, field) -> None:
        if _blank(field.data):
            raise StopValidation("This field is required.")


class TypedValue:
    """The service's check of a typed value (``manual_inputs.typed_problem``), in the form's words."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, form, field) -> None:
        problem, _ = typed_problem(self.kind, field.data)
        if problem:
            raise ValidationError(FORM_MESSAGES[problem])


class AttachmentsField(Field):
    """A ``file`` field: new files from a multiple file input named after the field, and the stored files
    to keep, as checkboxes named ``<name>-keep`` (unchecking one removes that file at the next save).

    ``data`` is the list of ids kept (a posted form) or the stored references (a form showing an entry);
    ``files`` the new files posted; ``stored`` the references the page lists (``ManualInputForm.show_stored``).
    """

    def process(self, formdata, data=unset_value, extra_filters=None) -> None:
        self.process_errors = []
        self.raw_data: list[Any] = []
        self.files: list[FileStorage] = []
        self.kept: list[str] | None = None  # None: not posted, every stored file shows as kept
        self.stored = data if isinstance(data, list) else []
        self.data = [ref["id"] for ref in self.stored if isinstance(ref, dict) and "id" in ref] or None
        if formdata is not None:
            # A file input with nothing chosen still posts one part with an empty name.
            self.files = [
                item
                for item in formdata.getlist(self.name)
                if isinstance(item, FileStorage) and item.filename
            ]
            self.kept = [item for item in formdata.getlist(f"{self.name}-keep") if isinstance(item, str)]
            self.data = self.kept or None

    def keeps(self, attachment_id: str) -> bool:
        return self.kept is None or attachment_id in self.kept

    def blank(self) -> bool:
        return not self.data and not self.files

    def uploads(self) -> list[Upload]:
        return [Upload(item.filename or "", item.stream) for item in self.files]

    @staticmethod
    def describe(reference: dict[str, Any]) -> str:
        """A stored file's type and size, for its line on the form: "application/pdf, 1.2 MB"."""
        size = reference.get("size") or 0
        shown = f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} kB"
        return f"{reference.get('type')}, {shown}"

    def _value(self) -> str:
        return ""


class RequiredFiles:
    """A required file field: at least one file, new or kept, when saving data."""

    field_flags = {"required": True}

    def __call__(self, form, field) -> None:
        if field.blank():
            raise StopValidation("Choose at least one file.")


def _make_field(definition: dict[str, Any]) -> Field:
    kind = definition.get("type") or "text"
    label = definition["pii_field"]
    description = definition.get("help_text") or ""
    if kind == "file":
        presence = RequiredFiles() if definition.get("required") else Optional()
        return AttachmentsField(label, [presence], description=description)
    presence = RequiredOnSave() if definition.get("required") else Optional()
    length = Length(max=MAX_VALUE_LENGTH, message=f"Enter at most {MAX_VALUE_LENGTH} characters.")
    if kind == "boolean":
        return SelectField(label, [presence], choices=BOOLEAN_CHOICES, default="", description=description)
    if kind == "textarea":
        return TextAreaField(label, [presence, length], description=description, render_kw={"rows": 4})
    checks = [presence, length, TypedValue(kind)]
    if kind == "email":
        return StringField(label, checks, description=description, widget=EmailInput())
    if kind == "number":
        return StringField(label, checks, description=description, render_kw={"inputmode": "decimal"})
    if kind == "date":
        return StringField(label, checks, description=description, widget=DateInput())
    return StringField(label, [presence, length], description=description)


class ManualInputForm(FlaskForm):
    """Base of every generated form: the version it was built from, the two submit buttons, and the
    at-least-one-value rule for Save."""

    class Meta:
        # Every POST is checked by CSRFProtect before a view runs; the form checking the token again (and
        # signing a fresh one each time it is built) cost a tenth of a millisecond per save. Its template
        # renders ``csrf_token()`` itself.
        csrf = False

    definitions: tuple[dict[str, Any], ...] = ()
    labels: tuple[str, ...] = ()
    field_ids: tuple[str, ...] = ()
    current_version: int = 0  # the version the class was built for
    version = HiddenField()  # what a posted form says it was built from (no default: missing is None)
    reveal = HiddenField()  # "1" while the page shows whom to look up: shown again if the save is refused
    save = SubmitField("Save")
    nothing_found = SubmitField("Nothing found in this system")

    @classmethod
    def showing(cls, stored: dict[str, str | None]) -> ManualInputForm:
        """An unposted form showing the stored ``{label: value}``, carrying the version it is built for."""
        return cls(
            formdata=None, data={**prefill(cls.definitions, stored), "version": str(cls.current_version)}
        )

    def manual_fields(self) -> list[Field]:
        return [self[field_name(field_id)] for field_id in self.field_ids]

    def values(self) -> dict[str, Any]:
        """What was typed as ``{label: value or None}``: blank inputs are None, others kept as typed; a file
        field's value is the ids of the stored files kept (its new files are ``uploads``)."""
        return {
            label: None if _blank(field.data) else field.data
            for label, field in zip(self.labels, self.manual_fields(), strict=True)
        }

    def uploads(self) -> dict[str, list[Upload]]:
        """The new files, by the label of their field."""
        return {
            label: field.uploads()
            for label, field in zip(self.labels, self.manual_fields(), strict=True)
            if isinstance(field, AttachmentsField) and field.files
        }

    def show_stored(self, values: dict[str, Any]) -> None:
        """List the entry's stored files (``{label: value}``) under their fields, to keep or remove."""
        for label, field in zip(self.labels, self.manual_fields(), strict=True):
            if isinstance(field, AttachmentsField):
                stored = values.get(label)
                field.stored = (
                    [ref for ref in stored if isinstance(ref, dict)] if isinstance(stored, list) else []
                )

    def built_from(self) -> int | None:
        """The webhook version the posted form was built from (None: missing, or not a version)."""
        return version_number(self.version.data)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if all(
            field.blank() if isinstance(field, AttachmentsField) else _blank(field.data)
            for field in self.manual_fields()
        ):
            for field in self.manual_fields():
                field.errors = []  # "required" is not the point when nothing at all was entered
            self.form_errors.append(NOTHING_ENTERED)
            return False
        return valid

    def show_service_errors(self, error: ValidationFailed) -> None:
        """Show the service's ``((label,), message)`` errors next to the matching inputs."""
        ids = dict(zip(self.labels, self.field_ids, strict=True))
        for location, message in error.errors:
            label = location[0] if location else None
            if label in ids:
                field = self[field_name(ids[label])]
                text = message.removeprefix(f"{label}: ")
                field.errors = [
                    *field.errors,
                    text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."),
                ]
            else:
                self.form_errors.append(message)
        if not error.errors:
            self.form_errors.append(str(error))


def version_number(value: str | None) -> int | None:
    """A webhook version as a form posts it back (None: missing, or not a plain version number)."""
    value = value or ""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def build_manual_input_form(fields: list[dict[str, Any]], version: int) -> type[ManualInputForm]:
    """A new form class for these field definitions at ``version`` (never a shared, mutated one)."""
    attributes: dict[str, Any] = {
        field_name(definition["id"]): _make_field(definition) for definition in fields
    }
    attributes["definitions"] = tuple(fields)
    attributes["labels"] = tuple(definition["dsr_package_label"] for definition in fields)
    attributes["field_ids"] = tuple(definition["id"] for definition in fields)
    attributes["current_version"] = version
    return type("GeneratedManualInputForm", (ManualInputForm,), attributes)


def manual_input_form_for(system: ManualSystem) -> type[ManualInputForm]:
    """The form class of a webhook version, built once (``cache.form_classes``): building one costs as
    much as validating a save."""
    form_class = cache.form_classes.get(system.fields_key)
    if form_class is None:
        form_class = cache.form_classes[system.fields_key] = build_manual_input_form(
            list(system.fields), system.version
        )
    return form_class


def _prefill_value(definition: dict[str, Any], value: Any) -> str:
    """A stored value (typed, or a string stored before values were typed) as its input shows it."""
    if (definition.get("type") or "text") == "file":
        return value if isinstance(value, list) else None  # the stored references, listed to keep
    if value is None:
        return ""
    if (definition.get("type") or "text") == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        word = str(value).strip().lower()
        return "true" if word in TRUE_WORDS else "false" if word in FALSE_WORDS else ""
    return value if isinstance(value, str) else str(value)


def prefill(fields, stored: dict[str, Any]) -> dict[str, str]:
    """Form data for the stored ``{label: value}`` (labels that no longer exist are simply absent)."""
    return {
        field_name(definition["id"]): _prefill_value(definition, stored.get(definition["dsr_package_label"]))
        for definition in fields
    }
