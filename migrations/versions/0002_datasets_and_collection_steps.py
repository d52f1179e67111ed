"""automated collection: fides datasets on database connections, per-run collection steps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dataset_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_config_id", sa.Integer(), nullable=False),
        sa.Column("fides_key", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_config_id"],
            ["connection_configs.id"],
            name=op.f("fk_dataset_configs_connection_config_id_connection_configs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_configs")),
        sa.UniqueConstraint("fides_key", name=op.f("uq_dataset_configs_fides_key")),
    )
    with op.batch_alter_table("dataset_configs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_configs_connection_config_id"), ["connection_config_id"], unique=False
        )

    op.create_table(
        "collection_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("connection_key", sa.String(length=200), nullable=False),
        sa.Column("connection_name", sa.String(length=200), nullable=False),
        sa.Column("rows_found", sa.Integer(), nullable=False),
        sa.Column("row_counts", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["privacy_request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_collection_steps_privacy_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_steps")),
    )
    with op.batch_alter_table("collection_steps", schema=None) as batch_op:
        batch_op.create_index("ix_collection_steps_request_run", ["privacy_request_id", "run"], unique=False)


def downgrade():
    with op.batch_alter_table("collection_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_collection_steps_request_run")

    op.drop_table("collection_steps")
    with op.batch_alter_table("dataset_configs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_configs_connection_config_id"))

    op.drop_table("dataset_configs")
