"""storage configs: destinations (local directory, S3) that released access packages can be written to

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. A new table only. ``secrets`` holds the AWS keys
encrypted with the portal keyring (like connection secrets); ``details`` holds nothing secret.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "storage_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IN ('local', 's3')", name=op.f("ck_storage_configs_type_valid")),
        sa.CheckConstraint("format IN ('json', 'csv')", name=op.f("ck_storage_configs_format_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_configs")),
        sa.UniqueConstraint("key", name=op.f("uq_storage_configs_key")),
        sa.UniqueConstraint("name", name=op.f("uq_storage_configs_name")),
    )


def downgrade():
    op.drop_table("storage_configs")
