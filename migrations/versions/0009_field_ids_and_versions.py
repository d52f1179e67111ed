"""field ids and versions: every field definition gets a stable id; every field list is kept per version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:00:00.000000

Written by hand; portable between SQLite and PostgreSQL. Forms address fields by their id (never by
position) and carry the version they were built from, so a save against an older list is refused rather
than stored under other labels. ``manual_webhook_versions`` keeps each list a webhook has had, so an entry
saved against an older version can be read with that version's labels. Existing definitions get random
ids, and each webhook's current list becomes its first kept version. The downgrade drops the table and
the ids.
"""

import secrets

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

webhooks = sa.table(
    "manual_webhooks",
    sa.column("id", sa.Integer),
    sa.column("fields", sa.JSON),
    sa.column("version", sa.Integer),
    sa.column("updated_at", sa.DateTime),
)


def upgrade():
    versions = op.create_table(
        "manual_webhook_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["manual_webhooks.id"],
            name=op.f("fk_manual_webhook_versions_webhook_id_manual_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_webhook_versions")),
        sa.UniqueConstraint("webhook_id", "version", name=op.f("uq_manual_webhook_versions_webhook_id")),
    )
    conn = op.get_bind()
    for hook_id, fields, version, updated_at in conn.execute(
        sa.select(webhooks.c.id, webhooks.c.fields, webhooks.c.version, webhooks.c.updated_at)
    ).all():
        with_ids = [{**field, "id": field.get("id") or secrets.token_hex(6)} for field in fields or []]
        conn.execute(webhooks.update().where(webhooks.c.id == hook_id).values(fields=with_ids))
        conn.execute(
            versions.insert().values(
                webhook_id=hook_id, version=version, fields=with_ids, created_at=updated_at
            )
        )


def downgrade():
    conn = op.get_bind()
    for hook_id, fields in conn.execute(sa.select(webhooks.c.id, webhooks.c.fields)).all():
        without = [{k: v for k, v in field.items() if k != "id"} for field in fields or []]
        conn.execute(webhooks.update().where(webhooks.c.id == hook_id).values(fields=without))
    op.drop_table("manual_webhook_versions")
