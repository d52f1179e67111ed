"""package deliveries by state: the sweep reads the approved ones, oldest first, from an index

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 03:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. The sweep (every minute) looks for approved
deliveries whose copy is still to be written; without an index it read every delivery, one per completed
request.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_package_deliveries_state_updated", "package_deliveries", ["state", "updated_at"])


def downgrade():
    op.drop_index("ix_package_deliveries_state_updated", table_name="package_deliveries")
