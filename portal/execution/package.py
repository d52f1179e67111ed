"""Package building (S4) in exactly the fidesops shape ``{key: [rows]}``, written row by row.

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
from portal.execution.typed_values import packaged
from portal.extensions import run
from portal.models import AccessPackage, AccessPackageChunk, utcnow
from portal.models.packages import Packer


def manual_entries(
    webhooks: list[GatedWebhook], inputs: dict[int, StoredInput]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """One entry per gated webhook, every current label present (null when blank), values typed
    (``typed_values.packaged``: entries stored as strings before values were typed are converted here).

    Connection keys cannot contain ``:``, so they never collide with ``"<dataset>:<collection>"`` keys.
    """
    for gated in webhooks:
        values = inputs[gated.connection.id].values or {}
        yield (
            gated.key,
            [
                {
                    field["dsr_package_label"]: _packaged(
                        field.get("type") or "text", values.get(field["dsr_package_label"])
                    )
                    for field in gated.webhook.fields
                }
            ],
        )


# What the package says of each file of a ``file`` field: never its internal id.
FILE_KEYS = ("file_name", "type", "size", "sha256")


def _packaged(kind: str, value: Any) -> Any:
    if kind != "file":
        return packaged(kind, value)
    if not isinstance(value, list):
        return None if value is None else value
    return [{key: ref.get(key) for key in FILE_KEYS} for ref in value if isinstance(ref, dict)] or None


def _zip_name(name: str, taken: set[str]) -> str:
    """A name inside one system's folder of the ZIP: never a path (no leading dot, no ``..``), and unique
    there ("scan.pdf", "scan (2).pdf"), whatever the case."""
    name = name.replace("/", "_").replace("\\", "_").lstrip(".") or "file"
    stem, dot, extension = name.rpartition(".")
    stem, extension = (stem, dot + extension) if dot and stem else (name, "")
    candidate, number = name, 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{stem} ({number}){extension}"
    taken.add(candidate.lower())
    return candidate


def attachment_index(webhooks: list[GatedWebhook], inputs: dict[int, StoredInput]) -> list[dict[str, Any]]:
    """Every file of a package, in package order: its id, system and label, what the JSON says of it,
    and its ``path`` in the ZIP (``attachments/<system key>/<file name>``). Kept in the package's
    summary, so pages and downloads list exactly the files of the package they show."""
    index = []
    for gated in webhooks:
        values = inputs[gated.connection.id].values or {}
        folder = gated.key.lstrip(".") or "system"
        taken: set[str] = set()
        for field in gated.webhook.fields:
            if field.get("type") != "file":
                continue
            label = field["dsr_package_label"]
            for ref in values.get(label) or []:
                if not isinstance(ref, dict) or "id" not in ref:
                    continue
                index.append(
                    {
                        "id": ref["id"],
                        "key": gated.key,
                        "label": label,
                        **{key: ref.get(key) for key in FILE_KEYS},
                        "path": f"attachments/{folder}/{_zip_name(str(ref.get('file_name')), taken)}",
                    }
                )
    return index


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


_packages = AccessPackage.__table__
# A run's package row, as Core statements built once (a resume is measured against a single upload; the
# ORM's unit of work for one row cost more than the INSERT itself). ON CONFLICT DO NOTHING
# answers no id when the request has a package already: SQLite and PostgreSQL spell it the same way.
_INSERT_PACKAGE = sa.text(
    "INSERT INTO access_packages (privacy_request_id, summary, created_at) VALUES (:request_id, :summary, :now) "
    "ON CONFLICT (privacy_request_id) DO NOTHING RETURNING id"
).bindparams(
    sa.bindparam("summary", type_=_packages.c.summary.type),
    sa.bindparam("now", type_=_packages.c.created_at.type),
)
_PACKAGE_ID = sa.select(_packages.c.id).where(_packages.c.privacy_request_id == sa.bindparam("request_id"))
_DELETE_CHUNKS = sa.delete(AccessPackageChunk.__table__).where(
    AccessPackageChunk.__table__.c.package_id == sa.bindparam("package_id")
)
_REPLACE_PACKAGE = (
    sa.update(_packages)
    .where(_packages.c.id == sa.bindparam("package_id"))
    .values(summary=sa.bindparam("summary"), created_at=sa.bindparam("now"))
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
        self.attachments: list[dict[str, Any]] = []  # ``attachment_index``: kept in the summary

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

    def save(self, privacy_request_id: str) -> int:
        """Replace the request's package with this one in the session's transaction (the caller commits);
        returns the package's id. A first package is one INSERT; a re-run's replaces the old one in place."""
        summary, now = self._packer.summary(), utcnow()
        if self.attachments:
            summary["attachments"] = self.attachments
        package_id = run(
            _INSERT_PACKAGE, {"request_id": privacy_request_id, "summary": summary, "now": now}
        ).scalar()
        if package_id is None:  # the request has a package already (a re-run): same row, new contents
            package_id = run(_PACKAGE_ID, {"request_id": privacy_request_id}).scalar_one()
            run(_DELETE_CHUNKS, {"package_id": package_id})
            run(_REPLACE_PACKAGE, {"package_id": package_id, "summary": summary, "now": now})
        self._spool.flush()
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for item in self._spooled:
            self._spool.seek(item.offset)
            batch.append(
                {
                    "package_id": package_id,
                    "key_index": item.key_index,
                    "seq": item.seq,
                    "row_count": item.row_count,
                    "data": self._spool.read(item.length),
                }
            )
            batch_bytes += item.length
            if batch_bytes >= INSERT_BATCH_BYTES:
                run(_INSERT_CHUNK, batch)
                batch, batch_bytes = [], 0
        if batch:
            run(_INSERT_CHUNK, batch)
        return package_id

    def close(self) -> None:
        self._spool.close()
