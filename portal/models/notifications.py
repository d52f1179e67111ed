"""Notifications (S10): the mail log / outbox, and each user's choice per kind of mail.

A ``Notification`` row is one mail to one person. It is inserted in the transaction that caused it (so
nothing is sent for work that rolled back) and sent after that transaction commits. The unique key
(user, kind, subject, period) makes a digest or reminder go out once even when two senders build it at
the same moment. Rows never hold personal data of a data subject: request ids, system names and dates.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedJSON, EncryptedText, utcnow


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up: too many attempts, or the server refused it for good (5xx)
    SKIPPED = "skipped"  # not sent: the recipient was deactivated or turned the kind off meanwhile


class DeliveryMode(enum.StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"
    OFF = "off"


NOTIFICATION_STATUSES = tuple(s.value for s in NotificationStatus)
DELIVERY_MODES = tuple(m.value for m in DeliveryMode)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "subject_key", "period"),
        CheckConstraint(f"status IN {NOTIFICATION_STATUSES!r}", name="status_valid"),
        # The sender's claim query: pending rows whose next attempt is due.
        Index("ix_notifications_status_next_attempt", "status", "next_attempt_at"),
        # "Is today's digest built?" without reading every user's rows.
        Index("ix_notifications_kind_period", "kind", "period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for a mail to a data subject (their package link or code): ``recipient`` holds the address.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # What the mail is about: a request id, or "daily" for the digest.
    subject_key: Mapped[str] = mapped_column(String(64))
    # When: the digest's date, or the moment of the event for a mail about one request.
    period: Mapped[str] = mapped_column(String(32))
    # What the mail says, without personal data: request ids, system names, dates, counts.
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by the sender that took the row (compare-and-swap); a claim older than the sender's timeout
    # is taken over (the sender died).
    claim: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None]
    # The exception's type and the SMTP reply code only: server messages can quote the recipient.
    last_error: Mapped[str | None] = mapped_column(String(120))
    last_error_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # A mail to a data subject: their address and what only that mail may say (the link's token, the
    # code), encrypted, and cleared once the row is sent or given up.
    recipient: Mapped[str | None] = mapped_column(EncryptedText)
    private_context: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)


class NotificationPreference(Base):
    """A user's own choice for one kind of mail; without a row, the kind's default for their role."""

    __tablename__ = "notification_preferences"
    __table_args__ = (CheckConstraint(f"mode IN {DELIVERY_MODES!r}", name="mode_valid"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
