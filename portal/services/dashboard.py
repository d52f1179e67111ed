"""What each role should look at first (read-only summaries for the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    ConnectionConfig,
    ConnectionType,
    ManualWebhook,
    PackageDelivery,
    PrivacyRequest,
    RequestStatus,
    lifecycle,
)
from portal.services import delivery, request_lists
from portal.services.request_lists import Page

S = RequestStatus


def start_of_day(now: datetime) -> datetime:
    """Deadlines are counted in UTC calendar days (as the queue's "overdue by N days" badge does)."""
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def overdue_count(now: datetime) -> int:
    """Open requests whose due date is a day before today (UTC) or earlier."""
    return db.session.scalar(
        select(func.count())
        .select_from(PrivacyRequest)
        .where(
            PrivacyRequest.status.in_(lifecycle.OPEN_VALUES),
            PrivacyRequest.due_date < start_of_day(now),
        )
    )


def status_count(status: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(PrivacyRequest).where(PrivacyRequest.status == status)
    )


@dataclass(frozen=True)
class Queue:
    """The first requests waiting for input (soonest due first) and their manual-input progress."""

    page: Page
    done: dict[str, int]
    systems: int


def input_queue(limit: int = 5) -> Queue:
    page = request_lists.list_requests(statuses=[S.REQUIRES_INPUT.value], size=limit, with_progress=True)
    return Queue(page, page.done, page.systems)


def webhooks_missing_fields() -> list[ConnectionConfig]:
    """Enabled manual webhooks without fields: requests do not wait for them, which is rarely meant."""
    rows = db.session.execute(
        select(ConnectionConfig, ManualWebhook)
        .outerjoin(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
        .where(
            ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK,
            ConnectionConfig.disabled.is_(False),
        )
        .order_by(ConnectionConfig.name)
    ).all()
    return [conn for conn, webhook in rows if webhook is None or not webhook.fields]


def errored_requests(limit: int = 5) -> Page:
    return request_lists.list_requests(statuses=[S.ERROR.value], size=limit, order="newest")


def ready_packages(limit: int = 5) -> Page:
    """Completed requests, the most recently completed first."""
    return request_lists.list_requests(statuses=[S.COMPLETE.value], size=limit, order="completed")


def packages_to_review(limit: int = 5) -> Page:
    """Completed requests whose package waits for a reviewer (never reviewed, or sent back and complete
    again), the most recently completed first."""
    waiting = (
        select(PrivacyRequest.id, PrivacyRequest.status, PrivacyRequest.finished_processing_at)
        .outerjoin(PackageDelivery, PackageDelivery.privacy_request_id == PrivacyRequest.id)
        .where(
            PrivacyRequest.status == S.COMPLETE.value,
            PrivacyRequest.purged_at.is_(None),
            PackageDelivery.id.is_(None) | PackageDelivery.state.in_(delivery.OPEN_STATES),
        )
    )
    items = db.session.execute(
        waiting.order_by(PrivacyRequest.finished_processing_at.desc(), PrivacyRequest.id.desc()).limit(limit)
    ).all()
    count = select(func.count()).select_from(waiting.subquery())
    total = request_lists.count_total(count, {}, ("packages_to_review",))
    return Page(items, total, 1, limit)
