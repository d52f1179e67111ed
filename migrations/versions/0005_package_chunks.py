"""package chunks: access packages stored as encrypted chunks of rows, plus an encrypted summary

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. ``access_packages.data`` (the whole package as one
encrypted JSON blob) becomes ``summary`` (the keys, row counts, columns and size), and the rows move to
``access_package_chunks`` (see ``portal/models/packages.py`` for the format). The column is renamed, not
rebuilt: rebuilding a table on SQLite cascades deletes.

Existing packages are converted one at a time with the configured keyring, in the format as it stands at
this revision (a copy, so later code changes cannot change what this migration writes). If any package
cannot be decrypted, the upgrade stops before changing anything and names them: add the key that encrypted
them to PORTAL_ENCRYPTION_KEY, or delete them (their requests can be run again). The downgrade puts every
package back into one blob.
"""

import json

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_CHUNK_BYTES = 1024 * 1024

old_packages = sa.table("access_packages", sa.column("id", sa.Integer), sa.column("data", sa.LargeBinary))
packages = sa.table("access_packages", sa.column("id", sa.Integer), sa.column("summary", sa.LargeBinary))
chunks = sa.table(
    "access_package_chunks",
    sa.column("package_id", sa.Integer),
    sa.column("key_index", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("row_count", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def _settings():
    from flask import current_app

    from portal.crypto import keyring

    return keyring(), int(current_app.config.get("PACKAGE_CHUNK_BYTES") or DEFAULT_CHUNK_BYTES)


def _refuse_unreadable(conn, ring, column) -> None:
    """Stop before any change when a stored blob of ``column`` cannot be decrypted."""
    from portal.crypto import DecryptionError

    table = column.table
    unreadable = []
    for package_id in conn.scalars(sa.select(table.c.id).order_by(table.c.id)).all():  # one blob at a time
        try:
            ring.decrypt(bytes(conn.scalar(sa.select(column).where(table.c.id == package_id))))
        except DecryptionError:
            unreadable.append(package_id)
    if unreadable:
        raise RuntimeError(
            f"Access package(s) with id {', '.join(map(str, unreadable))} cannot be decrypted with "
            "PORTAL_ENCRYPTION_KEY. Add the key that encrypted them (after the current one, comma-separated) "
            "and run the migration again, or delete those packages (their requests can be run again)."
        )


def _pack(package: dict, chunk_bytes: int) -> tuple[dict, list[tuple[int, int, int, bytes]]]:
    """The summary and the (key_index, seq, row_count, plaintext) chunks of one package dict."""
    keys, parts = [], []
    for index, (key, rows) in enumerate(package.items()):
        columns: dict = {}
        nothing_found = True
        lines: list[bytes] = []
        used = seq = 0
        for row in rows or []:
            line = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
            columns.update((column, None) for column in row if column not in columns)
            nothing_found = nothing_found and all(value is None for value in row.values())
            if lines and used + 1 + len(line) > chunk_bytes:
                parts.append((index, seq, len(lines), b"\n".join(lines)))
                lines, used, seq = [], 0, seq + 1
            used += len(line) + (1 if lines else 0)
            lines.append(line)
        if lines:
            parts.append((index, seq, len(lines), b"\n".join(lines)))
        keys.append(
            {"key": key, "rows": len(rows or []), "columns": list(columns), "nothing_found": nothing_found}
        )
    return {"size_bytes": sum(len(part[3]) for part in parts), "keys": keys}, parts


def upgrade():
    conn = op.get_bind()
    has_packages = conn.scalar(sa.select(sa.func.count()).select_from(old_packages)) > 0
    if has_packages:
        ring, chunk_bytes = _settings()
        _refuse_unreadable(conn, ring, old_packages.c.data)
    op.create_table(
        "access_package_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("key_index", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["access_packages.id"],
            name=op.f("fk_access_package_chunks_package_id_access_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_package_chunks")),
        sa.UniqueConstraint(
            "package_id", "key_index", "seq", name=op.f("uq_access_package_chunks_package_id")
        ),
        sqlite_autoincrement=True,  # chunk ids are never reused (see the model)
    )
    op.alter_column("access_packages", "data", new_column_name="summary")
    if not has_packages:
        return
    for package_id in conn.scalars(sa.select(packages.c.id).order_by(packages.c.id)).all():
        blob = conn.scalar(sa.select(packages.c.summary).where(packages.c.id == package_id))
        package = json.loads(ring.decrypt(bytes(blob)))
        summary, parts = _pack(package, chunk_bytes)
        for key_index, seq, row_count, plaintext in parts:
            conn.execute(
                sa.insert(chunks).values(
                    package_id=package_id,
                    key_index=key_index,
                    seq=seq,
                    row_count=row_count,
                    data=ring.encrypt(plaintext),
                )
            )
        conn.execute(
            sa.update(packages)
            .where(packages.c.id == package_id)
            .values(summary=ring.encrypt(json.dumps(summary, ensure_ascii=False).encode()))
        )


def downgrade():
    conn = op.get_bind()
    ids = conn.scalars(sa.select(packages.c.id).order_by(packages.c.id)).all()
    if ids:
        ring, _ = _settings()
        _refuse_unreadable(conn, ring, packages.c.summary)
        for package_id in ids:
            blob = conn.scalar(sa.select(packages.c.summary).where(packages.c.id == package_id))
            summary = json.loads(ring.decrypt(bytes(blob)))
            package = {}
            for index, item in enumerate(summary["keys"]):
                rows = package[item["key"]] = []
                stored = conn.scalars(
                    sa.select(chunks.c.data)
                    .where(chunks.c.package_id == package_id, chunks.c.key_index == index)
                    .order_by(chunks.c.seq)
                )
                for data in stored:
                    rows.extend(json.loads(line) for line in ring.decrypt(bytes(data)).split(b"\n"))
            conn.execute(
                sa.update(packages)
                .where(packages.c.id == package_id)
                .values(summary=ring.encrypt(json.dumps(package, ensure_ascii=False).encode()))
            )
    op.alter_column("access_packages", "summary", new_column_name="data")
    op.drop_table("access_package_chunks")
