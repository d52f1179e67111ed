"""Privacy requests (S2, S4) and the manual data entered for them (their packages: ``packages.py``)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, EncryptedJSON, EncryptedText, utcnow
from portal.models.connections import ConnectionConfig
from portal.models.policies import Policy
from portal.models.users import User

if TYPE_CHECKING:
    from portal.models.packages import AccessPackage


class RequestStatus(enum.StrEnum):
    """fidesops' own status values."""

    IDENTITY_UNVERIFIED = "identity_unverified"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    IN_PROCESSING = "in_processing"
    REQUIRES_INPUT = "requires_input"
    PAUSED = "paused"
    COMPLETE = "complete"
    CANCELED = "canceled"
    ERROR = "error"


STATUS_VALUES = tuple(s.value for s in RequestStatus)


def new_request_id() -> str:
    return f"pri_{uuid.uuid4()}"


class PrivacyRequest(Base):
    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUS_VALUES!r}", name="status_valid"),
        # Each order the lists use, ending in ``id``: a page is read from the index, never sorted.
        Index("ix_privacy_requests_status_due_id", "status", "due_date", "id"),
        Index("ix_privacy_requests_due_id", "due_date", "id"),
        Index("ix_privacy_requests_created_id", "created_at", "id"),
        Index(
            "ix_privacy_requests_status_finished_id", "status", "finished_processing_at", "created_at", "id"
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_request_id)
    # The requester's id in another system (a CRM ticket): it leads back to the person, so it is
    # encrypted, searched through its keyed hash (case-insensitive) and purged like the identity.
    external_id: Mapped[str | None] = mapped_column(EncryptedText)
    external_id_index: Mapped[str | None] = mapped_column(String(64), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    # {"email": ..., "phone_number": ...}, encrypted. The *_index columns are keyed hashes for search.
    identity: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    email_index: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), default=RequestStatus.PENDING.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    due_date: Mapped[datetime]
    started_processing_at: Mapped[datetime | None]
    finished_processing_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None]
    denial_reason: Mapped[str | None] = mapped_column(EncryptedText)  # free text about the subject
    cancel_reason: Mapped[str | None] = mapped_column(EncryptedText)  # free text too: purged likewise
    error_message: Mapped[str | None] = mapped_column(Text)
    # Set by the runner that owns the current run (compare-and-swap); cleared when the run stops.
    runner_claim: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    # Set by `flask purge` (retention): the identity, manual inputs and package are gone since then.
    purged_at: Mapped[datetime | None]

    policy: Mapped[Policy] = relationship()
    reviewed_by: Mapped[User | None] = relationship()
    manual_inputs: Mapped[list[ManualInput]] = relationship(
        back_populates="privacy_request", cascade="all, delete-orphan", passive_deletes=True
    )
    # One way only (no back-reference), so portal.models.packages need not import this module.
    package: Mapped[AccessPackage | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class ManualInput(Base):
    """What staff entered for one (request, manual connection); replaced on every save."""

    __tablename__ = "manual_inputs"
    __table_args__ = (
        UniqueConstraint("privacy_request_id", "connection_config_id"),
        # Progress counts (current-version inputs, not sent back, per request) from the index alone:
        # migrations 0007 and 0020.
        Index(
            "ix_manual_inputs_progress",
            "privacy_request_id",
            "connection_config_id",
            "version",
            "sent_back_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    connection_config_id: Mapped[int] = mapped_column(
        ForeignKey("connection_configs.id", ondelete="CASCADE"), index=True
    )
    values: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)  # label → str | None
    version: Mapped[int]
    entered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    entered_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    entered_by_label: Mapped[str] = mapped_column(String(300))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a reviewer sends the package back naming this system: the entry must be saved again
    # before the request can resume (a save clears it).
    sent_back_at: Mapped[datetime | None]

    privacy_request: Mapped[PrivacyRequest] = relationship(back_populates="manual_inputs")
    connection_config: Mapped[ConnectionConfig] = relationship()
