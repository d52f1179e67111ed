"""task lists by system and assignee: an index on (state, connection_config_id, assignee_id, due_date, id)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 02:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. The unassigned tasks of one system were read
through the (state, assignee_id, due_date, id) index, every unassigned task of every system in turn. On
SQLite, a database that has planner statistics gets them for the new index too: with statistics for the
older indexes only, the planner took the new one for the lists it does not fit.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

COLUMNS = ["state", "connection_config_id", "assignee_id", "due_date", "id"]


def upgrade():
    op.create_index("ix_tasks_state_connection_assignee_due_id", "tasks", COLUMNS)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        has_stats = bind.execute(
            sa.text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        ).scalar()
        if has_stats:
            op.execute("ANALYZE tasks")


def downgrade():
    op.drop_index("ix_tasks_state_connection_assignee_due_id", table_name="tasks")
