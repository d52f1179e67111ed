"""Writing a package to a storage destination (a local directory or S3). Plain values in, no database.

A writer takes the package as an iterator of byte pieces and holds at most one piece (local) or one
multipart part (S3, ``PART_BYTES``) of it in memory, however large the package. A failure raises
``DestinationError``, whose message names the destination but never a secret, and leaves nothing behind:
a local temporary file is removed; an S3 multipart upload is aborted (s3transfer does it on failure).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROBE_BODY = b"Manual Webhook Portal storage test: this object is deleted right after it is written.\n"
# S3's smallest part (except the last): memory per upload stays near this, and a package may reach
# 10,000 parts, about 48 GiB.
PART_BYTES = 5 * 1024 * 1024
S3_CONNECT_TIMEOUT_SECONDS = 10
S3_READ_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Written:
    """Where a package went, its size in bytes and the SHA-256 of what was written (hex)."""

    location: str
    size: int
    sha256: str


class DestinationError(Exception):
    """The destination refused the write or could not be reached; the message is safe to show and store."""


class _Tally:
    """Counts and hashes the pieces as they pass, so the result describes exactly what was written."""

    def __init__(self):
        self.size = 0
        self._digest = hashlib.sha256()

    def add(self, piece: bytes) -> bytes:
        self.size += len(piece)
        self._digest.update(piece)
        return piece

    def written(self, location: str) -> Written:
        return Written(location, self.size, self._digest.hexdigest())


# --- a local directory ------------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a crash right after it must not bring the old name back)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_local(directory: Path, filename: str, pieces: Iterable[bytes]) -> Written:
    """``directory/filename``, replaced atomically: written to a hidden temporary file (mode 0600) in the
    same directory, synced, then renamed over the name. Readers see the old file or the whole new one."""
    tally = _Tally()
    target = directory / filename
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
    except OSError as exc:
        raise DestinationError(
            f"Could not write to {directory}: {exc.strerror or type(exc).__name__}."
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # mkstemp's mode already; said outright, whatever the umask
            for piece in pieces:
                file.write(tally.add(piece))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        _fsync_directory(directory)
    except OSError as exc:
        _remove(temporary)
        raise DestinationError(f"Could not write {target}: {exc.strerror or type(exc).__name__}.") from None
    except BaseException:
        _remove(temporary)  # the package stream failed (changed, undecryptable): no partial file stays
        raise
    return tally.written(str(target))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def probe_local(directory: Path) -> str:
    """Write and remove a small file, as a package would be written; the message says what happened."""
    name = f".portal-probe-{secrets.token_hex(8)}"
    write_local(directory, name, [PROBE_BODY])
    try:
        os.unlink(directory / name)
    except OSError as exc:
        raise DestinationError(
            f"Wrote a test file in {directory} but could not remove it ({exc.strerror}): remove {name} by hand."
        ) from None
    return f"Wrote and removed a test file in {directory}."


# --- S3 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Target:
    """A bucket and how to reach it. Without keys, boto3's default credential chain is used (instance
    role, environment, ~/.aws): the ``automatic`` auth method."""

    bucket: str
    region_name: str | None = None
    endpoint_url: str | None = None
    max_retries: int = 0
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def masked(self, text: str) -> str:
        """``text`` without the keys, should a library ever echo them."""
        for secret in (self.access_key_id, self.secret_access_key):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class _PieceReader:
    """The pieces as a read-only, non-seekable file: ``read(n)`` returns n bytes until the end."""

    def __init__(self, pieces: Iterable[bytes], tally: _Tally):
        self._pieces: Iterator[bytes] = iter(pieces)
        self._tally = tally
        self._left = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._left:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._left = memoryview(self._tally.add(piece))
                continue
            take = len(self._left) if size < 0 else min(size - len(out), len(self._left))
            out += self._left[:take]
            self._left = self._left[take:]
        return bytes(out)


def _client(target: S3Target):
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": target.max_retries + 1, "mode": "standard"},
        connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
        read_timeout=S3_READ_TIMEOUT_SECONDS,
        # S3-compatible servers (MinIO, moto, Ceph) expect the bucket in the path, not the host name.
        s3={"addressing_style": "path"} if target.endpoint_url else None,
    )
    # A session per call: boto3's default session is not safe to share between threads.
    session = boto3.session.Session(
        aws_access_key_id=target.access_key_id,
        aws_secret_access_key=target.secret_access_key,
        region_name=target.region_name,
    )
    return session.client("s3", endpoint_url=target.endpoint_url, config=config)


def _s3_message(exc: Exception, target: S3Target) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    where = f"s3://{target.bucket}" + (f" at {target.endpoint_url}" if target.endpoint_url else "")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        message = (
            "No AWS credentials were found: save an access key id and secret access key, or give the "
            "server an AWS role or environment credentials (auth method 'automatic')."
        )
    elif isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        message = f"Could not connect to S3 for {where}."
    elif isinstance(exc, ReadTimeoutError):
        message = f"S3 did not answer in time for {where}."
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        if code in ("NoSuchBucket", "404", "NotFound"):
            message = f"The bucket '{target.bucket}' does not exist."
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"):
            message = (
                f"S3 refused access to {where} ({code}): check the access key id, the secret access key "
                "and the bucket's permissions."
            )
        else:
            message = f"S3 refused the request for {where}: {code}: {error.get('Message') or 'no message'}."
    else:
        message = f"Writing to {where} failed: {type(exc).__name__}: {exc}."
    return target.masked(message)


def _s3_errors():
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, Boto3Error)


def write_s3(target: S3Target, key: str, pieces: Iterable[bytes], content_type: str) -> Written:
    """Upload as ``key``: one PUT for a package under ``PART_BYTES``, else a multipart upload of parts of
    that size, one part in memory at a time (no threads)."""
    from boto3.s3.transfer import TransferConfig

    tally = _Tally()
    transfer = TransferConfig(
        multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=1, use_threads=False
    )
    try:
        _client(target).upload_fileobj(
            _PieceReader(pieces, tally),
            target.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
            Config=transfer,
        )
    except _s3_errors() as exc:
        raise DestinationError(_s3_message(exc, target)) from None
    return tally.written(target.location(key))


def probe_s3(target: S3Target) -> str:
    """Write and delete a small object: proves the bucket exists and the credentials may write to it."""
    client = _client(target)
    key = f".portal-probe-{secrets.token_hex(8)}"
    try:
        client.put_object(Bucket=target.bucket, Key=key, Body=PROBE_BODY, ContentType="text/plain")
    except _s3_errors() as exc:
        raise DestinationError(_s3_message(exc, target)) from None
    try:
        client.delete_object(Bucket=target.bucket, Key=key)
    except _s3_errors() as exc:
        raise DestinationError(
            f"Wrote a test object to {target.location(key)} but could not delete it: "
            + _s3_message(exc, target)
            + f" Delete {key} by hand."
        ) from None
    where = f" at {target.endpoint_url}" if target.endpoint_url else ""
    return f"Wrote and deleted a test object in s3://{target.bucket}{where}."
