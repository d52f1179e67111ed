"""Manual-input forms built from a webhook's field definitions (S2, S4).

``build_manual_input_form(fields, version)`` returns a *fresh* FlaskForm class on every call, so fields
and validators never leak between webhooks or requests. Inputs are named ``field_<id>`` after each
definition's stable id (never its position, so a reorder or rename cannot move a value to another field),
and the form carries the webhook version it was built from; ``dsr_package_label``s never become attribute
names (a label may be ``dict`` or ``__class__``) and ``pii_field`` is only ever label *text*.

``manual_inputs.validate_values`` is the authority: a save is checked by it alone. When it refuses, the
form's own checks (required, email, number, date, length) run for messages shown next to each input.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    Field,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import Email, Length, Optional, StopValidation, ValidationError
from wtforms.widgets import DateInput

from portal.services import ValidationFailed
from portal.services.manual_inputs import FALSE_WORDS, MAX_VALUE_LENGTH, TRUE_WORDS

BOOLEAN_CHOICES = [SelectChoice("", "(blank)"), SelectChoice("true", "Yes"), SelectChoice("false", "No")]
NOTHING_ENTERED = (
    "Fill in at least one field, or press “Nothing found in this system” if this system holds no data "
    "about the person."
)


def field_name(field_id: str) -> str:
    return f"field_{field_id}"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class RequiredOnSave:
    """Required when saving data; the separate "Nothing found" button skips form validation entirely."""

    field_flags = {"required": True}

    def __call__(self, form, field) -> None:
        if _blank(field.data):
            raise StopValidation("This field is required.")


def _number(form, field) -> None:
    try:
        number = float(field.data.strip())
    except ValueError:
        raise ValidationError("Enter a number, e.g. 42 or 3.5.") from None
    if not math.isfinite(number):
        raise ValidationError("Enter a finite number, e.g. 42 or 3.5.")


def _iso_date(form, field) -> None:
    try:
        date.fromisoformat(field.data.strip())
    except ValueError:
        raise ValidationError("Enter a date as YYYY-MM-DD.") from None


def _make_field(definition: dict[str, Any]) -> Field:
    kind = definition.get("type") or "text"
    label = definition["pii_field"]
    description = definition.get("help_text") or ""
    presence = RequiredOnSave() if definition.get("required") else Optional()
    length = Length(max=MAX_VALUE_LENGTH, message=f"Enter at most {MAX_VALUE_LENGTH} characters.")
    if kind == "boolean":
        return SelectField(label, [presence], choices=BOOLEAN_CHOICES, default="", description=description)
    if kind == "textarea":
        return TextAreaField(label, [presence, length], description=description, render_kw={"rows": 4})
    if kind == "email":
        message = "Enter an email address, e.g. name@example.com."
        return EmailField(label, [presence, length, Email(message=message)], description=description)
    if kind == "number":
        return StringField(
            label, [presence, length, _number], description=description, render_kw={"inputmode": "decimal"}
        )
    if kind == "date":
        return StringField(label, [presence, length, _iso_date], description=description, widget=DateInput())
    return StringField(label, [presence, length], description=description)


class ManualInputForm(FlaskForm):
    """Base of every generated form: the two submit buttons and the at-least-one-value rule for Save."""

    class Meta:
        # Every POST is checked by CSRFProtect before a view runs; the form checking the token again (and
        # signing a fresh one each time it is built) cost a tenth of a millisecond per save (issue 9). Its
        # template renders ``csrf_token()`` itself.
        csrf = False

    labels: tuple[str, ...] = ()
    field_ids: tuple[str, ...] = ()
    version = HiddenField()
    save = SubmitField("Save")
    nothing_found = SubmitField("Nothing found in this system")

    def manual_fields(self) -> list[Field]:
        return [self[field_name(field_id)] for field_id in self.field_ids]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if all(_blank(field.data) for field in self.manual_fields()):
            for field in self.manual_fields():
                field.errors = []  # "required" is not the point when nothing at all was entered
            self.form_errors.append(NOTHING_ENTERED)
            return False
        return valid


def build_manual_input_form(fields: list[dict[str, Any]], version: int) -> type[ManualInputForm]:
    """A new form class for these field definitions at ``version`` (never a shared, mutated one)."""
    attributes: dict[str, Any] = {
        field_name(definition["id"]): _make_field(definition) for definition in fields
    }
    attributes["labels"] = tuple(definition["dsr_package_label"] for definition in fields)
    attributes["field_ids"] = tuple(definition["id"] for definition in fields)
    attributes["version"] = HiddenField(default=str(version))
    return type("GeneratedManualInputForm", (ManualInputForm,), attributes)


# id(fields) → (fields, form class). The entry keeps ``fields`` alive, so its id cannot be reused by another
# object while cached; the gate's cache hands out one tuple per webhook version, so a save finds its class.
_FORM_CLASSES: dict[int, tuple[tuple[dict[str, Any], ...], type[ManualInputForm]]] = {}


def manual_input_form_for(fields: tuple[dict[str, Any], ...], version: int) -> type[ManualInputForm]:
    """``build_manual_input_form`` for a field list from the gate's cache (an immutable tuple, one per
    webhook version), built once: building a form class costs as much as validating a save (issue 9)."""
    cached = _FORM_CLASSES.get(id(fields))
    if cached is not None and cached[0] is fields:
        return cached[1]
    if len(_FORM_CLASSES) > 1_000:
        _FORM_CLASSES.clear()
    form_class = build_manual_input_form(list(fields), version)
    _FORM_CLASSES[id(fields)] = (fields, form_class)
    return form_class


def _prefill_value(definition: dict[str, Any], value: str | None) -> str:
    if value is None:
        return ""
    if (definition.get("type") or "text") == "boolean":
        word = value.strip().lower()
        return "true" if word in TRUE_WORDS else "false" if word in FALSE_WORDS else ""
    return value


def prefill(fields: list[dict[str, Any]], stored: dict[str, str | None]) -> dict[str, str]:
    """Form data for the stored ``{label: value}`` (labels that no longer exist are simply absent)."""
    return {
        field_name(definition["id"]): _prefill_value(definition, stored.get(definition["dsr_package_label"]))
        for definition in fields
    }


def submitted_values(form_class: type[ManualInputForm], formdata) -> dict[str, str | None]:
    """The submitted data as ``{label: value or None}``, read without building the form: blank inputs
    become None, others are kept as typed (what ``form_class(formdata)``'s fields would hold).

    A valid save needs no form object: ``manual_inputs.validate_values`` checks everything the form would,
    and more. The view builds the form only to show errors (issue 9: building and validating it cost a
    tenth of every save).
    """
    values = {}
    for field_id, label in zip(form_class.field_ids, form_class.labels, strict=True):
        value = formdata.get(field_name(field_id))
        values[label] = None if _blank(value) else value
    return values


def version_number(value: str | None) -> int | None:
    """A webhook version as a form posts it back (None: missing, or not a plain version number)."""
    value = value or ""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def submitted_version(formdata) -> int | None:
    """The webhook version the posted manual-input form was built from."""
    return version_number(formdata.get("version"))


def pressed(formdata, button: str) -> bool:
    """Whether the submit button named ``button`` sent this form, as WTForms' ``SubmitField`` reads it."""
    return formdata.get(button, "") not in ("", "false")


def attach_service_errors(form: ManualInputForm, error: ValidationFailed) -> None:
    """Show the service's ``((label,), message)`` errors next to the matching inputs."""
    ids = dict(zip(form.labels, form.field_ids, strict=True))
    for location, message in error.errors:
        label = location[0] if location else None
        if label in ids:
            field = form[field_name(ids[label])]
            text = message.removeprefix(f"{label}: ")
            field.errors = [*field.errors, text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")]
        else:
            form.form_errors.append(message)
    if not error.errors:
        form.form_errors.append(str(error))
