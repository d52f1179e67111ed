"""The settings form, built per role from the kinds offered to it, and the unsubscribe confirmation."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, SubmitField
from wtforms.validators import InputRequired

from portal.models import DeliveryMode
from portal.notifications.kinds import Kind

MODE_LABELS = {
    DeliveryMode.IMMEDIATE: "Immediately",
    DeliveryMode.DIGEST: "In the daily digest",
    DeliveryMode.OFF: "Off",
}


def settings_form(kinds: list[Kind]) -> type[FlaskForm]:
    """A fresh form class with one choice per kind (never a shared class: fields would leak)."""

    class SettingsForm(FlaskForm):
        pass

    for kind in kinds:
        choices = [SelectChoice(mode.value, MODE_LABELS[mode]) for mode in kind.modes]
        setattr(
            SettingsForm,
            kind.name,
            RadioField(kind.label, choices=choices, description=kind.help, validators=[InputRequired()]),
        )
    SettingsForm.submit = SubmitField("Save settings")
    return SettingsForm


class UnsubscribeForm(FlaskForm):
    submit = SubmitField("Turn these emails off")
