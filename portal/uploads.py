"""Uploaded files while a request is parsed: never on disk in the clear, never whole in memory.

Werkzeug keeps each file part of a ``multipart/form-data`` body in a ``SpooledTemporaryFile`` that moves to
disk, in the clear, past 500 kB. ``PortalRequest._get_file_stream`` gives it an ``EncryptedSpool`` instead:
parts up to ``BLOCK_BYTES`` stay in memory; a larger one is written to an unnamed temporary file in blocks
encrypted with AES-GCM under a key made for that one part and held only in memory, so what reaches the
disk cannot be read by anyone, and is gone when the request ends. The service then reads the part back
block by block (``portal.services.attachments``).

The body limit is 1 MB everywhere (``MAX_CONTENT_LENGTH``) except for ``multipart/form-data`` bodies sent
to routes marked ``accepts_attachments``: there it is what an entry's files may total, plus 1 MB (a JSON
body, read whole into memory, keeps the 1 MB limit). It is decided when the body is first read, which
may be the CSRF check before the view runs.
"""

from __future__ import annotations

import os
import struct
import tempfile
import unicodedata
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Request, Response, current_app, stream_with_context

BLOCK_BYTES = 1024 * 1024
_LENGTH = struct.Struct(">I")


class EncryptedSpool:
    """A write-then-read file for one uploaded part (see the module docstring)."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._buffer = bytearray()
        self._file = None  # the encrypted blocks, once the part outgrows one block
        self._blocks = 0
        self._reading = False
        self._next_block = 0
        self._size = 0

    # Werkzeug writes the part, then seeks to 0; the reader reads.
    def write(self, data: bytes) -> int:
        if self._reading:
            raise OSError("EncryptedSpool is read-only once read")
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= BLOCK_BYTES:
            self._spill(bytes(self._buffer[:BLOCK_BYTES]))
            del self._buffer[:BLOCK_BYTES]
        return len(data)

    def _nonce(self, index: int) -> bytes:
        return index.to_bytes(12, "big")  # one key per part: a counter never repeats under it

    def _spill(self, block: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="portal-upload-")  # noqa: SIM115 - closed in close()
        sealed = self._aead.encrypt(self._nonce(self._blocks), block, None)
        self._file.write(_LENGTH.pack(len(sealed)) + sealed)
        self._blocks += 1

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Rewind (``seek(0)``), or go to the end (``seek(0, SEEK_END)``: a size check) and answer the size."""
        if offset != 0 or whence not in (os.SEEK_SET, os.SEEK_END):
            raise OSError("EncryptedSpool can only be rewound, or sought to its end")
        if not self._reading:
            if self._file is not None and self._buffer:
                self._spill(bytes(self._buffer))
                self._buffer = bytearray()
            self._reading = True
        if whence == os.SEEK_END:
            self._next_block, self._pending = self._blocks, memoryview(b"")
            return self._size
        self._next_block = 0
        self._pending = memoryview(b"") if self._file is not None else memoryview(bytes(self._buffer))
        if self._file is not None:
            self._file.seek(0)
        return 0

    def tell(self) -> int:
        return 0 if self._reading else self._size

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def _load_block(self) -> bool:
        if self._file is None or self._next_block >= self._blocks:
            return False
        (length,) = _LENGTH.unpack(self._file.read(_LENGTH.size))
        sealed = self._file.read(length)
        self._pending = memoryview(self._aead.decrypt(self._nonce(self._next_block), sealed, None))
        self._next_block += 1
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._reading:
            self.seek(0)
        out = bytearray()
        while size < 0 or len(out) < size:
            if not len(self._pending) and not self._load_block():
                break
            take = len(self._pending) if size < 0 else min(size - len(out), len(self._pending))
            out += self._pending[:take]
            self._pending = self._pending[take:]
        return bytes(out)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = bytearray()
        self._pending = memoryview(b"")

    @property
    def closed(self) -> bool:
        return self._file is None and not self._buffer


def accepts_attachments(view):
    """Mark a view as taking file uploads (its body may be as large as an entry's files)."""
    view.accepts_attachments = True
    return view


class PortalRequest(Request):
    """Flask's request, with the upload routes' body limit and uploaded parts kept encrypted."""

    def _takes_attachments(self) -> bool:
        view = current_app.view_functions.get(self.endpoint) if self.endpoint else None
        return bool(getattr(view, "accepts_attachments", False))

    @property
    def max_content_length(self) -> int | None:
        if (
            self._max_content_length is None
            and current_app
            and self.mimetype == "multipart/form-data"
            and self._takes_attachments()
        ):
            from portal.services.attachments import request_body_limit

            return request_body_limit()
        return Request.max_content_length.fget(self)

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return EncryptedSpool()


def file_response(body, item: dict) -> Response:
    """An uploaded file sent back: always a download of opaque bytes, never rendered by the browser (a
    file's content is what someone uploaded, and could be HTML or script whatever its name says)."""
    response = Response(stream_with_context(body), mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = content_disposition(item["file_name"])
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Length"] = str(item["size"])
    return response


def content_disposition(file_name: str) -> str:
    """``attachment`` with the name as plain ASCII, and in full as RFC 6266's ``filename*`` when it
    differs (accents, quotes)."""
    plain = unicodedata.normalize("NFKD", file_name).encode("ascii", "ignore").decode()
    plain = "".join(ch for ch in plain if ch.isprintable() and ch not in '"\\') or "file"
    header = f'attachment; filename="{plain}"'
    if plain != file_name:
        header += f"; filename*=UTF-8''{quote(file_name, safe='')}"
    return header
