"""Key rotation: re-encrypt every encrypted column under a new first key, batch by batch.

Access packages are rotated chunk by chunk (``access_package_chunks.data``, at most 4 chunks a batch), so
a rotation's memory does not grow with the packages either.

Without downtime: give every process ``PORTAL_ENCRYPTION_KEY=<new>,<old>`` (the first key encrypts, every
key decrypts, so old and new values are both readable), run ``flask rotate-encryption-key``, then drop the
old key. The rotation works on stored bytes (no ORM, no ``updated_at`` change) and writes each value with a
compare-and-swap on the old bytes, so a value saved by the app meanwhile is never overwritten with an older
one; it is counted instead, and a second run picks it up. Values already under the new key are skipped,
so an interrupted rotation simply runs again.

The blind indexes of identities and external ids (keyed hashes used for search) are derived from the first
key, so they are recomputed for every request as part of the rotation. Between the moment processes start
with the new key first and the end of the rotation, a search by email, phone or external id may miss
requests not yet rotated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from portal.crypto import DecryptionError, Keyring
from portal.extensions import db
from portal.models import Base
from portal.models.base import Encrypted
from portal.services.identities import external_id_index

DEFAULT_BATCH_SIZE = 500


def encrypted_columns() -> list[tuple[str, str, str]]:
    """(table, primary key column, encrypted column) for every encrypted column of the models."""
    found = []
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        for column in table.columns:
            if isinstance(column.type, Encrypted) and len(pk) == 1:
                found.append((table.name, pk[0].name, column.name))
    return found


def _batch_size(table: str, column: str, requested: int) -> int:
    """``requested``, capped for columns of large values (package chunks: a few MB a batch, not 500 MB)."""
    cap = Base.metadata.tables[table].c[column].type.rotation_batch
    return min(requested, cap) if cap else requested


def raw_table(table: str, *columns: str) -> sa.TableClause:
    """The table with plain columns: encrypted values come back as the stored bytes, not decrypted."""
    return sa.table(table, *(sa.column(name) for name in columns))


@dataclass
class RotationReport:
    reencrypted: int = 0
    already_current: int = 0
    # Saved by the app while this value was being rotated: left as the app wrote it; run again.
    changed_meanwhile: int = 0
    indexes_rebuilt: int = 0
    undecryptable: list[str] = field(default_factory=list)  # "table.column id N"

    @property
    def complete(self) -> bool:
        return not self.undecryptable and not self.changed_meanwhile


def _identity_indexes(ring: Keyring, plaintext: bytes) -> dict[str, str | None]:
    identity = json.loads(plaintext) or {}
    email, phone = identity.get("email"), identity.get("phone_number")
    return {
        "email_index": ring.blind_index(email) if email else None,
        "phone_index": ring.blind_index(phone) if phone else None,
    }


def _external_id_index(ring: Keyring, plaintext: bytes) -> dict[str, str | None]:
    return {"external_id_index": external_id_index(plaintext.decode(), ring)}


# Encrypted columns searched through blind indexes: (table, column) → (index columns, their new values).
REINDEXED: dict[tuple[str, str], tuple[tuple[str, ...], Callable[[Keyring, bytes], dict]]] = {
    ("privacy_requests", "identity"): (("email_index", "phone_index"), _identity_indexes),
    ("privacy_requests", "external_id"): (("external_id_index",), _external_id_index),
}


def rotate(
    ring: Keyring, *, after_batch: Callable[[], None], batch_size: int = DEFAULT_BATCH_SIZE
) -> RotationReport:
    """Re-encrypt under ``ring``'s first key. ``after_batch`` (the caller's commit) ends each batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    for table_name, pk, column in encrypted_columns():
        extra, indexes = REINDEXED.get((table_name, column), ((), None))
        reindex = indexes is not None
        table = raw_table(table_name, pk, column, *extra)
        size = _batch_size(table_name, column, batch_size)
        last = None
        while True:
            query = sa.select(table.c[pk], table.c[column]).where(table.c[column].is_not(None))
            if last is not None:
                query = query.where(table.c[pk] > last)
            rows = db.session.execute(query.order_by(table.c[pk]).limit(size)).all()
            if not rows:
                break
            for row_id, stored in rows:
                stored = bytes(stored)
                current = Keyring.key_id_of(stored) == ring.first_key_id
                if current and not reindex:
                    report.already_current += 1
                    continue
                try:
                    plaintext = ring.decrypt(stored)
                except DecryptionError:
                    report.undecryptable.append(f"{table_name}.{column} id {row_id}")
                    continue
                values = {} if current else {column: ring.encrypt(plaintext)}
                if reindex:
                    values.update(indexes(ring, plaintext))
                result = db.session.execute(
                    sa.update(table).where(table.c[pk] == row_id, table.c[column] == stored).values(values)
                )
                if result.rowcount != 1:
                    report.changed_meanwhile += 1
                    continue
                if current:
                    report.already_current += 1
                else:
                    report.reencrypted += 1
                if reindex:
                    report.indexes_rebuilt += 1
            last = rows[-1][0]
            after_batch()
    return report


def after_new_key(app, ring: Keyring) -> str:
    """After ``--new-key``: update ``instance/encryption.key`` when that is where the key lives; say what next.

    The file gets the new key first and the old ones after it, so the app reads everything at its next
    start. A key configured in PORTAL_ENCRYPTION_KEY is the operator's to change: the message says how.
    """
    from portal.crypto import KEY_FILE_NAME

    if not app.config.get("ENCRYPTION_KEY"):
        path = Path(app.instance_path) / KEY_FILE_NAME
        if path.exists():
            path.write_text(ring.config_text() + "\n")
            return (
                f"Updated {path}: the new key first, the old key after it. Restart the portal; once it "
                "runs, the old key may be removed from the file. Back up the new key."
            )
    return (
        "Now set PORTAL_ENCRYPTION_KEY on every process to the new key followed by the old one "
        "(comma-separated) and restart them; values are already readable with the new key alone, so the "
        "old key may be dropped once no process writes with it. Back up the new key."
    )
