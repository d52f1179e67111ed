"""Attachments (the ``file`` field type): checking uploaded files, storing them, reading them back.

Rules, in the order a file meets them (the first it breaks refuses it, naming the file and the reason; the
save that brought it stores nothing, since it all happens in the save's transaction):
- not empty; at most ``MAX_ATTACHMENT_MB`` (default 25 MB) per file, and at most ``MAX_ENTRY_ATTACHMENT_MB``
  (default 4 × the per-file limit) for all files of one entry, kept ones included; at most
  ``MAX_ATTACHMENTS_PER_ENTRY`` files (default 20) per entry;
- the type is what the content is, detected by ``filetype`` from the first bytes; content ``filetype``
  does not know is plain text when it is strict UTF-8 without NUL bytes (CSV when named ``.csv``);
- the type must be on the allow-list ``ATTACHMENT_TYPES`` (names of ``TYPES``; admins set it in the
  configuration — ``PORTAL_ATTACHMENT_TYPES=pdf,png,csv`` — like every other operational limit, rather
  than on a page: it is a security decision taken once per installation);
- the name's extension must be one of that type's (a PDF named ``.png``, an HTML page named ``.pdf`` or a
  name without an extension are refused), so what the subject opens is what its name says.

Files are read in pieces of ``ATTACHMENT_CHUNK_BYTES`` (1 MiB), hashed, checked and stored encrypted piece
by piece as they arrive: memory never holds more than about one piece, whatever the file's size.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import filetype
import sqlalchemy as sa
from flask import current_app

from portal.crypto import keyring, require_decrypted
from portal.extensions import db, run
from portal.models import Attachment, AttachmentChunk, utcnow
from portal.models.attachments import ATTACHMENT_CHUNK_BYTES
from portal.models.audit import Actor, record
from portal.services import NotFound, ValidationFailed

MB = 1024 * 1024
ID_PATTERN = re.compile(r"^att_[0-9a-f]{32}$")
# Type name (what ATTACHMENT_TYPES lists) → (MIME type, the extensions a file of it may have).
TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pdf": ("application/pdf", (".pdf",)),
    "png": ("image/png", (".png",)),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg")),
    "gif": ("image/gif", (".gif",)),
    "webp": ("image/webp", (".webp",)),
    "csv": ("text/csv", (".csv",)),
    "txt": ("text/plain", (".txt",)),
    "zip": ("application/zip", (".zip",)),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",)),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",)),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", (".pptx",)),
    "odt": ("application/vnd.oasis.opendocument.text", (".odt",)),
    "ods": ("application/vnd.oasis.opendocument.spreadsheet", (".ods",)),
    "mp3": ("audio/mpeg", (".mp3",)),
    "wav": ("audio/wav", (".wav",)),
    "m4a": ("audio/mp4", (".m4a",)),
    "ogg": ("audio/ogg", (".ogg", ".oga")),
}
DEFAULT_TYPES = ",".join(TYPES)
# What filetype calls a type, where it differs from ours.
_DETECTED = {"jpg": "jpeg"}
# In words, for messages: "its content is a PDF document".
_WORDS = {
    "pdf": "a PDF document",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "csv": "plain text",
    "txt": "plain text",
    "zip": "a ZIP archive",
    "docx": "a Word document",
    "xlsx": "an Excel workbook",
    "pptx": "a PowerPoint presentation",
    "odt": "an OpenDocument text",
    "ods": "an OpenDocument spreadsheet",
    "mp3": "an MP3 recording",
    "wav": "a WAV recording",
    "m4a": "an M4A recording",
    "ogg": "an Ogg recording",
}
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Upload:
    """A file as a door hands it in: its name as the client gave it, and a stream to ``read(n)`` from."""

    file_name: str
    stream: BinaryIO


@dataclass(frozen=True)
class Limits:
    file_bytes: int
    entry_bytes: int
    files: int
    types: tuple[str, ...]


def _positive(name: str, default: int) -> int:
    value = current_app.config.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"PORTAL_{name} must be a whole number, at least 1, not {value!r}.")
    return value


def allowed_types() -> tuple[str, ...]:
    """The allow-list: ``ATTACHMENT_TYPES`` as a comma-separated string or a list of ``TYPES`` names."""
    value = current_app.config.get("ATTACHMENT_TYPES") or DEFAULT_TYPES
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(name).strip().lower() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in TYPES]
    if unknown:
        raise ValueError(
            f"PORTAL_ATTACHMENT_TYPES names unknown types {', '.join(unknown)}; known: {', '.join(TYPES)}."
        )
    return tuple(dict.fromkeys(names))


def limits() -> Limits:
    per_file = _positive("MAX_ATTACHMENT_MB", 25)
    per_entry = _positive("MAX_ENTRY_ATTACHMENT_MB", 4 * per_file)
    return Limits(per_file * MB, per_entry * MB, _positive("MAX_ATTACHMENTS_PER_ENTRY", 20), allowed_types())


def request_body_limit() -> int:
    """The largest body an upload route reads: every file of an entry, plus 1 MB for the other fields."""
    return limits().entry_bytes + MB


def accept_attribute() -> str:
    """The file input's ``accept``: the allowed extensions (the browser's hint; the server decides)."""
    return ",".join(ext for name in allowed_types() for ext in TYPES[name][1])


def _megabytes(size: int) -> str:
    return f"{size / MB:.0f} MB" if size >= MB else f"{size / 1024:.0f} kB"


class Refused(ValidationFailed):
    """A file was refused: the message names it and says why."""


def _refuse(label: str, file_name: str, reason: str) -> Refused:
    message = f"{label}: the file “{file_name}” was refused: {reason}"
    return Refused(message, [((label,), message)])


def _extension(file_name: str) -> str:
    stem, dot, extension = file_name.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""


def clean_name(raw: str | None) -> str:
    """The file's own name, without any folder a client sent along, control characters or surrounding
    spaces (it is shown, and becomes a name inside the ZIP)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_NAME_LENGTH]


