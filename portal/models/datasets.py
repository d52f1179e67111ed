"""Automated collection (S5): fides datasets attached to database connections, and per-run step records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, utcnow
from portal.models.connections import ConnectionConfig


class DatasetConfig(Base):
    """One fides dataset (the normalised YAML document as JSON) attached to a database connection."""

    __tablename__ = "dataset_configs"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_config_id: Mapped[int] = mapped_column(
        ForeignKey("connection_configs.id", ondelete="CASCADE"), index=True
    )
    # Unique across connections: references name datasets by fides_key alone.
    fides_key: Mapped[str] = mapped_column(String(200), unique=True)
    dataset: Mapped[dict[str, Any]]
    # "fidesops_meta" when the client wrote that older name: answers then echo it beside ``fides_meta``.
    meta_name: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    connection_config: Mapped[ConnectionConfig] = relationship()


class CollectionStep(Base):
    """What one connection did in one collection run of a request: rows found, time taken, or the error.

    ``connection_key`` has no foreign key: the record outlives the connection it names. ``row_counts`` maps
    ``"<fides_key>:<collection>"`` to a count; no collected value is ever stored here.
    """

    __tablename__ = "collection_steps"
    __table_args__ = (Index("ix_collection_steps_request_run", "privacy_request_id", "run"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    run: Mapped[int]  # 1 for the first collection attempt of the request, 2 after a retry, ...
    connection_key: Mapped[str] = mapped_column(String(200))
    connection_name: Mapped[str] = mapped_column(String(200))
    rows_found: Mapped[int] = mapped_column(default=0)
    row_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def succeeded(self) -> bool:
        return self.error is None
