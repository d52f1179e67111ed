"""Forms of the requests blueprint (the manual-input forms are built in ``portal.dynamic_forms``)."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from portal.models.requests import STATUS_VALUES

STATUS_ALL = "all"
DEFAULT_QUEUE_STATUS = "requires_input"
QUEUE_STATUSES = [
    ("requires_input", "Requires input"),
    ("pending", "Pending approval"),
    ("approved", "Approved"),
    ("in_processing", "In processing"),
    ("error", "Error"),
    ("complete", "Complete"),
    ("denied", "Denied"),
    ("canceled", "Canceled"),
    ("paused", "Paused"),
    ("identity_unverified", "Identity unverified"),
    (STATUS_ALL, "All"),
]
assert {value for value, _ in QUEUE_STATUSES} == {*STATUS_VALUES, STATUS_ALL}
STATUS_LABELS = dict(QUEUE_STATUSES)


class NewRequestForm(FlaskForm):
    # Format checks live in the service (normalize_identity), so the API and this form agree.
    email = EmailField(
        "Email address", validators=[Optional(), Length(max=254)], render_kw={"autocomplete": "off"}
    )
    phone_number = StringField(
        "Phone number",
        validators=[Optional(), Length(max=40)],
        description="Digits, optionally starting with + (spaces, dashes and brackets are ignored).",
        render_kw={"type": "tel", "inputmode": "tel", "autocomplete": "off"},
    )
    policy = SelectField("Policy", choices=[])  # choices are set by the view from the database
    external_id = StringField(
        "External id",
        validators=[Optional(), Length(max=200)],
        description="Optional: the id of this request in your ticketing system.",
    )
    submit = SubmitField("Create request")


class QueueFilterForm(FlaskForm):
    """Posted, never sent as GET: the search term may be an email or phone number (no PII in URLs)."""

    status = SelectField(
        "Status",
        choices=[SelectChoice(value, label) for value, label in QUEUE_STATUSES],
        default=DEFAULT_QUEUE_STATUS,
    )
    search = StringField(
        "Search",
        validators=[Optional(), Length(max=254)],
        render_kw={"placeholder": "Request id, external id, email or phone", "autocomplete": "off"},
    )
    # The keyed hash of an identity searched before, kept while only the status changes.
    identity = HiddenField(validators=[Optional(), Regexp(r"^[0-9a-f]{64}$")])
    external = HiddenField(validators=[Optional(), Regexp(r"^[0-9a-f]{64}$")])  # same, for an external id
    submit = SubmitField("Apply")


class ConfirmForm(FlaskForm):
    """A POST with nothing but the CSRF token (reveal, resume, approve, retry)."""


class DenyForm(FlaskForm):
    reason = TextAreaField(
        "Reason for denying",
        validators=[Optional(), Length(max=2000)],
        description="Kept on the request and shown to staff; do not paste personal data.",
        render_kw={"rows": 2},
    )
    submit = SubmitField("Deny")


class CancelForm(FlaskForm):
    reason = TextAreaField(
        "Reason for canceling",
        validators=[Optional(), Length(max=2000)],
        description="For example: withdrawn by the data subject. Kept on the request (encrypted).",
        render_kw={"rows": 2},
    )
    submit = SubmitField("Cancel request")


class NoteForm(FlaskForm):
    body = TextAreaField(
        "Add a note",
        validators=[DataRequired(message="Write the note first."), Length(max=5000)],
        description="Internal, for staff and admins; up to 5,000 characters. Line breaks are kept.",
        render_kw={"rows": 3, "maxlength": 5000},
    )
    submit = SubmitField("Add note")


class ExtendForm(FlaskForm):
    preset = SelectField(
        "Rule",
        choices=[
            SelectChoice("gdpr", "GDPR Art. 12(3): up to two further months, within the first month"),
            SelectChoice("ccpa", "CCPA §7021: once, up to 45 more days"),
            SelectChoice("custom", "Another date"),
        ],
    )
    new_due_date = DateField(
        "New due date",
        validators=[Optional()],
        description="Leave empty to extend as far as the rule allows (needed for “Another date”).",
    )
    reason = TextAreaField(
        "Reason",
        validators=[DataRequired(message="Give the reason."), Length(max=2000)],
        render_kw={"rows": 2},
    )
    subject_told = BooleanField("The data subject has been told of the extension and why")
    submit = SubmitField("Extend deadline")


class AssignForm(FlaskForm):
    user_id = SelectField("Hand to", coerce=int, validate_choice=True)
    submit = SubmitField("Hand over")


class BulkAssignForm(FlaskForm):
    user_id = SelectField("Assign selected to", coerce=int, validate_choice=True)
    submit = SubmitField("Assign selected")
