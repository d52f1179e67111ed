"""Storage destinations: where released access packages can be written (fidesops' ``StorageConfig``)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedJSON, utcnow


class StorageType(enum.StrEnum):
    LOCAL = "local"
    S3 = "s3"


class StorageFormat(enum.StrEnum):
    """fidesops' ``ResponseFormat``: ``json`` writes the package JSON, ``csv`` the ZIP of CSV files."""

    JSON = "json"
    CSV = "csv"


STORAGE_TYPES = tuple(t.value for t in StorageType)
STORAGE_FORMATS = tuple(f.value for f in StorageFormat)


class StorageConfig(Base):
    """One destination. ``details`` holds no secret (bucket, naming, directory...); ``secrets`` is encrypted."""

    __tablename__ = "storage_configs"
    __table_args__ = (
        CheckConstraint(f"type IN {STORAGE_TYPES!r}", name="type_valid"),
        CheckConstraint(f"format IN {STORAGE_FORMATS!r}", name="format_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8), default=StorageFormat.JSON.value)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[Any | None] = mapped_column(EncryptedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
