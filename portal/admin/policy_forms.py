"""Forms of the admin's policy pages."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from portal.services.policies import MAX_DAYS, PRESETS

PRESET_CHOICES = [SelectChoice("", "None: type the timeframe")] + [
    SelectChoice(key, text) for key, (_, text) in PRESETS.items()
]


class PolicyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    preset = SelectField(
        "Preset",
        choices=PRESET_CHOICES,
        validators=[Optional()],
        description="A preset sets the timeframe below (GDPR 30 days, CCPA 45 days).",
    )
    days_to_respond = IntegerField(
        "Timeframe in days",
        validators=[Optional(), NumberRange(min=1, max=MAX_DAYS)],
        description="Days from the request's creation to its due date; applies to requests created from now on.",
    )
    submit = SubmitField("Save policy")

    def days(self) -> int | None:
        if self.preset.data:
            return PRESETS[self.preset.data][0]
        return self.days_to_respond.data


class NewPolicyForm(PolicyForm):
    key = StringField(
        "Key",
        validators=[
            DataRequired(),
            Length(max=200),
            Regexp(r"^[A-Za-z0-9_.-]+$", message="Letters, digits, _ . - only."),
        ],
        description="What the API names it (policy_key); it cannot be changed later.",
    )
