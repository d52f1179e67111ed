"""Writing to a storage destination: where it writes, a test write, and exporting a completed request's
package (audited; the bytes of the JSON or the ZIP download, streamed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from portal.crypto import DecryptionError, require_decrypted
from portal.execution import destinations
from portal.execution.destinations import DestinationError, S3Target, Written
from portal.models import StorageConfig, utcnow
from portal.models.audit import Actor, record
from portal.models.storage import StorageFormat, StorageType
from portal.services import DomainError, ValidationFailed, privacy_requests, reports
from portal.services.storage import (
    CONTENT_TYPES,
    EXTENSIONS,
    FILENAME,
    local_directory,
    local_root,
    uses_secret_keys,
)


class StorageWriteFailed(DomainError):
    """A package could not be written to a destination; the message names it, never a secret."""


@dataclass(frozen=True)
class StorageTest:
    succeeded: bool
    message: str


# --- where a destination writes -----------------------------------------------------------------------


def describe(config: StorageConfig) -> str:
    """Where the destination writes, for people (no secret)."""
    if config.type == StorageType.LOCAL:
        return str(
            local_root() / config.details["directory"] if "directory" in config.details else local_root()
        )
    where = f"s3://{config.details['bucket']}"
    if config.details.get("endpoint_url"):
        where += f" at {config.details['endpoint_url']}"
    return where


def filename(config: StorageConfig, request_id: str) -> str:
    """``<request id>.json`` or ``.zip`` (the naming ``request_id``); never a path."""
    if not isinstance(request_id, str) or not FILENAME.match(request_id) or not request_id.strip("."):
        raise ValidationFailed(f"'{request_id}' cannot name a file: it is not a request id.")
    return f"{request_id}.{EXTENSIONS[StorageFormat(config.format)]}"


def _s3_target(config: StorageConfig) -> S3Target:
    details = config.details
    keys: dict[str, Any] = {}
    if uses_secret_keys(config):
        if config.secrets is None:
            raise StorageWriteFailed(
                f"Storage config '{config.key}' has no secrets yet: save its aws_access_key_id and "
                "aws_secret_access_key first."
            )
        try:
            secrets = require_decrypted(config.secrets)
        except DecryptionError:
            raise StorageWriteFailed(
                f"The secrets of storage config '{config.key}' cannot be decrypted with the configured "
                "encryption keys; save them again."
            ) from None
        keys = {
            "access_key_id": secrets["aws_access_key_id"],
            "secret_access_key": secrets["aws_secret_access_key"],
        }
    return S3Target(
        bucket=details["bucket"],
        region_name=details.get("region_name"),
        endpoint_url=details.get("endpoint_url"),
        max_retries=details.get("max_retries", 0),
        **keys,
    )


def _writer(config: StorageConfig) -> Callable[[str, Iterable[bytes]], Written]:
    """A function writing one file to this destination, checked before any package is read."""
    if config.type == StorageType.LOCAL:
        try:
            directory = local_directory(config.details.get("directory"))
        except ValidationFailed as exc:
            raise StorageWriteFailed(f"Storage config '{config.key}' cannot be used: {exc}") from None
        return lambda name, pieces: destinations.write_local(directory, name, pieces)
    target = _s3_target(config)
    content_type = CONTENT_TYPES[StorageFormat(config.format)]
    return lambda name, pieces: destinations.write_s3(target, name, pieces, content_type)


def write_package(config: StorageConfig, request_id: str, pieces: Iterable[bytes]) -> Written:
    """Stream ``pieces`` (a package export) to the destination as ``filename(config, request_id)``.

    Reads no database and records nothing: ``export_package`` is the audited door.
    """
    name = filename(config, request_id)
    write = _writer(config)
    try:
        return write(name, pieces)
    except DestinationError as exc:
        raise StorageWriteFailed(f"Could not write the package to storage '{config.key}': {exc}") from None


def test_storage(config: StorageConfig, actor: Actor) -> StorageTest:
    """Write and delete a small probe file or object, as a package would be written; audited."""
    try:
        if config.type == StorageType.LOCAL:
            message = destinations.probe_local(local_directory(config.details.get("directory")))
        else:
            message = destinations.probe_s3(_s3_target(config))
        result = StorageTest(True, message)
    except (ValidationFailed, StorageWriteFailed, DestinationError) as exc:
        result = StorageTest(False, str(exc))
    record(actor, "storage.tested", storage_key=config.key, succeeded=result.succeeded)
    return result


def export_package(privacy_request, config: StorageConfig, actor: Actor, *, before_write: Callable[[], None]):
    """Write a completed request's package to the destination; returns ``Written``.

    The package is opened and its reading audited (``package.exported``), then ``before_write`` — the
    caller's commit — ends that transaction, as downloads commit before their first byte, so a long
    upload holds no transaction; the package is then read chunk by chunk as it is written. The outcome is
    recorded afterwards (``storage.package_written``, or ``storage.write_failed`` with the reason before
    ``StorageWriteFailed`` is raised) for the caller to commit in both cases.
    """
    key, response_format, request_id = config.key, config.format, privacy_request.id
    name = filename(config, request_id)
    write = _writer(config)  # a destination that cannot be used fails before the package is read
    meta = reports.ReportMeta(
        request_id=request_id,
        policy=privacy_request.policy.name,
        completed_at=privacy_request.finished_processing_at,
        generated_at=utcnow(),
    )
    package = privacy_requests.get_package(
        privacy_request, actor, action="package.exported", storage_key=key, format=response_format
    )
    meta = dataclasses.replace(
        meta, names=privacy_requests.package_names([summary.key for summary in package.keys])
    )
    if response_format == StorageFormat.CSV:
        pieces = reports.iter_package_zip(package, meta)
    else:
        pieces = reports.iter_package_json(package)
    before_write()
    try:
        written = write(name, pieces)
    except DestinationError as exc:
        message = f"Could not write the package to storage '{key}': {exc}"
        record(actor, "storage.write_failed", privacy_request_id=request_id, storage_key=key, reason=message)
        raise StorageWriteFailed(message) from None
    record(
        actor,
        "storage.package_written",
        privacy_request_id=request_id,
        storage_key=key,
        location=written.location,
        size=written.size,
        sha256=written.sha256,
    )
    return written
