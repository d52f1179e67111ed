"""encrypt request pii: external_id and denial_reason encrypted at rest, external_id searched by keyed hash

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. ``privacy_requests.external_id`` (the requester's
ticket in another system) and ``denial_reason`` (free text about the request) were stored in clear; they are
now encrypted with the configured keyring like the identity, and the external id is searched through
``external_id_index``, a keyed hash of its normalised value (stripped, case-folded) computed as the portal
does at this revision (a copy, so later code changes cannot change what this migration writes).

Existing rows are converted in batches of ``BATCH`` rows. No table is rebuilt (on SQLite that would
cascade-delete every manual input and package): new columns are added and filled, the old ones dropped
(ALTER TABLE ... DROP COLUMN, SQLite 3.35+) and the new ones take their names. The downgrade decrypts the
values back into plain columns; if one cannot be decrypted it stops before changing anything and names the
requests.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 500
TABLE = "privacy_requests"

requests = sa.table(
    TABLE,
    sa.column("id", sa.String),
    sa.column("external_id"),  # text before the upgrade, encrypted bytes after it
    sa.column("denial_reason"),
    sa.column("external_id_index", sa.String),
    sa.column("external_id_encrypted", sa.LargeBinary),
    sa.column("denial_reason_encrypted", sa.LargeBinary),
    sa.column("external_id_plain", sa.String),
    sa.column("denial_reason_plain", sa.Text),
)


def _keyring():
    from portal.crypto import keyring

    return keyring()


def _external_id_index(ring, external_id: str) -> str:
    """``portal.services.privacy_requests.external_id_index`` as it is at this revision."""
    return ring.blind_index(external_id.strip().casefold(), purpose="external_id")


def _batches(conn):
    """(id, external_id, denial_reason) of every row holding either, ``BATCH`` rows at a time, by id."""
    last = None
    while True:
        query = sa.select(requests.c.id, requests.c.external_id, requests.c.denial_reason).where(
            sa.or_(requests.c.external_id.is_not(None), requests.c.denial_reason.is_not(None))
        )
        if last is not None:
            query = query.where(requests.c.id > last)
        rows = conn.execute(query.order_by(requests.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _update_each(conn, values: dict, rows: list[dict]) -> None:
    """One UPDATE per row of ``rows`` (an executemany): ``values`` maps columns to bound parameter names."""
    statement = (
        sa.update(requests)
        .where(requests.c.id == sa.bindparam("row_id"))
        .values({column: sa.bindparam(name) for column, name in values.items()})
    )
    conn.execute(statement, rows)


def upgrade():
    conn = op.get_bind()
    op.add_column(TABLE, sa.Column("external_id_encrypted", sa.LargeBinary(), nullable=True))
    op.add_column(TABLE, sa.Column("denial_reason_encrypted", sa.LargeBinary(), nullable=True))
    op.add_column(TABLE, sa.Column("external_id_index", sa.String(length=64), nullable=True))
    ring = None
    for rows in _batches(conn):
        ring = ring or _keyring()
        _update_each(
            conn,
            {
                "external_id_encrypted": "new_external_id",
                "denial_reason_encrypted": "new_denial_reason",
                "external_id_index": "new_index",
            },
            [
                {
                    "row_id": row_id,
                    "new_external_id": ring.encrypt(external_id.encode()) if external_id else None,
                    "new_denial_reason": ring.encrypt(reason.encode()) if reason else None,
                    "new_index": _external_id_index(ring, external_id) if external_id else None,
                }
                for row_id, external_id, reason in rows
            ],
        )
    op.drop_index("ix_privacy_requests_external_id", table_name=TABLE)
    op.drop_column(TABLE, "external_id")
    op.drop_column(TABLE, "denial_reason")
    op.alter_column(TABLE, "external_id_encrypted", new_column_name="external_id")
    op.alter_column(TABLE, "denial_reason_encrypted", new_column_name="denial_reason")
    op.create_index("ix_privacy_requests_external_id_index", TABLE, ["external_id_index"])


def _refuse_unreadable(conn, ring) -> None:
    """Stop before any change when a stored external id or denial reason cannot be decrypted."""
    from portal.crypto import DecryptionError

    unreadable = []
    for rows in _batches(conn):
        for row_id, *blobs in rows:
            try:
                for blob in blobs:
                    if blob is not None:
                        ring.decrypt(bytes(blob))
            except DecryptionError:
                unreadable.append(row_id)
    if unreadable:
        raise RuntimeError(
            f"The external id or denial reason of privacy request(s) {', '.join(unreadable)} cannot be "
            "decrypted with PORTAL_ENCRYPTION_KEY. Add the key that encrypted them (after the current one, "
            "comma-separated) and run the downgrade again."
        )


def downgrade():
    conn = op.get_bind()
    ring = _keyring()
    _refuse_unreadable(conn, ring)
    op.add_column(TABLE, sa.Column("external_id_plain", sa.String(length=200), nullable=True))
    op.add_column(TABLE, sa.Column("denial_reason_plain", sa.Text(), nullable=True))
    for rows in _batches(conn):
        _update_each(
            conn,
            {"external_id_plain": "old_external_id", "denial_reason_plain": "old_denial_reason"},
            [
                {
                    "row_id": row_id,
                    "old_external_id": ring.decrypt(bytes(external_id)).decode() if external_id else None,
                    "old_denial_reason": ring.decrypt(bytes(reason)).decode() if reason else None,
                }
                for row_id, external_id, reason in rows
            ],
        )
    op.drop_index("ix_privacy_requests_external_id_index", table_name=TABLE)
    op.drop_column(TABLE, "external_id_index")
    op.drop_column(TABLE, "external_id")
    op.drop_column(TABLE, "denial_reason")
    op.alter_column(TABLE, "external_id_plain", new_column_name="external_id")
    op.alter_column(TABLE, "denial_reason_plain", new_column_name="denial_reason")
    op.create_index("ix_privacy_requests_external_id", TABLE, ["external_id"])
