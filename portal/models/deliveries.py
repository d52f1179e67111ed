"""Package delivery: a completed request's package is reviewed, then released to the data subject.

One row per request, created when a reviewer first acts on its package (before that a completed request's
package is *ready for review*). The request's own status stays ``complete`` throughout: the delivery has a
state of its own. The subject's link is a random token stored only as its SHA-256; the six-digit code that
proves they hold the address is stored as a keyed hash (HMAC with the secret key: a plain hash of a
six-digit number is reversed in a second), expires, and locks the link after too many wrong tries.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedText, utcnow


class DeliveryState(enum.StrEnum):
    READY_FOR_REVIEW = "ready_for_review"
    SENT_BACK = "sent_back"  # the request is back in requires_input; a new completion makes it ready again
    APPROVED = "approved"  # released; the storage copy (if configured) is being written
    DELIVERED = "delivered"  # released, and written to the release destination if one is configured
    DELIVERY_FAILED = "delivery_failed"  # released, but the release destination refused it: retryable


DELIVERY_STATES = tuple(s.value for s in DeliveryState)


class PackageDelivery(Base):
    __tablename__ = "package_deliveries"
    __table_args__ = (
        CheckConstraint(f"state IN {DELIVERY_STATES!r}", name="state_valid"),
        # The sweep's copies to write (approved, oldest first): read from here, not from every delivery.
        Index("ix_package_deliveries_state_updated", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(32), default=DeliveryState.READY_FOR_REVIEW.value)
    reviewed_by_label: Mapped[str | None] = mapped_column(String(300))
    reviewed_at: Mapped[datetime | None]
    # A send-back: the connection keys named, and why (free text about the subject's data: encrypted).
    sent_back_systems: Mapped[list[str] | None] = mapped_column(JSON)
    send_back_reason: Mapped[str | None] = mapped_column(EncryptedText)
    # The subject's link: only the SHA-256 of the token is kept.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None]
    token_revoked_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]  # too many wrong codes: the link is dead
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    code_attempts: Mapped[int] = mapped_column(default=0)
    # The copy written to the release destination (PORTAL_RELEASE_STORAGE_KEY).
    storage_key: Mapped[str | None] = mapped_column(String(200))
    storage_location: Mapped[str | None] = mapped_column(Text)
    storage_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
