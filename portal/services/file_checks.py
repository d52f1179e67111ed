"""Checking an uploaded file while it streams past: its size, its type detected from the content, the
allow-list, and that its name's extension matches what it is (``portal.services.attachments`` stores it).

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
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass

import filetype
from flask import current_app

from portal.services import ValidationFailed

MB = 1024 * 1024
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


def refuse(label: str, file_name: str, reason: str) -> Refused:
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


class FileCheck:
    """What is learnt about a file while it streams past: size, hash, type."""

    def __init__(self, label: str, file_name: str, limits: Limits, budget: int):
        self.label, self.file_name, self.limits, self.budget = label, file_name, limits, budget
        self.size = 0
        self.hash = hashlib.sha256()
        self.kind: str | None = None  # a TYPES name once known; "text" until the end for unknown content
        self._text = codecs.getincrementaldecoder("utf-8")("strict")

    def refuse(self, reason: str) -> Refused:
        return refuse(self.label, self.file_name, reason)

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
