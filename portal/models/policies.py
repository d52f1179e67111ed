"""Policies (S2): what a privacy request does and how long the company has to answer; their rules (where
an access package is written) and each rule's targets (the data categories it covers), as fidesops has
them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, utcnow

DEFAULT_ACCESS_POLICY_KEY = "default_access_policy"
ACTION_TYPES = ("access", "erasure")
# The portal answers access requests only: a rule of another action type is refused by the service.
RULE_ACTION_TYPE = "access"


class Policy(Base):
    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(f"action_type IN {ACTION_TYPES!r}", name="action_type_valid"),
        CheckConstraint("days_to_respond > 0", name="days_to_respond_positive"),
        # One policy per DRP action, as in fidesops; an index, as a constraint cannot be added in place on SQLite.
        Index("ix_policies_drp_action", "drp_action", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    action_type: Mapped[str] = mapped_column(String(16), default="access")
    days_to_respond: Mapped[int] = mapped_column(default=30)
    drp_action: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rules: Mapped[list[PolicyRule]] = relationship(
        back_populates="policy", order_by="PolicyRule.id", cascade="all, delete-orphan", passive_deletes=True
    )


class PolicyRule(Base):
    """What a policy does with data: an access rule names the storage destination its packages go to.

    Keys are unique across policies, as in fidesops, so a key names one rule wherever it is used."""

    __tablename__ = "policy_rules"
    __table_args__ = (CheckConstraint(f"action_type = '{RULE_ACTION_TYPE}'", name="action_type_valid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    action_type: Mapped[str] = mapped_column(String(16), default="access")
    # RESTRICT: a destination in use by a rule is not deleted from under it (the storage service says so).
    storage_config_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_configs.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    policy: Mapped[Policy] = relationship(back_populates="rules")
    storage_destination = relationship("StorageConfig", lazy="joined")
    targets: Mapped[list[RuleTarget]] = relationship(
        back_populates="rule", order_by="RuleTarget.id", cascade="all, delete-orphan", passive_deletes=True
    )


class RuleTarget(Base):
    """A data category (fideslang's taxonomy) that a rule covers; once per rule."""

    __tablename__ = "rule_targets"
    __table_args__ = (UniqueConstraint("rule_id", "data_category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("policy_rules.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    data_category: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rule: Mapped[PolicyRule] = relationship(back_populates="targets")
