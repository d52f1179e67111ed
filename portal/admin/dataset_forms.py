"""Database connection forms: new connection, connection details, dataset upload. Rules live in services."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileSize
from wtforms import PasswordField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.services.connections import MAX_DESCRIPTION_LENGTH
from portal.services.datasets import MAX_TEXT_LENGTH
from portal.services.db_connections import MAX_SECRET_LENGTH, SECRET_KEYS
from portal.services.keys import MAX_KEY_LENGTH, MAX_NAME_LENGTH

DATABASE_LABELS = {
    "postgres": "PostgreSQL",
    "mysql": "MySQL / MariaDB",
    "sqlite": "SQLite (a file on this server)",
}
NO_AUTOFILL = {"autocomplete": "off", "spellcheck": "false"}


class NewDatabaseForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(message="A name is required."), Length(max=MAX_NAME_LENGTH)],
        description="What staff see, e.g. “Shop database (EU)”.",
    )
    key = StringField(
        "Key",
        validators=[Optional(), Length(max=MAX_KEY_LENGTH)],
        description="Optional; made from the name when blank. Letters, digits, “_”, “.” and “-”.",
    )
    connection_type = SelectField(
        "Database type", choices=[SelectChoice(k, v) for k, v in DATABASE_LABELS.items()]
    )
    description = TextAreaField(
        "Description", validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)], render_kw={"rows": 3}
    )
    submit = SubmitField("Create and enter connection details")


def _secret(label: str, description: str = "", **kwargs) -> StringField:
    return StringField(
        label,
        validators=[Optional(), Length(max=MAX_SECRET_LENGTH)],
        description=description,
        render_kw=NO_AUTOFILL,
        **kwargs,
    )


class SecretsForm(FlaskForm):
    """Every possible detail; ``for_type`` drops those a connection type does not take."""

    url = _secret(
        "Connection URL",
        "Either a URL, e.g. postgresql://user:password@host:5432/database, or the fields below. A saved URL "
        "is never shown again, since it may hold the password.",
    )
    host = _secret("Host")
    port = _secret("Port", "Blank for the default (5432 PostgreSQL, 3306 MySQL).")
    dbname = _secret("Database")
    username = _secret("User")
    password = PasswordField(
        "Password",
        validators=[Optional(), Length(max=MAX_SECRET_LENGTH)],
        description="Leave blank to keep the saved password (same host and user).",
        render_kw={"autocomplete": "new-password"},
    )
    db_schema = _secret("Schema", "Optional; the search path's default (public) when blank.")
    path = _secret("Database file", "The absolute path of the SQLite file on this server, opened read-only.")
    submit = SubmitField("Save connection details")

    @classmethod
    def for_type(cls, connection_type: str, **kwargs) -> SecretsForm:
        form = cls(**kwargs)
        for name in ("host", "port", "dbname", "username", "password", "db_schema", "path"):
            if name not in SECRET_KEYS[connection_type]:
                delattr(form, name)
        if connection_type == "sqlite":
            form.url.description = "Either a URL (sqlite:////absolute/path/file.db) or the file path below."
        return form

    def values(self) -> dict[str, str]:
        return {field.name: field.data or "" for field in self if field.name not in ("csrf_token", "submit")}


class DatasetForm(FlaskForm):
    file = FileField(
        "Dataset file",
        validators=[FileSize(max_size=MAX_TEXT_LENGTH, message="The file is larger than 1 MB.")],
        description="A fides dataset YAML file (dataset: [...]).",
    )
    text = TextAreaField(
        "…or paste the YAML",
        validators=[Length(max=MAX_TEXT_LENGTH)],
        render_kw={"rows": 16, "spellcheck": "false", "class": "font-monospace"},
        description="Datasets with a fides_key already saved here are replaced; others are added.",
    )
    submit = SubmitField("Validate and save")

    def validate_text(self, field) -> None:
        if not (field.data or "").strip() and not self.file.data:
            raise ValidationError("Choose a file or paste a dataset.")


class ConfirmForm(FlaskForm):
    """No fields: a POST button's CSRF check."""