class _Check:
    """What is learnt about a file while it streams past: size, hash, type."""

    def __init__(self, label: str, file_name: str, limits: Limits, budget: int):
        self.label, self.file_name, self.limits, self.budget = label, file_name, limits, budget
        self.size = 0
        self.hash = hashlib.sha256()
        self.kind: str | None = None  # a TYPES name once known; "text" until the end for unknown content
        self._text = codecs.getincrementaldecoder("utf-8")("strict")

    def refuse(self, reason: str) -> Refused:
        return _refuse(self.label, self.file_name, reason)

    def take(self, piece: bytes, first: bool) -> None:
        self.size += len(piece)
        if self.size > self.limits.file_bytes:
            raise self.refuse(f"it is larger than {_megabytes(self.limits.file_bytes)}, the limit per file.")
        if self.size > self.budget:
            raise self.refuse(
                f"the files of this entry would pass {_megabytes(self.limits.entry_bytes)}, the limit per entry."
            )
        self.hash.update(piece)
        if first:
            guessed = filetype.guess(piece[:8192])
            self.kind = _DETECTED.get(guessed.extension, guessed.extension) if guessed else "text"
            if self.kind != "text":
                self._judge()
        if self.kind == "text":
            try:
                self._text.decode(piece)
            except UnicodeDecodeError:
                raise self.refuse("its type could not be recognised.") from None
            if b"\x00" in piece:
                raise self.refuse("its type could not be recognised.")

    def finish(self) -> None:
        if self.size == 0:
            raise self.refuse("it is empty.")
        if self.kind == "text":
            try:
                self._text.decode(b"", final=True)
            except UnicodeDecodeError:
                raise self.refuse("its type could not be recognised.") from None
            self.kind = "csv" if _extension(self.file_name) == ".csv" else "txt"
            self._judge()

    def _judge(self) -> None:
        kind = self.kind
        words = _WORDS.get(kind, f"of the type {kind}")
        if kind not in self.limits.types:
            allowed = ", ".join(self.limits.types)
            raise self.refuse(f"its content is {words}, which is not an allowed type (allowed: {allowed}).")
        extension = _extension(self.file_name)
        if extension not in TYPES[kind][1]:
            said = f"its name ends in {extension}" if extension else "its name has no extension"
            raise self.refuse(
                f"{said} but its content is {words}; name it {' or '.join(TYPES[kind][1])}, or upload the "
                "right file."
            )


