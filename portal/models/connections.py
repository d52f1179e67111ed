"""Connections (S2): every system the portal collects from, and the manual webhook of a manual one."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, EncryptedJSON, utcnow


class ConnectionType(enum.StrEnum):
    MANUAL_WEBHOOK = "manual_webhook"
    POSTGRES = "postgres"
    MYSQL = "mysql"
    SQLITE = "sqlite"


class AccessLevel(enum.StrEnum):
    READ = "read"
    WRITE = "write"


CONNECTION_TYPES = tuple(t.value for t in ConnectionType)
ACCESS_LEVELS = tuple(a.value for a in AccessLevel)


class ConnectionConfig(Base):
    __tablename__ = "connection_configs"
    __table_args__ = (
        CheckConstraint(f"connection_type IN {CONNECTION_TYPES!r}", name="connection_type_valid"),
        CheckConstraint(f"access IN {ACCESS_LEVELS!r}", name="access_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(String(2000))
    connection_type: Mapped[str] = mapped_column(String(32))
    access: Mapped[str] = mapped_column(String(16), default=AccessLevel.READ.value)
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_at: Mapped[datetime | None]
    # The last connection test (fidesops' last_test_*): NULL until one ran.
    last_test_timestamp: Mapped[datetime | None]
    last_test_succeeded: Mapped[bool | None]
    secrets: Mapped[Any | None] = mapped_column(EncryptedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    manual_webhook: Mapped[ManualWebhook | None] = relationship(
        back_populates="connection_config", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def enabled(self) -> bool:
        return not self.disabled


class ManualWebhook(Base):
    """The ordered field definitions of a manual connection; ``version`` grows with every change.

    Each definition carries a stable ``id`` that survives renames and reorders: forms address fields by
    it, and ``versions`` keeps every list the webhook has had, so an entry's labels can be read at the
    version it was saved against.
    """

    __tablename__ = "manual_webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_config_id: Mapped[int] = mapped_column(
        ForeignKey("connection_configs.id", ondelete="CASCADE"), unique=True
    )
    fields: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    connection_config: Mapped[ConnectionConfig] = relationship(back_populates="manual_webhook")

    @property
    def labels(self) -> list[str]:
        return [f["dsr_package_label"] for f in self.fields]


class ManualWebhookVersion(Base):
    """The field list of one webhook at one version (immutable once written)."""

    __tablename__ = "manual_webhook_versions"
    __table_args__ = (UniqueConstraint("webhook_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("manual_webhooks.id", ondelete="CASCADE"))
    version: Mapped[int]
    fields: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
