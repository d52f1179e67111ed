"""Forms of the package page: approve, send back (systems and a reason), and the subject's link."""

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal.services.delivery import MAX_REASON_LENGTH


class ApproveForm(FlaskForm):
    submit = SubmitField("Approve and deliver")


class SendBackForm(FlaskForm):
    systems = SelectMultipleField(
        "Systems whose entries are wrong",
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=True,
    )
    reason = TextAreaField(
        "What is wrong",
        validators=[
            DataRequired("Say what is wrong, for the staff who check it again."),
            Length(max=MAX_REASON_LENGTH),
        ],
        render_kw={"rows": 3},
    )
    submit = SubmitField("Send back")


class LinkForm(FlaskForm):
    """Re-send, revoke or retry: a button, with CSRF."""

    submit = SubmitField()