def _new_id() -> str:
    return f"att_{secrets.token_hex(16)}"


_INSERT_CHUNK = sa.insert(AttachmentChunk.__table__).values(
    attachment_id=sa.bindparam("attachment_id"),
    seq=sa.bindparam("seq"),
    data=sa.bindparam("data", type_=sa.LargeBinary),  # encrypted here, piece by piece
)


def _read_piece(stream: BinaryIO) -> bytes:
    """Up to one chunk's worth: a stream may hand out less per read than asked for."""
    piece = bytearray()
    while len(piece) < ATTACHMENT_CHUNK_BYTES:
        data = stream.read(ATTACHMENT_CHUNK_BYTES - len(piece))
        if not data:
            break
        piece += data
    return bytes(piece)


def store(
    request_id: str, connection_id: int, label: str, upload: Upload, limits: Limits, budget: int
) -> dict[str, Any]:
    """Check and store one file (in the caller's transaction); its reference, as an entry holds it.

    ``budget``: the bytes the entry still has room for. Raises ``Refused`` naming the file; chunks already
    inserted are undone with the caller's transaction.
    """
    file_name = clean_name(upload.file_name)
    if not file_name:
        raise _refuse(label, "(no name)", "a file needs a name.")
    check = _Check(label, file_name, limits, budget)
    attachment_id = _new_id()
    ring = keyring()
    db.session.add(
        Attachment(
            id=attachment_id,
            privacy_request_id=request_id,
            connection_config_id=connection_id,
            meta={},
            created_at=utcnow(),
        )
    )
    db.session.flush()
    seq = 0
    while piece := _read_piece(upload.stream):
        check.take(piece, first=seq == 0)
        run(_INSERT_CHUNK, {"attachment_id": attachment_id, "seq": seq, "data": ring.encrypt(piece)})
        seq += 1
    check.finish()
    reference = {
        "id": attachment_id,
        "file_name": file_name,
        "type": TYPES[check.kind][0],
        "size": check.size,
        "sha256": check.hash.hexdigest(),
    }
    db.session.get(Attachment, attachment_id).meta = reference
    return reference


def stored_references(values: Any) -> dict[str, dict[str, Any]]:
    """Every file an entry's values refer to, by id (whatever the fields were when it was saved)."""
    found: dict[str, dict[str, Any]] = {}
    if not isinstance(values, dict):
        return found
    for value in values.values():
        for reference in value if isinstance(value, list) else ():
            if isinstance(reference, dict) and ID_PATTERN.match(str(reference.get("id", ""))):
                found[reference["id"]] = reference
    return found


def drop_unreferenced(request_id: str, connection_id: int, keep: Iterable[str]) -> int:
    """Delete the files of (request, connection) that the entry no longer refers to; how many."""
    keep = list(keep)
    query = sa.delete(Attachment).where(
        Attachment.privacy_request_id == request_id, Attachment.connection_config_id == connection_id
    )
    if keep:
        query = query.where(Attachment.id.not_in(keep))
    return db.session.execute(query.execution_options(synchronize_session=False)).rowcount


def missing(request_id: str, connection_id: int, ids: Iterable[str]) -> list[str]:
    """The ``ids`` that are not (any more) files of (request, connection)."""
    ids = list(ids)
    if not ids:
        return []
    present = set(
        db.session.scalars(
            sa.select(Attachment.id).where(
                Attachment.id.in_(ids),
                Attachment.privacy_request_id == request_id,
                Attachment.connection_config_id == connection_id,
            )
        )
    )
    return [i for i in ids if i not in present]


