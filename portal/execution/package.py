"""Package building (S4) in exactly the fidesops shape ``{key: [rows]}``, written row by row (issue 9).

``PackageWriter`` takes the automated rows as the connectors yield them, then the manual entries, packs
them into chunks (format: ``portal.models.packages``), encrypts each chunk at once and spools it to an
unnamed temporary file, so a package of any size costs the run about one chunk of memory and personal
data never reaches the disk in the clear. ``save`` then replaces the request's package inside the run's
own transaction: the old package stays complete and readable until the commit that also marks the request
complete, and a failed run leaves nothing behind. Spooling (rather than inserting while collecting) keeps
the database's write lock — one writer at a time on SQLite — to the inserts at the end of the run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from portal.crypto import keyring
from portal.execution.gate import GatedWebhook, StoredInput
from portal.extensions import db
from portal.models import AccessPackage, AccessPackageChunk, utcnow
from portal.models.packages import Packer


def manual_entries(
    webhooks: list[GatedWebhook], inputs: dict[int, StoredInput]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """One entry per gated webhook, every current label present (null when blank).

    Connection keys cannot contain ``:``, so they never collide with ``"<dataset>:<collection>"`` keys.
    """
    for gated in webhooks:
        values = inputs[gated.connection.id].values or {}
        yield gated.key, [{label: values.get(label) for label in gated.webhook.labels}]


# Chunks are inserted many per statement, up to this many bytes at a time (memory stays bounded).
INSERT_BATCH_BYTES = 4 * 1024 * 1024
# The spool holds the chunks encrypted already: stored as they are (a plain binary parameter).
_INSERT_CHUNK = sa.insert(AccessPackageChunk.__table__).values(
    package_id=sa.bindparam("package_id"),
    key_index=sa.bindparam("key_index"),
    seq=sa.bindparam("seq"),
    row_count=sa.bindparam("row_count"),
    data=sa.bindparam("data", type_=sa.LargeBinary),
)


@dataclass(frozen=True)
class _Spooled:
    key_index: int
    seq: int
    row_count: int
    offset: int
    length: int


class PackageWriter:
    """Rows in (``add``), one stored package out (``save``); a context manager that removes its spool."""

    def __init__(self, chunk_bytes: int):
        self._packer = Packer(chunk_bytes)
        self._ring = keyring()
        self._spool = tempfile.TemporaryFile(prefix="portal-package-")  # noqa: SIM115 - closed in close()
        self._spooled: list[_Spooled] = []
        self._end = 0

    def __enter__(self) -> PackageWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def keys(self) -> list[str]:
        """The package's keys so far, in package order."""
        return self._packer.keys

    def add(self, key: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``key`` (even with no rows) and its rows; a key added again keeps its place."""
        for chunk in self._packer.add(key, rows):
            ciphertext = self._ring.encrypt(chunk.plaintext)
            self._spool.write(ciphertext)
            self._spooled.append(
                _Spooled(chunk.key_index, chunk.seq, chunk.row_count, self._end, len(ciphertext))
            )
            self._end += len(ciphertext)

    def save(self, privacy_request_id: str) -> AccessPackage:
        """Replace the request's package with this one in the session's transaction; the caller commits."""
        summary = self._packer.summary()
        package = db.session.scalar(
            sa.select(AccessPackage).where(AccessPackage.privacy_request_id == privacy_request_id)
        )
        if package is None:
            package = AccessPackage(privacy_request_id=privacy_request_id, summary=summary)
            db.session.add(package)
        else:
            db.session.execute(
                sa.delete(AccessPackageChunk).where(AccessPackageChunk.package_id == package.id)
            )
            package.summary, package.created_at = summary, utcnow()
        db.session.flush()
        self._spool.flush()
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for item in self._spooled:
            self._spool.seek(item.offset)
            batch.append(
                {
                    "package_id": package.id,
                    "key_index": item.key_index,
                    "seq": item.seq,
                    "row_count": item.row_count,
                    "data": self._spool.read(item.length),
                }
            )
            batch_bytes += item.length
            if batch_bytes >= INSERT_BATCH_BYTES:
                db.session.execute(_INSERT_CHUNK, batch)
                batch, batch_bytes = [], 0
        if batch:
            db.session.execute(_INSERT_CHUNK, batch)
        return package

    def close(self) -> None:
        self._spool.close()
