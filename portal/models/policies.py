"""Policies (S2): what a privacy request does and how long the company has to answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, utcnow

DEFAULT_ACCESS_POLICY_KEY = "default_access_policy"
ACTION_TYPES = ("access", "erasure")


class Policy(Base):
    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(f"action_type IN {ACTION_TYPES!r}", name="action_type_valid"),
        CheckConstraint("days_to_respond > 0", name="days_to_respond_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    action_type: Mapped[str] = mapped_column(String(16), default="access")
    days_to_respond: Mapped[int] = mapped_column(default=30)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
