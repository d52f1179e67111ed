"""Access packages (S2): the final package of a completed request, stored as encrypted chunks.

A package can hold hundreds of megabytes, so no step holds a whole one in memory: the runner
writes it row by row (``portal.execution.package``), and pages and downloads read it chunk by chunk.

Storage decisions:
- ``access_packages.summary`` (encrypted JSON, small): the keys in package order, each with its number of
  rows, its columns (the union of its rows' keys in first-seen order) and whether every value is null
  ("searched, nothing found"), and the size of all rows in bytes. It is encrypted because the keys and
  counts tell which systems hold the subject's data, and how much.
- ``access_package_chunks``: the rows. A chunk belongs to one key (``key_index``, the key's position in
  the summary) and holds whole rows in order (``seq``) as JSON lines: one compact JSON object per line,
  UTF-8. Each chunk is encrypted on its own, so key rotation re-encrypts chunk by chunk. A chunk's
  plaintext stays within ``PACKAGE_CHUNK_BYTES`` (1 MiB) unless one row alone is larger: rows are never
  split.
- JSON lines round-trip exactly (``json.loads`` keeps key order; floats print back the same), so every
  export is byte for byte what ``json.dumps`` of the whole package dict gives.
- Readers fetch the chunks they are about to use a batch at a time (up to ``READ_AHEAD_BYTES`` of them,
  at least one): the first batch when the package is opened, in the caller's transaction (a small package
  is read in that one query), each later one on a short connection of its own, so a slow download holds
  neither a connection nor a transaction between batches and memory stays bounded. A package replaced (a re-run) or purged while it is read stops that read with
  ``PackageChanged``; two packages are never mixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedBytes, EncryptedJSON, utcnow

DEFAULT_CHUNK_BYTES = 1024 * 1024
READ_AHEAD_BYTES = 4 * 1024 * 1024  # stored bytes a reader fetches per query

Row = dict[str, Any]


class AccessPackage(Base):
    __tablename__ = "access_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), unique=True
    )
    # {"size_bytes": n, "keys": [KeySummary.to_json(), ...]}; the rows are in AccessPackageChunk.
    summary: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def contents(self) -> StoredPackage:
        return StoredPackage.open(self)

    @property
    def data(self) -> dict[str, list[Row]]:
        """The whole package as one dict, in memory: for tests and small tools; pages and downloads stream."""
        return self.contents().to_dict()


class AccessPackageChunk(Base):
    """Whole rows of one key of a package, as encrypted JSON lines (see the module docstring)."""

    __tablename__ = "access_package_chunks"
    # The unique constraint is also the index every read uses: a package's chunks in (key, seq) order.
    # Ids are never reused (SQLite would reuse deleted ones without AUTOINCREMENT): a reader that finds
    # one of its chunk ids gone knows the package was replaced, instead of reading the new one's rows.
    __table_args__ = (UniqueConstraint("package_id", "key_index", "seq"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("access_packages.id", ondelete="CASCADE"))
    key_index: Mapped[int]
    seq: Mapped[int]
    row_count: Mapped[int]
    data: Mapped[bytes] = mapped_column(EncryptedBytes)


# --- the format ----------------------------------------------------------------------------------------


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One row as one line: compact JSON, UTF-8 (JSON escapes every newline inside strings)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


def decode_rows(plaintext: bytes) -> Iterator[Row]:
    for line in plaintext.split(b"\n"):
        yield json.loads(line)


@dataclass(frozen=True)
class KeySummary:
    """One key of a package: what pages and exports need before (or instead of) reading its rows."""

    key: str
    rows: int
    columns: list[str]
    nothing_found: bool  # every value of every row is null (true for no rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rows": self.rows,
            "columns": self.columns,
            "nothing_found": self.nothing_found,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> KeySummary:
        return cls(value["key"], value["rows"], list(value["columns"]), value["nothing_found"])


class _KeyTally:
    def __init__(self, key: str, index: int):
        self.key = key
        self.index = index
        self.rows = 0
        self.next_seq = 0
        self.columns: dict[str, None] = {}
        self.nothing_found = True

    def count(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        for column in row:
            if column not in self.columns:
                self.columns[column] = None
        if self.nothing_found and any(value is not None for value in row.values()):
            self.nothing_found = False

    def summary(self) -> KeySummary:
        return KeySummary(self.key, self.rows, list(self.columns), self.nothing_found)


@dataclass(frozen=True)
class Chunk:
    key_index: int
    seq: int
    row_count: int
    plaintext: bytes


class Packer:
    """Rows in; plaintext chunks and the summary out. No I/O: the one definition of the stored format."""

    def __init__(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self.chunk_bytes = chunk_bytes
        self.size_bytes = 0
        self._tallies: dict[str, _KeyTally] = {}

    @property
    def keys(self) -> list[str]:
        return list(self._tallies)

    def add(self, key: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[Chunk]:
        """Add ``key`` (at the end, the first time) and its ``rows``, yielding each chunk as it fills.

        Exhaust the iterator: the key counts as added (even with no rows) once iteration starts. Rows of
        a key added again follow its earlier rows.
        """
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _KeyTally(key, len(self._tallies))
        buffer = bytearray()
        count = 0
        for row in rows:
            line = encode_row(row)
            tally.count(row)
            if count and len(buffer) + 1 + len(line) > self.chunk_bytes:
                yield self._cut(tally, buffer, count)
                buffer, count = bytearray(), 0
            if count:
                buffer += b"\n"
            buffer += line
            count += 1
        if count:
            yield self._cut(tally, buffer, count)

    def _cut(self, tally: _KeyTally, buffer: bytearray, count: int) -> Chunk:
        chunk = Chunk(tally.index, tally.next_seq, count, bytes(buffer))
        tally.next_seq += 1
        self.size_bytes += len(chunk.plaintext)
        return chunk

    def summary(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "keys": [tally.summary().to_json() for tally in self._tallies.values()],
        }


# --- reading -------------------------------------------------------------------------------------------


class PackageChanged(RuntimeError):
    """The package was replaced (a re-run) or purged while it was being read."""


class PackageContents:
    """A package to read: its keys in package order, and each key's rows as a stream."""

    keys: list[KeySummary]
    size_bytes: int
    # The package's files (``portal.execution.package.attachment_index``): id, key, label, file_name, type,
    # size, sha256 and path in the ZIP. Their bytes are in ``attachment_chunks``.
    attachments: tuple[dict[str, Any], ...] = ()

    def rows(self, position: int, limit: int | None = None) -> Iterator[Row]:
        """The rows of ``keys[position]`` in order (the first ``limit`` of them)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, list[Row]]:
        return {summary.key: list(self.rows(position)) for position, summary in enumerate(self.keys)}


class DictPackage(PackageContents):
    """A package given as one dict (small packages, tests): read like a stored one."""

    def __init__(self, package: Mapping[str, list[Row]]):
        packer = Packer()
        for key, rows in package.items():
            for _ in packer.add(key, rows):
                pass
        self._package = package
        self.keys = [KeySummary.from_json(item) for item in packer.summary()["keys"]]
        self.size_bytes = packer.size_bytes

    def rows(self, position: int, limit: int | None = None) -> Iterator[Row]:
        rows = self._package[self.keys[position].key] or []
        return iter(rows if limit is None else rows[:limit])


@dataclass(frozen=True)
class _ChunkRef:
    id: int
    row_count: int
    stored_bytes: int


class StoredPackage(PackageContents):
    """A stored package, read chunk by chunk (plain values only: safe to use after the session closed)."""

    def __init__(self, package_id: int, summary: Mapping[str, Any], chunks: dict[int, list[_ChunkRef]]):
        self.package_id = package_id
        self.keys = [KeySummary.from_json(item) for item in summary["keys"]]
        self.size_bytes = summary["size_bytes"]
        self.attachments = tuple(summary.get("attachments") or ())
        self._chunks = chunks
        self._order = [ref for position in sorted(chunks) for ref in chunks[position]]
        self._place = {ref.id: n for n, ref in enumerate(self._order)}
        self._ahead: dict[int, Any] = {}  # chunk id → stored value, for the chunks of the last fetch

    @classmethod
    def open(cls, package: AccessPackage) -> StoredPackage:
        """The package's summary and chunk list; ``DecryptionError`` now, before a single row is read, if
        the summary cannot be decrypted or a chunk was encrypted with a key that is not configured."""
        from portal.crypto import DecryptionError, keyring, require_decrypted
        from portal.extensions import db

        summary = require_decrypted(package.summary)
        key_id = sa.type_coerce(sa.func.substr(AccessPackageChunk.data, 2, 4), sa.LargeBinary)
        columns = [
            AccessPackageChunk.id,
            AccessPackageChunk.key_index,
            AccessPackageChunk.row_count,
            key_id,
            sa.func.length(AccessPackageChunk.data),
        ]
        # A package that fits in one batch comes whole with its chunk list: one query in all.
        whole = summary["size_bytes"] <= READ_AHEAD_BYTES
        listed = db.session.execute(
            sa.select(*columns, *([AccessPackageChunk.data] if whole else []))
            .where(AccessPackageChunk.package_id == package.id)
            .order_by(AccessPackageChunk.key_index, AccessPackageChunk.seq)
        ).all()
        ring = keyring()
        chunks: dict[int, list[_ChunkRef]] = {}
        for chunk_id, key_index, row_count, stored_key_id, stored_bytes, *_ in listed:
            if not ring.has_key_id(bytes(stored_key_id)):
                raise DecryptionError("stored value was encrypted with a key that is not configured")
            chunks.setdefault(key_index, []).append(_ChunkRef(chunk_id, row_count, stored_bytes or 0))
        opened = cls(package.id, summary, chunks)
        if whole:
            opened._ahead.update((row[0], row[5]) for row in listed)
        elif opened._order:  # the first batch now, in the caller's transaction
            opened._fetch(opened._order[0], db.session.connection())
        return opened

    def rows(self, position: int, limit: int | None = None) -> Iterator[Row]:
        left = limit
        for ref in self._chunks.get(position, ()):
            if left is not None and left <= 0:
                return
            for row in decode_rows(self._read(ref)):
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield row

    def _fetch(self, ref: _ChunkRef, conn: sa.Connection) -> None:
        """``ref`` and the chunks after it, up to ``READ_AHEAD_BYTES``, replacing what was fetched before."""
        self._ahead.clear()
        start = self._place[ref.id]
        batch, size = [], 0
        for following in self._order[start:]:
            if batch and size + following.stored_bytes > READ_AHEAD_BYTES:
                break
            batch.append(following.id)
            size += following.stored_bytes
        fetched = conn.execute(
            sa.select(AccessPackageChunk.id, AccessPackageChunk.data).where(
                AccessPackageChunk.package_id == self.package_id, AccessPackageChunk.id.in_(batch)
            )
        )
        self._ahead.update((chunk_id, data) for chunk_id, data in fetched)

    def _read(self, ref: _ChunkRef) -> bytes:
        """One chunk's plaintext. Fetched with the chunks that follow it, up to ``READ_AHEAD_BYTES``, on a
        connection of its own that is closed before any row is used; each fetch drops the one before, so
        memory stays within one batch whatever the order of reading."""
        from portal.crypto import require_decrypted
        from portal.extensions import db

        if ref.id not in self._ahead:
            with db.engine.connect() as conn:
                self._fetch(ref, conn)
        data = self._ahead.get(ref.id)  # kept until the next fetch: a ZIP reads a small package three times
        if data is None:
            raise PackageChanged(f"access package {self.package_id} changed while it was being read")
        return require_decrypted(data)
