"""The team workflow: a task per (request, manual system) that waits for input, who owns each manual
system by default, the internal notes on a request, and the extensions of its deadline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedText, utcnow

TASK_OPEN = "open"
TASK_DONE = "done"  # the system's entry is saved against its current fields
TASK_CLOSED = "closed"  # the request no longer needs it (completed or canceled)
TASK_STATES = (TASK_OPEN, TASK_DONE, TASK_CLOSED)


class Task(Base):
    """One manual system of one request that waits (or waited) for input, and who works on it."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("privacy_request_id", "connection_config_id"),
        CheckConstraint(f"state IN {TASK_STATES!r}", name="state_valid"),
        # Each order the task lists use, ending in ``id``: a page is read from the index, never sorted.
        Index("ix_tasks_state_assignee_due_id", "state", "assignee_id", "due_date", "id"),
        Index("ix_tasks_state_due_id", "state", "due_date", "id"),
        Index("ix_tasks_state_connection_due_id", "state", "connection_config_id", "due_date", "id"),
        # One system's unassigned (or one person's) tasks: without it, the unassigned tasks of a system with
        # few of them were found by reading every unassigned task (0.3 s at 100k requests).
        Index(
            "ix_tasks_state_connection_assignee_due_id",
            "state",
            "connection_config_id",
            "assignee_id",
            "due_date",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    connection_config_id: Mapped[int] = mapped_column(ForeignKey("connection_configs.id", ondelete="CASCADE"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=TASK_OPEN)
    # The request's due date, kept here so a list of tasks is ordered by the index (an extension moves both).
    due_date: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookOwner(Base):
    """A default owner of a manual system: new tasks of that system go to one of its owners."""

    __tablename__ = "webhook_owners"

    connection_config_id: Mapped[int] = mapped_column(
        ForeignKey("connection_configs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RequestNote(Base):
    """An internal note on a request. Its text may hold personal data: encrypted, purged by retention."""

    __tablename__ = "request_notes"
    __table_args__ = (Index("ix_request_notes_request_time", "privacy_request_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_label: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


EXTENSION_PRESETS = ("gdpr", "ccpa", "custom")


class DeadlineExtension(Base):
    """One extension of a request's deadline: from which date to which, under which rule, and why."""

    __tablename__ = "deadline_extensions"
    __table_args__ = (
        CheckConstraint(f"preset IN {EXTENSION_PRESETS!r}", name="preset_valid"),
        Index("ix_deadline_extensions_request_time", "privacy_request_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    privacy_request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    preset: Mapped[str] = mapped_column(String(16))
    previous_due_date: Mapped[datetime]
    new_due_date: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(EncryptedText)  # free text about the request: purged
    subject_told_at: Mapped[datetime | None]  # when the subject was told (None: not told)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_label: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