# --- reading -------------------------------------------------------------------------------------------


class AttachmentChanged(RuntimeError):
    """The file was deleted (a save replaced it, or a purge) while it was being read."""


def chunks_of(attachment_id: str) -> list[int]:
    """The file's chunk ids in order, read in the caller's transaction (none: it is not stored)."""
    return list(
        db.session.scalars(
            sa.select(AttachmentChunk.id)
            .where(AttachmentChunk.attachment_id == attachment_id)
            .order_by(AttachmentChunk.seq)
        )
    )


def readers(files: Iterable[dict[str, Any]]) -> list[Iterator[bytes]]:
    """A stream of each file's bytes, for a package's ``attachments``; ``NotFound`` now, before anything
    is sent, when one is no longer stored (an entry saved again after the package was built)."""
    streams = []
    for item in files:
        chunk_ids = chunks_of(item["id"])
        if not chunk_ids:
            raise NotFound(
                "A file of this package is no longer stored: its entry was saved again since the package "
                "was built. The request's next run builds a package with the current files."
            )
        streams.append(iter_bytes(chunk_ids))
    return streams


def packaged_file(package: Any, attachment_id: str) -> dict[str, Any]:
    """The file ``attachment_id`` of an opened package (its summary lists it), or NotFound."""
    for item in package.attachments:
        if item["id"] == attachment_id:
            return item
    raise NotFound("This package has no such file.")


def download_saved(
    request_id: str, connection_id: int, connection_key: str, attachment_id: str, actor: Actor
) -> tuple[dict, Iterator[bytes]]:
    """A file saved on the entry of (request, connection), for staff checking what they uploaded; audited
    like a package's file (the caller commits before the first byte). NotFound for any other file."""
    meta = db.session.scalar(
        sa.select(Attachment.meta).where(
            Attachment.id == attachment_id,
            Attachment.privacy_request_id == request_id,
            Attachment.connection_config_id == connection_id,
        )
    )
    if meta is None:
        raise NotFound("This entry has no such file.")
    item = {**require_decrypted(meta), "key": connection_key, "label": None}
    return item, _audited(request_id, item, actor)


def _audited(request_id: str, item: dict[str, Any], actor: Actor) -> Iterator[bytes]:
    (stream,) = readers([item])
    record(
        actor,
        "attachment.downloaded",
        privacy_request_id=request_id,
        connection_key=item["key"],
        attachment_id=item["id"],
        **({"label": item["label"]} if item.get("label") else {}),
        size=item["size"],
    )
    return stream


def download(request_id: str, package: Any, attachment_id: str, actor: Actor) -> tuple[dict, Iterator[bytes]]:
    """One file of a package, audited (``attachment.downloaded``; the caller commits before the first
    byte): what the package says of it, and its bytes as a stream."""
    item = packaged_file(package, attachment_id)
    return item, _audited(request_id, item, actor)


def iter_bytes(chunk_ids: list[int]) -> Iterator[bytes]:
    """The file's bytes piece by piece, each read on a short connection of its own (a slow download holds
    no connection or transaction between pieces, and memory holds one piece)."""
    ring = keyring()
    table = AttachmentChunk.__table__
    # The stored bytes, decrypted here: a piece that cannot be decrypted stops the stream with an error.
    raw = sa.select(sa.type_coerce(table.c.data, sa.LargeBinary)).where(
        table.c.id == sa.bindparam("chunk_id")
    )
    for chunk_id in chunk_ids:
        with db.engine.connect() as conn:
            stored = conn.execute(raw, {"chunk_id": chunk_id}).scalar()
        if stored is None:
            raise AttachmentChanged("the file was removed while it was being read")
        yield ring.decrypt(bytes(stored))
