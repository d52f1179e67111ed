"""Storage destination forms: they parse input; the rules live in services.storage."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.services.keys import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from portal.services.storage import MAX_DETAIL_LENGTH, MAX_RETRIES, MAX_SECRET_LENGTH

TYPE_LABELS = {"local": "Local directory", "s3": "Amazon S3 (or S3-compatible)"}
FORMAT_CHOICES = [
    SelectChoice("json", "JSON — the package as one JSON file (<request id>.json)"),
    SelectChoice("csv", "CSV — a ZIP with one CSV per system, the JSON and the report (<request id>.zip)"),
]
AUTH_CHOICES = [
    SelectChoice("secret_keys", "Access keys saved here (encrypted)"),
    SelectChoice("automatic", "The server's own AWS credentials (instance role or environment)"),
]
LOCAL_FIELDS = ("directory",)
S3_FIELDS = ("bucket", "region_name", "endpoint_url", "auth_method", "max_retries")
NO_AUTOFILL = {"autocomplete": "off", "spellcheck": "false"}


def _detail(label: str, description: str = "") -> StringField:
    return StringField(
        label,
        validators=[Optional(), Length(max=MAX_DETAIL_LENGTH)],
        description=description,
        render_kw=NO_AUTOFILL,
    )


class StorageForm(FlaskForm):
    """Every field of either type; ``for_type`` drops those of the other type (and the key when editing)."""

    name = StringField(
        "Name",
        validators=[DataRequired(message="A name is required."), Length(max=MAX_NAME_LENGTH)],
        description="What admins see, e.g. “Legal archive (S3, EU)”.",
    )
    key = StringField(
        "Key",
        validators=[Optional(), Length(max=MAX_KEY_LENGTH)],
        description="Optional; made from the name when blank. Letters, digits, “_”, “.” and “-”. It cannot "
        "be changed later.",
        render_kw=NO_AUTOFILL,
    )
    format = SelectField("What is written", choices=FORMAT_CHOICES)
    directory = _detail(
        "Directory",
        "A folder that already exists inside the operator's storage folder (PORTAL_STORAGE_LOCAL_ROOT), as a "
        "path relative to it or absolute. Blank: that folder itself.",
    )
    bucket = _detail("Bucket")
    region_name = _detail("Region", "Optional, e.g. eu-west-1.")
    endpoint_url = _detail(
        "Endpoint URL", "Optional: an S3-compatible server (MinIO, Ceph…), e.g. https://s3.example.internal."
    )
    auth_method = SelectField("Credentials", choices=AUTH_CHOICES)
    max_retries = IntegerField(
        "Retries",
        default=0,
        validators=[Optional(), NumberRange(min=0, max=MAX_RETRIES)],
        description=f"How often a failed request to S3 is retried (0 to {MAX_RETRIES}).",
    )
    submit = SubmitField("Save")

    @classmethod
    def for_type(cls, storage_type: str, *, new: bool, **kwargs) -> StorageForm:
        form = cls(**kwargs)
        dropped = S3_FIELDS if storage_type == "local" else LOCAL_FIELDS
        for name in (*dropped, *(() if new else ("key",))):
            delattr(form, name)
        return form

    def details(self) -> dict[str, Any]:
        names = LOCAL_FIELDS if "directory" in self else S3_FIELDS
        values = {name: self[name].data for name in names}
        return {name: value for name, value in values.items() if value not in (None, "")}


class StorageSecretsForm(FlaskForm):
    aws_access_key_id = StringField(
        "Access key id",
        validators=[DataRequired(message="Enter the access key id."), Length(max=MAX_SECRET_LENGTH)],
        render_kw=NO_AUTOFILL,
    )
    aws_secret_access_key = PasswordField(
        "Secret access key",
        validators=[DataRequired(message="Enter the secret access key."), Length(max=MAX_SECRET_LENGTH)],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Save keys")

    def values(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.aws_access_key_id.data,
            "aws_secret_access_key": self.aws_secret_access_key.data,
        }
