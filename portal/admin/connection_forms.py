"""Connections admin forms: they parse input; the rules live in the connections and webhooks services."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from portal.dynamic_forms import version_number
from portal.services.connections import MAX_DESCRIPTION_LENGTH
from portal.services.keys import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from portal.services.webhooks import (
    FIELD_TYPES,
    MAX_HELP_TEXT_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_PII_FIELD_LENGTH,
)

TYPE_LABELS = {
    "text": "Text (one line)",
    "textarea": "Text (several lines)",
    "email": "Email address",
    "number": "Number",
    "date": "Date",
    "boolean": "Yes / no",
    "file": "Files (attachments)",
}


class NewConnectionForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(message="A name is required."), Length(max=MAX_NAME_LENGTH)],
        description="What staff see, e.g. “Zendesk (Support) – EU”.",
    )
    key = StringField(
        "Key",
        validators=[Optional(), Length(max=MAX_KEY_LENGTH)],
        description="Optional. Letters, digits, “_”, “.” and “-” (not only dots). Left blank, it is made from the name "
        "(“Zendesk (Support) – EU” → zendesk_support_eu). It names the data in access packages and "
        "cannot be changed later.",
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)],
        description="Optional. Where staff look the data up, whom to ask, anything that helps.",
        render_kw={"rows": 3},
    )
    submit = SubmitField("Create and define fields")


class EditConnectionForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(message="A name is required."), Length(max=MAX_NAME_LENGTH)]
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)],
        render_kw={"rows": 3},
    )
    submit = SubmitField("Save changes")


class ToggleConnectionForm(FlaskForm):
    """Which state the admin asked for, so a double click cannot flip it back."""

    action = HiddenField(validators=[AnyOf(["disable", "enable"])])
    next = HiddenField()


class ConfirmDeleteForm(FlaskForm):
    submit = SubmitField("Delete")


class FieldRowForm(Form):
    """One field definition. No rules here: the service checks the whole list and names the rows."""

    id = HiddenField()  # the field's stable id, round-tripped so a rename or a move keeps it
    pii_field = StringField("PII field", render_kw={"maxlength": MAX_PII_FIELD_LENGTH})
    dsr_package_label = StringField("Package label", render_kw={"maxlength": MAX_LABEL_LENGTH})
    type = SelectField("Type", choices=[SelectChoice(t, TYPE_LABELS[t]) for t in FIELD_TYPES], default="text")
    required = BooleanField("Required")
    help_text = StringField("Help text", render_kw={"maxlength": MAX_HELP_TEXT_LENGTH})
    remove = SubmitField("Remove")
    move_up = SubmitField("Move up")
    move_down = SubmitField("Move down")

    def definition(self) -> dict:
        """The row as the service's plain dict (labels stay dictionary values)."""
        row = {
            "pii_field": self.pii_field.data or "",
            "dsr_package_label": self.dsr_package_label.data or None,
            "type": self.type.data or "text",
            "required": bool(self.required.data),
            "help_text": self.help_text.data or None,
        }
        return {"id": self.id.data, **row} if self.id.data else row


ROW_NUMBER_DIGITS = 6  # rows are numbered from 0; the form limits allow a few hundred


class FieldRows(FieldList):
    """Every posted row (the form limits bound how many), so the service, not a silent cut, refuses a
    list longer than MAX_FIELDS; a row number too long to be one is ignored rather than parsed."""

    @classmethod
    def _extract_indices(cls, prefix, formdata):
        offset = len(prefix) + 1
        for name in formdata:
            if name.startswith(prefix):
                index = name[offset:].split("-", 1)[0]
                if index.isascii() and index.isdigit() and len(index) <= ROW_NUMBER_DIGITS:
                    yield int(index)


class WebhookFieldsForm(FlaskForm):
    """The field editor. Add, Remove and Move re-render the posted rows; only Save writes."""

    fields = FieldRows(FormField(FieldRowForm), min_entries=0)
    version = HiddenField()  # the version the list was loaded at ("0": none saved yet)
    add = SubmitField("Add a field")
    save = SubmitField("Save fields")

    def edited_version(self) -> int | None:
        return version_number(self.version.data)

    def definitions(self) -> list[dict]:
        return [entry.form.definition() for entry in self.fields]

    def row_action(self) -> tuple[str, int] | None:
        """("remove" | "move_up" | "move_down", row index) for the row button that was pressed."""
        for index, entry in enumerate(self.fields):
            for action in ("remove", "move_up", "move_down"):
                if entry.form[action].data:
                    return action, index
        return None
