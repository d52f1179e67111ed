"""policy rules and rule targets (fidesops' Rule and RuleTarget), a policy's DRP action, and which name
of the dataset metadata key a client wrote (fides_meta or fidesops_meta)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 22:10:00.000000

Written by hand; portable between SQLite and PostgreSQL. New tables, two new nullable columns, a unique index
on one (no batch mode: rebuilding ``policies`` on SQLite would cascade into its children).
"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    referred = target.partition(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete
    )


def upgrade():
    op.add_column("dataset_configs", sa.Column("meta_name", sa.String(length=16), nullable=True))
    op.add_column("policies", sa.Column("drp_action", sa.String(length=32), nullable=True))
    op.create_index("ix_policies_drp_action", "policies", ["drp_action"], unique=True)
    op.create_table(
        "policy_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("action_type", sa.String(length=16), nullable=False),
        sa.Column("storage_config_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action_type = 'access'", name=op.f("ck_policy_rules_action_type_valid")),
        _fk("policy_rules", "policy_id", "policies.id", "CASCADE"),
        _fk("policy_rules", "storage_config_id", "storage_configs.id", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_rules")),
        sa.UniqueConstraint("key", name=op.f("uq_policy_rules_key")),
    )
    op.create_index(op.f("ix_policy_rules_policy_id"), "policy_rules", ["policy_id"])
    op.create_index(op.f("ix_policy_rules_storage_config_id"), "policy_rules", ["storage_config_id"])
    op.create_table(
        "rule_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("data_category", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("rule_targets", "rule_id", "policy_rules.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_targets")),
        sa.UniqueConstraint("key", name=op.f("uq_rule_targets_key")),
        sa.UniqueConstraint("rule_id", "data_category", name=op.f("uq_rule_targets_rule_id")),
    )


def downgrade():
    op.drop_table("rule_targets")
    op.drop_index(op.f("ix_policy_rules_storage_config_id"), table_name="policy_rules")
    op.drop_index(op.f("ix_policy_rules_policy_id"), table_name="policy_rules")
    op.drop_table("policy_rules")
    op.drop_index("ix_policies_drp_action", table_name="policies")
    op.drop_column("policies", "drp_action")  # ALTER TABLE ... DROP COLUMN (SQLite 3.35+)
    op.drop_column("dataset_configs", "meta_name")
