"""Attachments: files staff upload as the value of a ``file`` field, stored as encrypted chunks.

An entry (``ManualInput.values``) holds references to its files (id, name, type, size, SHA-256), never
their bytes. The bytes are in ``attachment_chunks``: pieces of at most ``ATTACHMENT_CHUNK_BYTES`` in order
(``seq``), each encrypted on its own like a package chunk, so uploads and downloads stream and key rotation
re-encrypts a file piece by piece. ``meta`` (the file name, type, size and hash) is encrypted too: a file
name is personal data ("Jane Doe - medical form.pdf").

An attachment belongs to one request and one manual connection; it lives as long as an entry refers to it
(a save that drops it deletes it) and goes with the request's personal data when it is purged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedBytes, EncryptedJSON, utcnow

ATTACHMENT_CHUNK_BYTES = 1024 * 1024


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_request_connection", "privacy_request_id", "connection_config_id"),
    )

    # Random and opaque ("att_" + 32 hex digits): it is what URLs carry instead of the file's name.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    connection_config_id: Mapped[int] = mapped_column(ForeignKey("connection_configs.id", ondelete="CASCADE"))
    # {"file_name", "type", "size", "sha256"}: the same reference the entry holds.
    meta: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttachmentChunk(Base):
    """One piece of a file's bytes, encrypted (see the module docstring)."""

    __tablename__ = "attachment_chunks"
    __table_args__ = (UniqueConstraint("attachment_id", "seq"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    attachment_id: Mapped[str] = mapped_column(ForeignKey("attachments.id", ondelete="CASCADE"))
    seq: Mapped[int]
    data: Mapped[bytes] = mapped_column(EncryptedBytes)
