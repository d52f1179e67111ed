"""No lost requests: requeue runs that a dead worker or a down broker left behind.

``sweep()`` runs from Celery beat (every ``SWEEP_INTERVAL_SECONDS``) or from cron (``flask sweep``). It
finds

- ``stale_claim``: requests ``in_processing`` whose run was claimed more than ``RUN_TIMEOUT_SECONDS`` ago
  (the worker was killed). The claim is cleared — the status stays ``in_processing`` with no claim, which
  the runner accepts — so the next task can claim it; a still-living slow run finds its claim gone and
  throws its result away.
- ``not_queued``: runnable requests nobody has claimed for more than ``SWEEP_GRACE_SECONDS`` — ``approved``,
  ``pending`` when approval is off, and ``in_processing`` without a claim (resumed) — typically because the
  broker was down when they were queued.

Each requeue is a compare-and-swap on the row (two sweepers never requeue one request twice), bumps
``updated_at`` (the next sweep waits another grace period), is audited ``request.requeued`` with its reason,
and is enqueued after the commit. Queueing a request that is already queued is harmless: the runner's claim
lets only one task run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, lifecycle, utcnow
from portal.models.audit import Actor

S = RequestStatus
SWEEPER = Actor.system("sweeper")


@dataclass(frozen=True)
class Requeued:
    request_id: str
    reason: str  # stale_claim | not_queued
    enqueued: bool = True


def _stale_claims(now: datetime) -> list[tuple[str, str]]:
    cutoff = now - timedelta(seconds=current_app.config["RUN_TIMEOUT_SECONDS"])
    rows = db.session.execute(
        select(PrivacyRequest.id, PrivacyRequest.runner_claim)
        .where(
            PrivacyRequest.status == S.IN_PROCESSING,
            PrivacyRequest.runner_claim.is_not(None),
            PrivacyRequest.claimed_at < cutoff,
        )
        .order_by(PrivacyRequest.claimed_at)
    )
    return [(row.id, row.runner_claim) for row in rows]


def _runnable() -> set[RequestStatus]:
    """What a run may start from (in_processing only without a claim)."""
    return {S.APPROVED, S.IN_PROCESSING} | (
        {S.PENDING} if not current_app.config["REQUIRE_APPROVAL"] else set()
    )


def _waiting_for_a_run():
    return and_(PrivacyRequest.status.in_(_runnable()), PrivacyRequest.runner_claim.is_(None))


def _not_queued(now: datetime) -> list[tuple[str, datetime]]:
    cutoff = now - timedelta(seconds=current_app.config["SWEEP_GRACE_SECONDS"])
    rows = db.session.execute(
        select(PrivacyRequest.id, PrivacyRequest.updated_at)
        .where(_waiting_for_a_run(), PrivacyRequest.updated_at < cutoff)
        .order_by(PrivacyRequest.updated_at)
    )
    return [(row.id, row.updated_at) for row in rows]


def sweep(now: datetime | None = None) -> list[Requeued]:
    """Requeue every lost run (commits); returns what was requeued, in order."""
    now = now or utcnow()
    taken: list[tuple[str, str]] = []
    for request_id, claim in _stale_claims(now):
        if lifecycle.change(
            request_id,
            "requeue",
            SWEEPER,
            sources={S.IN_PROCESSING},
            claimed_by=claim,
            details={"reason": "stale_claim"},
            at=now,
        ):
            taken.append((request_id, "stale_claim"))
    for request_id, updated_at in _not_queued(now):
        # Unchanged since we looked: not claimed, resumed, canceled or requeued by another sweeper.
        if lifecycle.change(
            request_id,
            "requeue",
            SWEEPER,
            sources=_runnable(),
            unclaimed=True,
            unchanged_since=updated_at,
            details={"reason": "not_queued"},
            at=now,
        ):
            taken.append((request_id, "not_queued"))
    db.session.commit()
    return [Requeued(rid, reason, dispatch.enqueue(rid)) for rid, reason in taken]
