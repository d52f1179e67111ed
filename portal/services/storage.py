"""Storage destinations (fidesops' ``StorageConfig``): their rules, create, update, secrets, delete. Writing
to one (test, export) is ``services.storage_export``. The admin pages, the JSON API and the CLI all call
these functions.

Decisions:
- Types ``local`` and ``s3``. fidesops' other types (``gcs``, ``onetrust``...) are refused by name.
- ``format`` ``json`` writes the package JSON (the bytes of the JSON download) as ``<request id>.json``;
  ``csv`` writes the ZIP download (one CSV per system, the JSON and the HTML report) as
  ``<request id>.zip``, as fidesops zips its CSV files. Both formats for both types.
- ``local`` writes into ``details.directory``, which must already exist, be writable, and lie inside
  ``STORAGE_LOCAL_ROOT`` (default ``<instance>/exports``; symbolic links resolved): an admin cannot point
  packages at the static folder, which is served to anyone, or anywhere else the operator did not choose.
  Without a directory, the root itself is used, so fidesops' ``{"naming": "request_id"}`` works as is.
- ``s3`` uses ``details.bucket``; ``auth_method`` ``secret_keys`` (default) takes the keys saved with
  ``set_secrets``, ``automatic`` the server's own AWS credential chain. ``endpoint_url`` and
  ``region_name`` (ours) reach S3-compatible servers; ``object_name`` (fidesops 1.x) is kept but unused,
  as in fidesops.
- Secrets are encrypted at rest and never returned, logged or audited (audit events list their names).
- Nothing here deletes what a destination holds: files written there are outside the portal's retention.

Over 400 lines because each destination type's details (local directory, S3) are validated here with
fidesops' messages; writing to a destination is ``services.storage_export``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Policy, PolicyRule, StorageConfig, utcnow
from portal.models.audit import Actor, record
from portal.models.storage import STORAGE_FORMATS, STORAGE_TYPES, StorageFormat, StorageType
from portal.services import (
    Conflict,
    InvalidState,
    NotFound,
    ValidationFailed,
    keys,
    text_problem,
)

MODEL = "StorageConfig"
UNSUPPORTED_TYPES = ("gcs", "transcend", "ethyca", "onetrust")  # fidesops' other destinations
NAMING = "request_id"
AUTH_METHODS = ("secret_keys", "automatic")
MAX_RETRIES = 10
MAX_DETAIL_LENGTH = 1000
MAX_SECRET_LENGTH = 2000
DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    StorageType.LOCAL: ("naming", "directory"),
    StorageType.S3: (
        "naming",
        "bucket",
        "auth_method",
        "max_retries",
        "region_name",
        "endpoint_url",
        "object_name",
    ),
}
S3_SECRET_KEYS = ("aws_access_key_id", "aws_secret_access_key")
CONTENT_TYPES = {StorageFormat.JSON: "application/json", StorageFormat.CSV: "application/zip"}
EXTENSIONS = {StorageFormat.JSON: "json", StorageFormat.CSV: "zip"}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")
FILENAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_UNSET = object()


class DuplicateKey(Conflict):
    """Another storage config already has this key."""


class DuplicateName(Conflict):
    """Another storage config already has this name."""


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [((field,), message)])


def _text(value: Any, field: str, label: str, *, max_length: int = MAX_DETAIL_LENGTH) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"{label} must be text.")
    problem = text_problem(value)
    if problem:
        raise _fail(field, f"{label} {problem}.")
    value = value.strip()
    if len(value) > max_length:
        raise _fail(field, f"{label} must be at most {max_length} characters long.")
    return value


# --- the rules for types, formats and details ---------------------------------------------------------


def clean_type(storage_type: Any) -> str:
    if storage_type in STORAGE_TYPES:
        return storage_type
    choose = "choose 'local' (a directory on this server) or 's3'"
    if storage_type in UNSUPPORTED_TYPES:
        raise _fail("type", f"Storage type '{storage_type}' is not supported by this portal: {choose}.")
    raise _fail("type", f"Unknown storage type '{storage_type}': {choose}.")


def clean_format(response_format: Any) -> str:
    if response_format is None:
        return StorageFormat.JSON.value
    if response_format not in STORAGE_FORMATS:
        raise _fail(
            "format",
            f"Unknown format '{response_format}': choose 'json' (the package JSON) or 'csv' (a ZIP of CSV "
            "files, with the JSON and the HTML report).",
        )
    return response_format


def local_root() -> Path:
    """The folder every local destination must lie in (``STORAGE_LOCAL_ROOT``; ``<instance>/exports``)."""
    configured = current_app.config.get("STORAGE_LOCAL_ROOT")
    return Path(configured or Path(current_app.instance_path) / "exports")


def local_directory(directory: str | None) -> Path:
    """The resolved directory of a local destination, or ValidationFailed saying why it cannot be used."""
    root = local_root()
    path = root / directory if directory else root
    resolved, resolved_root = path.resolve(), root.resolve()
    if not resolved.is_relative_to(resolved_root):
        raise _fail(
            "directory",
            f"The directory {path} is outside {root}, the folder local destinations must be in "
            "(the operator sets it with PORTAL_STORAGE_LOCAL_ROOT).",
        )
    if not resolved.is_dir():
        raise _fail(
            "directory",
            f"The directory {resolved} does not exist: create it first (owned by the portal's user, mode 700).",
        )
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise _fail("directory", f"The portal's user may not write to the directory {resolved}.")
    return resolved


def _clean_endpoint(value: Any) -> str:
    url = _text(value, "details.endpoint_url", "The endpoint URL", max_length=500)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("details.endpoint_url", "The endpoint URL must be an http:// or https:// address.")
    if parts.username or parts.password:
        raise _fail(
            "details.endpoint_url",
            "The endpoint URL must not hold credentials: save the keys as the destination's secrets.",
        )
    return url


def _an(storage_type: str) -> str:
    return f"an {storage_type}" if storage_type == StorageType.S3 else f"a {storage_type}"


def clean_details(storage_type: str, details: Any) -> dict[str, Any]:
    """The details of a destination of this type, with their defaults; unknown keys are refused."""
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise _fail("details", "details must be an object.")
    allowed = DETAIL_KEYS[storage_type]
    unknown = sorted(str(k) for k in details if k not in allowed)
    if unknown:
        raise _fail(
            f"details.{unknown[0]}",
            f"Unknown detail{'s' if len(unknown) > 1 else ''} for {_an(storage_type)} destination: "
            f"{', '.join(unknown)}. It takes: {', '.join(allowed)}.",
        )
    naming = details.get("naming") or NAMING
    if naming != NAMING:
        raise _fail(
            "details.naming",
            f"File naming of {naming} not supported: use 'request_id' (files are named <request id>.json "
            "or <request id>.zip).",
        )
    cleaned: dict[str, Any] = {"naming": NAMING}
    if storage_type == StorageType.LOCAL:
        directory = details.get("directory")
        directory = _text(directory, "details.directory", "The directory") if directory is not None else ""
        local_directory(directory)
        if directory:
            cleaned["directory"] = directory
        return cleaned
    bucket = details.get("bucket")
    bucket = _text(bucket, "details.bucket", "The bucket") if bucket is not None else ""
    if not bucket:
        raise _fail("details.bucket", "A bucket is required for an s3 destination.")
    if not _BUCKET.match(bucket):
        raise _fail(
            "details.bucket",
            f"Invalid bucket name '{bucket}': 3 to 63 lower-case letters, digits, '.' and '-', starting and "
            "ending with a letter or digit.",
        )
    cleaned["bucket"] = bucket
    auth_method = details.get("auth_method") or "secret_keys"
    if auth_method not in AUTH_METHODS:
        raise _fail(
            "details.auth_method",
            f"Unknown auth_method '{auth_method}': choose 'secret_keys' (the keys saved as secrets) or "
            "'automatic' (the server's own AWS credentials: instance role or environment).",
        )
    cleaned["auth_method"] = auth_method
    retries = details.get("max_retries", 0)
    if retries is None:
        retries = 0
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise _fail("details.max_retries", f"max_retries must be a whole number from 0 to {MAX_RETRIES}.")
    cleaned["max_retries"] = retries
    if details.get("region_name"):
        region = _text(details["region_name"], "details.region_name", "The region")
        if not _REGION.match(region):
            raise _fail("details.region_name", f"Invalid region '{region}', e.g. eu-west-1.")
        cleaned["region_name"] = region
    if details.get("endpoint_url"):
        cleaned["endpoint_url"] = _clean_endpoint(details["endpoint_url"])
    if details.get("object_name"):
        cleaned["object_name"] = _text(details["object_name"], "details.object_name", "The object name")
    return cleaned


# --- create, read, update, delete -------------------------------------------------------------------


def get_storage_config(key: str) -> StorageConfig:
    config = None
    if isinstance(key, str) and not text_problem(key):
        config = db.session.scalar(select(StorageConfig).where(StorageConfig.key == key))
    if config is None:
        raise NotFound(f"No storage configuration with key {key}.")
    return config


def list_storage_configs(page: int = 1, size: int = 50) -> tuple[list[StorageConfig], int]:
    """Newest first, as fidesops lists them."""
    total = db.session.scalar(select(func.count()).select_from(StorageConfig))
    if (page - 1) * size >= total:
        return [], total
    items = db.session.scalars(
        select(StorageConfig)
        .order_by(StorageConfig.created_at.desc(), StorageConfig.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    return list(items), total


def _taken(column, value, except_id: int | None = None) -> bool:
    query = select(StorageConfig.id).where(column == value)
    if except_id is not None:
        query = query.where(StorageConfig.id != except_id)
    return db.session.scalar(query) is not None


def _flush_unique(key: str, name: str) -> None:
    """Flush in a savepoint: a concurrent insert that won the race still gets the friendly message."""
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        detail = str(exc.orig)
        if "storage_configs_name" in detail or "storage_configs.name" in detail:
            raise DuplicateName(
                keys.duplicate_name_message(name, MODEL),
                words=keys.duplicate_name_words(name, MODEL),
            ) from exc
        raise DuplicateKey(
            keys.duplicate_key_message(key, MODEL),
            words=keys.duplicate_key_words(key, MODEL),
        ) from exc


def create_storage_config(
    *,
    name: str,
    storage_type: str,
    actor: Actor,
    key: str | None = None,
    details: Any = None,
    response_format: str | None = None,
) -> StorageConfig:
    """A new destination; a blank key is generated from the name, as for connections."""
    name = keys.clean_name(name)
    key = keys.key_or_generated(key, name)
    storage_type = clean_type(storage_type)
    response_format = clean_format(response_format)
    details = clean_details(storage_type, details)
    if _taken(StorageConfig.key, key):
        raise DuplicateKey(
            keys.duplicate_key_message(key, MODEL),
            words=keys.duplicate_key_words(key, MODEL),
        )
    if _taken(StorageConfig.name, name):
        raise DuplicateName(
            keys.duplicate_name_message(name, MODEL),
            words=keys.duplicate_name_words(name, MODEL),
        )
    config = StorageConfig(key=key, name=name, type=storage_type, format=response_format, details=details)
    db.session.add(config)
    _flush_unique(key, name)
    record(actor, "storage.created", storage_key=key, name=name, type=storage_type, format=response_format)
    return config


def update_storage_config(
    config: StorageConfig,
    *,
    actor: Actor,
    name=_UNSET,
    storage_type=_UNSET,
    details=_UNSET,
    response_format=_UNSET,
) -> StorageConfig:
    """Change what is given (``details`` replaced whole, as fidesops does). The key and type never change:
    a destination of another type is a new destination, and the secrets belong to this one."""
    if storage_type is not _UNSET and storage_type != config.type:
        clean_type(storage_type)
        raise _fail(
            "type",
            f"Cannot change the type of '{config.key}' from {config.type} to {storage_type}; create a new "
            "storage config instead.",
        )
    changed: list[str] = []
    if name is not _UNSET:
        name = keys.clean_name(name)
        if name != config.name:
            if _taken(StorageConfig.name, name, except_id=config.id):
                raise DuplicateName(
                    keys.duplicate_name_message(name, MODEL),
                    words=keys.duplicate_name_words(name, MODEL),
                )
            config.name = name
            changed.append("name")
    if response_format is not _UNSET:
        response_format = clean_format(response_format)
        if response_format != config.format:
            config.format = response_format
            changed.append("format")
    if details is not _UNSET:
        details = clean_details(config.type, details)
        if details != config.details:
            config.details = details
            changed.append("details")
    if changed:
        _flush_unique(config.key, config.name)
        record(actor, "storage.changed", storage_key=config.key, changed=changed)
    return config


def delete_storage_config(config: StorageConfig, actor: Actor) -> None:
    """Delete the destination and its secrets; what it holds stays where it is. Refused while a policy's
    rule writes to it: requests under that policy would have nowhere to go."""
    rules = db.session.execute(
        select(PolicyRule.key, Policy.key)
        .join(Policy, Policy.id == PolicyRule.policy_id)
        .where(PolicyRule.storage_config_id == config.id)
        .order_by(PolicyRule.key)
    ).all()
    if rules:
        named = ", ".join(f"{rule} (policy {policy})" for rule, policy in rules)
        why = f"the rules {named} write to it. " if len(rules) > 1 else f"the rule {named} writes to it. "
        then = "Point the policy's rules at another destination, or delete them, first."
        raise InvalidState(
            f"StorageConfig {config.key} cannot be deleted: {why}{then}",
            words=f"The storage destination “{config.name}” cannot be deleted: {why}{then}",
        )
    details = {"storage_key": config.key, "name": config.name, "type": config.type}
    db.session.delete(config)
    db.session.flush()
    record(actor, "storage.deleted", **details)


# --- secrets ----------------------------------------------------------------------------------------


def has_secrets(config: StorageConfig) -> bool:
    return config.secrets is not None


def uses_secret_keys(config: StorageConfig) -> bool:
    return config.type == StorageType.S3 and config.details.get("auth_method", "secret_keys") == "secret_keys"


def set_secrets(config: StorageConfig, values: Any, actor: Actor) -> None:
    """Replace the AWS keys (encrypted at rest). The audit event names the keys, never their values."""
    if config.type == StorageType.LOCAL:
        raise InvalidState(
            f"Storage config '{config.key}' is of type local: it writes to a directory on this server and "
            "takes no secrets."
        )
    if not uses_secret_keys(config):
        raise InvalidState(
            f"Storage config '{config.key}' uses auth_method 'automatic' (the server's own AWS "
            "credentials) and takes no secrets; set auth_method to 'secret_keys' first."
        )
    if not isinstance(values, dict):
        raise _fail("secrets", "The secrets must be an object.")
    unknown = sorted(str(k) for k in values if k not in S3_SECRET_KEYS)
    if unknown:
        raise _fail(
            unknown[0],
            f"Unknown secret{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. An s3 destination "
            f"takes: {', '.join(S3_SECRET_KEYS)}.",
        )
    secrets: dict[str, str] = {}
    for name in S3_SECRET_KEYS:
        value = values.get(name)
        value = _text(value, name, name, max_length=MAX_SECRET_LENGTH) if value is not None else ""
        if not value:
            raise _fail(name, f"{name} is required.")
        secrets[name] = value
    config.secrets = secrets
    config.updated_at = utcnow()
    db.session.flush()
    record(actor, "storage.secrets_changed", storage_key=config.key, keys=sorted(secrets))
