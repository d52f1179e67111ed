from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.scopes import ALL_SCOPES


class CheckboxListField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class NewTokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=200)],
        description="What the token is for, e.g. “ticketing integration”.",
    )
    user_id = SelectField("Acts as user", coerce=int, validators=[DataRequired()])
    scopes = CheckboxListField(
        "Limit to scopes",
        choices=[SelectChoice(s, s) for s in ALL_SCOPES],
        validators=[Optional()],
        description="Leave all unticked for every scope of the user's role. Ticked scopes outside the role "
        "are never granted.",
    )
    expires_on = DateField("Expires on", validators=[Optional()], description="Optional (UTC midnight).")
    submit = SubmitField("Create token")
