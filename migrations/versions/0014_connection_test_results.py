"""connection test results: when a connection was last tested and whether it worked (fidesops' last_test_*)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:30:00.000000

Written by hand; portable between SQLite and PostgreSQL. Two nullable columns: never tested is NULL.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN, not batch mode: on SQLite batch mode copies the table, and dropping the old
# copy would cascade to the manual webhooks and datasets that reference it.


def upgrade():
    op.add_column(
        "connection_configs", sa.Column("last_test_timestamp", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("connection_configs", sa.Column("last_test_succeeded", sa.Boolean(), nullable=True))


def downgrade():
    op.drop_column("connection_configs", "last_test_succeeded")
    op.drop_column("connection_configs", "last_test_timestamp")
