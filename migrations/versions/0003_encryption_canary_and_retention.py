"""hardening: the encryption canary (startup key check) and privacy_requests.purged_at (retention)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. Only additions: a new table and a nullable column
(no table is rebuilt, so SQLite's foreign-key cascades never fire on existing rows).
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "encryption_canary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encryption_canary")),
    )
    op.add_column("privacy_requests", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not batch mode: rebuilding privacy_requests on
    # SQLite would drop the old table and cascade-delete every manual input and package.
    op.drop_column("privacy_requests", "purged_at")
    op.drop_table("encryption_canary")
