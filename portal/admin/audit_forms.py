"""The audit-log filter form: read from the query string (GET), so it has no CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from portal.services.audit_log import AuditFilter

ACTOR_MATCHES = [SelectChoice("contains", "contains"), SelectChoice("exact", "is exactly")]
ANY_ACTION = SelectChoice("", "Any action")


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a search form: it changes nothing

    request_id = StringField("Request id", validators=[Optional(), Length(max=64)])
    actor = StringField(
        "Actor",
        validators=[Optional(), Length(max=300)],
        description="An email, a token name, “system”, or “unknown:…” (a sign-in with no such account).",
    )
    actor_match = SelectField("Actor match", choices=ACTOR_MATCHES, default="contains")
    action = SelectField("Action", choices=[ANY_ACTION], default="")
    date_from = DateField("From (UTC)", validators=[Optional()])
    date_to = DateField("To (UTC, inclusive)", validators=[Optional()])

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.action.choices = [ANY_ACTION, *(SelectChoice(action) for action in actions)]

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            request_id=(self.request_id.data or "").strip() or None,
            actor=(self.actor.data or "").strip() or None,
            actor_exact=self.actor_match.data == "exact",
            action=self.action.data or None,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )
