"""oauth clients: client credentials and the access tokens issued to them, stored as hashes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12 09:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. New tables only. An access token's row goes with
its client (ON DELETE CASCADE), and a client's with the user who created it.
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oauth_clients_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
    )
    op.create_index(op.f("ix_oauth_clients_user_id"), "oauth_clients", ["user_id"])
    op.create_table(
        "oauth_access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_oauth_access_tokens_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_access_tokens_token_hash")),
    )
    op.create_index(op.f("ix_oauth_access_tokens_client_id"), "oauth_access_tokens", ["client_id"])
    op.create_index(op.f("ix_oauth_access_tokens_expires_at"), "oauth_access_tokens", ["expires_at"])


def downgrade():
    op.drop_index(op.f("ix_oauth_access_tokens_expires_at"), table_name="oauth_access_tokens")
    op.drop_index(op.f("ix_oauth_access_tokens_client_id"), table_name="oauth_access_tokens")
    op.drop_table("oauth_access_tokens")
    op.drop_index(op.f("ix_oauth_clients_user_id"), table_name="oauth_clients")
    op.drop_table("oauth_clients")
