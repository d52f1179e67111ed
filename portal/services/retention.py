"""Retention: personal data of closed requests is deleted ``RETENTION_DAYS`` after closing.

A request is closed when it is ``complete`` (counted from ``finished_processing_at``), ``denied`` (from
``reviewed_at``) or ``canceled`` (from ``updated_at``, which nothing changes after a cancel). Purging
deletes its manual inputs and their attached files, its access package and its delivery (the subject's link, code and any
send-back reason; mails to the subject still in the outbox lose their address and link), replaces the identity with an empty one, clears the
external id (the requester's ticket in another system: it leads back to the person), the blind indexes (so
the request can no longer be found by email, phone or external id), the free-text denial and cancel reasons,
its internal notes and the reasons given for extending its deadline. The
request row (id, status, policy, dates) and its audit trail stay: they hold no personal data. Every purge
is audited as ``request.purged``.

Deleted rows are gone from the database at once; database backups keep them until the backups expire.
Rotating the encryption key and discarding the old one makes those backups unreadable too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, func, select, update

from portal.execution.sweeper import SWEEPER
from portal.extensions import db
from portal.models import (
    AccessPackage,
    AccessPackageChunk,
    Attachment,
    AttachmentChunk,
    DeadlineExtension,
    ManualInput,
    Notification,
    PackageDelivery,
    PrivacyRequest,
    RequestNote,
    RequestStatus,
    lifecycle,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.services import ValidationFailed

S = RequestStatus
CLOSED_STATUSES = tuple(sorted(s.value for s in lifecycle.CLOSED))


@dataclass(frozen=True)
class Purged:
    request_id: str
    status: str
    closed_at: datetime


def retention_days() -> int:
    days = current_app.config.get("RETENTION_DAYS")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        message = f"RETENTION_DAYS must be a whole number of days, at least 1 (it is {days!r})."
        raise ValidationFailed(message, [(("RETENTION_DAYS",), message)])
    return days


def closed_at_expression():
    """When a request closed, in SQL (see the module docstring)."""
    return func.coalesce(
        case(
            (PrivacyRequest.status == S.COMPLETE.value, PrivacyRequest.finished_processing_at),
            (PrivacyRequest.status == S.DENIED.value, PrivacyRequest.reviewed_at),
            else_=PrivacyRequest.updated_at,
        ),
        PrivacyRequest.updated_at,
    )


def due_for_purge(now: datetime | None = None) -> list[Purged]:
    """Closed requests whose retention period is over and whose data is still there, oldest first."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days())
    closed_at = closed_at_expression().label("closed_at")
    rows = db.session.execute(
        select(PrivacyRequest.id, PrivacyRequest.status, closed_at)
        .where(
            PrivacyRequest.status.in_(CLOSED_STATUSES),
            PrivacyRequest.purged_at.is_(None),
            closed_at_expression() < cutoff,
        )
        .order_by(closed_at, PrivacyRequest.id)
    )
    return [Purged(row.id, row.status, _aware(row.closed_at)) for row in rows]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC for an expression (not a typed column)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def purge_expired(actor: Actor, *, now: datetime | None = None) -> list[Purged]:
    """Purge every request ``due_for_purge``; returns them. The caller commits."""
    now = now or utcnow()
    days = retention_days()
    purged = due_for_purge(now)
    for item in purged:
        inputs = db.session.execute(
            delete(ManualInput).where(ManualInput.privacy_request_id == item.request_id)
        ).rowcount
        attachment_ids = select(Attachment.id).where(Attachment.privacy_request_id == item.request_id)
        db.session.execute(delete(AttachmentChunk).where(AttachmentChunk.attachment_id.in_(attachment_ids)))
        files = db.session.execute(
            delete(Attachment).where(Attachment.privacy_request_id == item.request_id)
        ).rowcount
        package_ids = select(AccessPackage.id).where(AccessPackage.privacy_request_id == item.request_id)
        # The chunks first (the foreign key would cascade too; this does not depend on it).
        db.session.execute(delete(AccessPackageChunk).where(AccessPackageChunk.package_id.in_(package_ids)))
        packages = db.session.execute(
            delete(AccessPackage).where(AccessPackage.privacy_request_id == item.request_id)
        ).rowcount
        # The subject's link, code and any send-back reason go with the package; so do mails to the
        # subject still waiting in the outbox (their address and link).
        deliveries = db.session.execute(
            delete(PackageDelivery).where(PackageDelivery.privacy_request_id == item.request_id)
        ).rowcount
        db.session.execute(
            update(Notification)
            .where(
                Notification.subject_key == item.request_id,
                Notification.user_id.is_(None),
                Notification.status == "pending",
            )
            .values(recipient=None, private_context=None, status="skipped")
            .execution_options(synchronize_session=False)
        )
        notes = db.session.execute(
            delete(RequestNote).where(RequestNote.privacy_request_id == item.request_id)
        ).rowcount
        db.session.execute(
            update(DeadlineExtension)
            .where(DeadlineExtension.privacy_request_id == item.request_id)
            .values(reason=None)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(PrivacyRequest)
            .where(PrivacyRequest.id == item.request_id, PrivacyRequest.purged_at.is_(None))
            .values(
                identity={},
                email_index=None,
                phone_index=None,
                external_id=None,
                external_id_index=None,
                denial_reason=None,
                cancel_reason=None,
                purged_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        record(
            actor,
            "request.purged",
            privacy_request_id=item.request_id,
            retention_days=days,
            status=item.status,
            manual_inputs_deleted=inputs,
            package_deleted=bool(packages),
            delivery_deleted=bool(deliveries),
            notes_deleted=notes,
            attachments_deleted=files,
        )
    db.session.expire_all()
    return purged


def purge_if_enabled(now: datetime | None = None) -> list[Purged]:
    """With PURGE_ON_SWEEP on, apply the retention policy as part of every sweep (commits)."""
    if not current_app.config["PURGE_ON_SWEEP"]:
        return []
    purged = purge_expired(SWEEPER, now=now)
    db.session.commit()
    return purged
