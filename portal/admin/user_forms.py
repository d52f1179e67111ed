"""Forms of the admin user pages. The password rules live in ``services.users``; these check shape only."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.models import Role

ROLE_CHOICES = [
    SelectChoice(Role.ADMIN.value, "Admin"),
    SelectChoice(Role.STAFF.value, "Staff"),
    SelectChoice(Role.REVIEWER.value, "Reviewer"),
]
ROLE_HELP = (
    "Admin: everything, including connections, users and tokens. Staff: request queues, manual data "
    "entry, resume. Reviewer: view requests and download packages."
)
PASSWORD_MODES = [
    SelectChoice("generate", "Generate one (shown once on the next page)"),
    SelectChoice("set", "Set it myself"),
]


class _PasswordChoice:
    """A "generate / set" choice plus the password field it unlocks."""

    def validate_password(self, field) -> None:
        if self.password_mode.data == "set" and not field.data:
            raise ValidationError("Enter a password, or choose to generate one.")

    @property
    def chosen_password(self) -> str | None:
        """The password typed by the admin, or None when one should be generated."""
        return self.password.data if self.password_mode.data == "set" else None


class NewUserForm(_PasswordChoice, FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.STAFF.value, description=ROLE_HELP)
    password_mode = RadioField("Password", choices=PASSWORD_MODES, default="generate")
    password = PasswordField(
        "Password (when set yourself)",
        validators=[Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
        description="At least 12 characters; not the email; not a common password.",
    )
    must_change_password = BooleanField(
        "Ask for a new password at first sign-in (always on for generated passwords)", default=True
    )
    submit = SubmitField("Create user")


class EditUserForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, description=ROLE_HELP)
    submit = SubmitField("Save changes")


class ResetPasswordForm(_PasswordChoice, FlaskForm):
    password_mode = RadioField("New password", choices=PASSWORD_MODES, default="generate")
    password = PasswordField(
        "New password (when set yourself)",
        validators=[Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
        description="The user must change it at their next sign-in; their open sessions end now.",
    )
    submit = SubmitField("Reset password")


class ConfirmForm(FlaskForm):
    """An empty form: a CSRF-protected confirmation button."""

    submit = SubmitField("Confirm")
