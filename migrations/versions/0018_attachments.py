"""attachments: files uploaded as the value of a ``file`` field, stored as encrypted chunks

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 22:40:00.000000

Written by hand; portable between SQLite and PostgreSQL. Two new tables, nothing else changes.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.partition(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete="CASCADE"
    )


def upgrade():
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("connection_config_id", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("attachments", "privacy_request_id", "privacy_requests.id"),
        _fk("attachments", "connection_config_id", "connection_configs.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(
        "ix_attachments_request_connection", "attachments", ["privacy_request_id", "connection_config_id"]
    )
    op.create_table(
        "attachment_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _fk("attachment_chunks", "attachment_id", "attachments.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment_chunks")),
        sa.UniqueConstraint("attachment_id", "seq", name=op.f("uq_attachment_chunks_attachment_id")),
        sqlite_autoincrement=True,
    )


def downgrade():
    op.drop_table("attachment_chunks")
    op.drop_index("ix_attachments_request_connection", table_name="attachments")
    op.drop_table("attachments")
