"""team workflow: tasks and their default owners, notes on a request, deadline extensions, cancel reason

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 19:10:00.000000

Written by hand; portable between SQLite and PostgreSQL. New tables and one new nullable column.
``tasks.due_date`` repeats the request's due date so that a list of tasks is read in deadline order from
an index.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    referred = target.partition(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete
    )


def upgrade():
    op.add_column("privacy_requests", sa.Column("cancel_reason", sa.LargeBinary(), nullable=True))
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("connection_config_id", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('open', 'done', 'closed')", name=op.f("ck_tasks_state_valid")),
        _fk("tasks", "privacy_request_id", "privacy_requests.id", "CASCADE"),
        _fk("tasks", "connection_config_id", "connection_configs.id", "CASCADE"),
        _fk("tasks", "assignee_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint(
            "privacy_request_id", "connection_config_id", name=op.f("uq_tasks_privacy_request_id")
        ),
    )
    op.create_index("ix_tasks_state_assignee_due_id", "tasks", ["state", "assignee_id", "due_date", "id"])
    op.create_index("ix_tasks_state_due_id", "tasks", ["state", "due_date", "id"])
    op.create_index(
        "ix_tasks_state_connection_due_id", "tasks", ["state", "connection_config_id", "due_date", "id"]
    )
    op.create_table(
        "webhook_owners",
        sa.Column("connection_config_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _fk("webhook_owners", "connection_config_id", "connection_configs.id", "CASCADE"),
        _fk("webhook_owners", "user_id", "users.id", "CASCADE"),
        sa.PrimaryKeyConstraint("connection_config_id", "user_id", name=op.f("pk_webhook_owners")),
    )
    op.create_index(op.f("ix_webhook_owners_user_id"), "webhook_owners", ["user_id"])
    op.create_table(
        "request_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_label", sa.String(length=300), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("request_notes", "privacy_request_id", "privacy_requests.id", "CASCADE"),
        _fk("request_notes", "author_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_notes")),
    )
    op.create_index(
        "ix_request_notes_request_time", "request_notes", ["privacy_request_id", "created_at", "id"]
    )
    op.create_table(
        "deadline_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("privacy_request_id", sa.String(length=64), nullable=False),
        sa.Column("preset", sa.String(length=16), nullable=False),
        sa.Column("previous_due_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("new_due_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.Column("subject_told_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by_label", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "preset IN ('gdpr', 'ccpa', 'custom')", name=op.f("ck_deadline_extensions_preset_valid")
        ),
        _fk("deadline_extensions", "privacy_request_id", "privacy_requests.id", "CASCADE"),
        _fk("deadline_extensions", "created_by_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_extensions")),
    )
    op.create_index(
        "ix_deadline_extensions_request_time", "deadline_extensions", ["privacy_request_id", "created_at"]
    )


def downgrade():
    op.drop_index("ix_deadline_extensions_request_time", table_name="deadline_extensions")
    op.drop_table("deadline_extensions")
    op.drop_index("ix_request_notes_request_time", table_name="request_notes")
    op.drop_table("request_notes")
    op.drop_index(op.f("ix_webhook_owners_user_id"), table_name="webhook_owners")
    op.drop_table("webhook_owners")
    op.drop_index("ix_tasks_state_connection_due_id", table_name="tasks")
    op.drop_index("ix_tasks_state_due_id", table_name="tasks")
    op.drop_index("ix_tasks_state_assignee_due_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_column("privacy_requests", "cancel_reason")  # ALTER TABLE ... DROP COLUMN (SQLite 3.35+)
