"""review and delivery: package_deliveries, entries sent back for re-review, mails to data subjects

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:00:00.000000

Written by hand; portable between SQLite and PostgreSQL (new columns by plain ADD COLUMN; only the
nullability of ``notifications.user_id`` needs batch mode on SQLite). ``package_deliveries`` is new; ``manual_inputs.sent_back_at`` marks entries a reviewer
sent back; ``notifications`` may now hold a mail to a data subject (no user; the address and the mail's
private context encrypted).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "package_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reviewed_by_label", sa.String(length=300), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_back_systems", sa.JSON(), nullable=True),
        sa.Column("send_back_reason", sa.LargeBinary(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=True),
        sa.Column("storage_location", sa.Text(), nullable=True),
        sa.Column("storage_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('ready_for_review', 'sent_back', 'approved', 'delivered', 'delivery_failed')",
            name=op.f("ck_package_deliveries_state_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["privacy_request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_package_deliveries_privacy_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_deliveries")),
        sa.UniqueConstraint("privacy_request_id", name=op.f("uq_package_deliveries_privacy_request_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_package_deliveries_token_hash")),
    )
    # Plain ADD COLUMN (SQLite has it): rebuilding manual_inputs in batch mode is not needed.
    op.add_column("manual_inputs", sa.Column("sent_back_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notifications", sa.Column("recipient", sa.LargeBinary(), nullable=True))
    op.add_column("notifications", sa.Column("private_context", sa.LargeBinary(), nullable=True))
    # SQLite cannot drop a NOT NULL in place: batch mode rebuilds notifications, which no table references
    # (so nothing cascades); PostgreSQL just alters the column.
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=True)


def downgrade():
    op.execute("DELETE FROM notifications WHERE user_id IS NULL")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("private_context")
        batch.drop_column("recipient")
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("manual_inputs") as batch:
        batch.drop_column("sent_back_at")
    op.drop_table("package_deliveries")
