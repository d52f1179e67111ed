"""The notification log as an outbox: rows are inserted in the transaction that caused them and sent after
it commits (``delivery``); a sender claims rows with a compare-and-swap, so two senders never send one
row twice. Functions here never commit, except ``claim_due`` (a claim must be seen by other senders).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, and_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import DeliveryMode, Notification, NotificationStatus, Role, User, utcnow
from portal.notifications.kinds import KINDS, REQUEST_ERROR, Kind
from portal.notifications.preferences import receivers

N = Notification
NOTIFICATIONS = Notification.__table__
ST = NotificationStatus
# Set on a session whose transaction inserted notifications: after its commit they are handed to a sender.
PENDING_KEY = "portal.notifications_pending"
# A claim older than this belongs to a sender that died: another one may take the row over.
CLAIM_TIMEOUT = timedelta(minutes=15)
MAX_BACKOFF_SECONDS = 3600
_UNIQUE = [NOTIFICATIONS.c.user_id, NOTIFICATIONS.c.kind, NOTIFICATIONS.c.subject_key, NOTIFICATIONS.c.period]


def _insert(session: Session):
    """INSERT into notifications that skips a row already logged (same user, kind, subject, period)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(NOTIFICATIONS)


def _mark_pending(session: Session) -> None:
    session.info[PENDING_KEY] = True


def enqueue(rows: list[dict[str, Any]], session: Session | None = None, now: datetime | None = None) -> None:
    """Log mails (dicts of user_id, kind, subject_key, period, context) in the caller's transaction, due
    from ``now``; a row whose (user, kind, subject, period) is logged already is left out. Sent after the
    commit."""
    if not rows:
        return
    session = session or db.session()
    now = now or utcnow()
    values = [
        {"status": ST.PENDING.value, "attempts": 0, "next_attempt_at": now, "created_at": now, **row}
        for row in rows
    ]
    session.connection().execute(_insert(session).on_conflict_do_nothing(index_elements=_UNIQUE), values)
    _mark_pending(session)


def enqueue_for_kind(
    kind: Kind, subject_key: str, period: str, context: dict[str, Any], session: Session | None = None
) -> int:
    """Log one mail about ``subject_key`` for everyone who gets ``kind`` immediately, in one INSERT ...
    SELECT whatever the number of users; returns how many were logged.

    Error mails reach someone even if every admin turned them off (which the settings refuse for the last
    one, but a deactivation or demotion can still cause): then every active admin gets them.
    """
    session = session or db.session()
    inserted = _insert_from(session, _logging(kind.name, "immediate"), subject_key, period, context)
    if inserted or kind is not REQUEST_ERROR:
        return inserted
    anyone = receivers(kind, (DeliveryMode.IMMEDIATE, DeliveryMode.DIGEST)).limit(1)
    if session.connection().execute(anyone).first() is not None:
        return 0  # they read it in their digest
    fallback = {**context, "fallback": True}
    return _insert_from(session, _logging(kind.name, "admins"), subject_key, period, fallback)


def enqueue_for_users(
    kind: Kind,
    user_ids: list[int],
    subject_key: str,
    period: str,
    context: dict[str, Any],
    session: Session | None = None,
) -> int:
    """``enqueue_for_kind`` narrowed to these users (a task's assignee, a system's owners): each gets it
    if they take ``kind`` immediately; digest readers find it in their digest's section instead."""
    session = session or db.session()
    statement = _logging(kind.name, "these")
    return _insert_from(session, statement, subject_key, period, context, user_ids=list(user_ids))


@functools.lru_cache(maxsize=128)
def _logging(kind_name: str, who: str):
    """INSERT ... SELECT of one row per receiver of ``kind_name`` (``who``: those taking it immediately,
    ``these`` of them (``:user_ids``), or every active admin), leaving out users who have it logged already.

    A standard INSERT ... SELECT ... WHERE NOT EXISTS rather than the dialects' ON CONFLICT, which
    SQLAlchemy cannot cache: compiling it on every call was an eighth of a resume; built once per kind.
    Its callers (the audit watchers of ``triggers``) log each event under its own moment and run in a
    savepoint, so the unique key on (user, kind, subject, period) settles the one race left.
    """
    kind = KINDS[kind_name]
    if who == "admins":
        users = select(User.id).where(User.active.is_(True), User.role == Role.ADMIN)
    else:
        users = receivers(kind, (DeliveryMode.IMMEDIATE,))
        if who == "these":
            users = users.where(User.id.in_(bindparam("user_ids", expanding=True)))
    ids = users.subquery()
    logged = (
        select(N.id)
        .where(
            N.user_id == ids.c.id,
            N.kind == kind_name,
            N.subject_key == bindparam("subject_key"),
            N.period == bindparam("period"),
        )
        .exists()
    )
    rows = select(
        ids.c.id,
        literal(kind_name),
        bindparam("subject_key"),
        bindparam("period"),
        bindparam("context", type_=JSON),
        literal(ST.PENDING.value),
        literal(0),
        bindparam("now", type_=N.next_attempt_at.type),
        bindparam("now", type_=N.created_at.type),
    ).where(ids.c.id.is_not(None), ~logged)
    columns = ["user_id", "kind", "subject_key", "period", "context", "status", "attempts"]
    columns += ["next_attempt_at", "created_at"]
    return insert(NOTIFICATIONS).from_select(columns, rows).execution_options(preserve_rowcount=True)


def _insert_from(session: Session, statement, subject_key: str, period: str, context, **params) -> int:
    values = {"subject_key": subject_key, "period": period, "context": context, "now": utcnow(), **params}
    inserted = session.connection().execute(statement, values).rowcount
    if inserted:
        _mark_pending(session)
    return inserted


# --- sending: claim, then record the outcome -------------------------------------------------------------


def _claimable(now: datetime):
    return and_(
        N.status == ST.PENDING.value,
        N.next_attempt_at <= now,
        or_(N.claim.is_(None), N.claimed_at < now - CLAIM_TIMEOUT),
    )


def claim_due(now: datetime, limit: int) -> tuple[str, list[int]]:
    """Take up to ``limit`` rows that are due, and commit the claim: (claim, ids).

    The UPDATE repeats the conditions the rows were selected by, so of two senders only one takes each
    row (the other finds it claimed when its turn to write comes). On PostgreSQL the SELECT also locks
    the rows it picks, skipping rows another sender holds, so two senders take different rows. (Two
    statements rather than UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED), which PostgreSQL
    may run more than once and so take more than ``limit`` rows.)
    """
    token = uuid.uuid4().hex
    due = db.session.scalars(
        select(N.id)
        .where(_claimable(now))
        .order_by(N.next_attempt_at, N.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        db.session.commit()
        return token, []
    db.session.execute(
        update(N)
        .where(N.id.in_(due), _claimable(now))
        .values(claim=token, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    ids = db.session.scalars(select(N.id).where(N.claim == token).order_by(N.id)).all()
    return token, list(ids)


def _finish(notification_id: int, token: str, **values) -> bool:
    """Record an outcome on a row we still hold (a sender that took it over after our claim timed out
    wins: its outcome stands)."""
    result = db.session.execute(
        update(N)
        .where(N.id == notification_id, N.claim == token)
        .values(claim=None, claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# A mail to a data subject keeps their address and its secret (a link, a code) only until it is done with.
_FORGET = {"recipient": None, "private_context": None}


def mark_sent(notification_id: int, token: str, now: datetime) -> bool:
    return _finish(
        notification_id, token, status=ST.SENT.value, sent_at=now, attempts=N.attempts + 1, **_FORGET
    )


def mark_skipped(notification_id: int, token: str) -> bool:
    return _finish(notification_id, token, status=ST.SKIPPED.value, **_FORGET)


def backoff_seconds(attempts: int, base: int) -> int:
    """After the ``attempts``-th failed attempt: base, 2 x base, 4 x base ... at most an hour."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def mark_failed_attempt(
    notification_id: int,
    token: str,
    *,
    attempts: int,
    error: str,
    now: datetime,
    permanent: bool,
    max_attempts: int,
    retry_seconds: int,
) -> str:
    """Record a failed attempt (``attempts`` counts it): pending again after a backoff, or failed for good
    once the server refused it permanently or ``max_attempts`` is reached. Returns the new status."""
    give_up = permanent or attempts >= max_attempts
    status = ST.FAILED if give_up else ST.PENDING
    _finish(
        notification_id,
        token,
        status=status.value,
        attempts=attempts,
        last_error=error[:120],
        last_error_at=now,
        next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts, retry_seconds)),
        **(_FORGET if give_up else {}),
    )
    return status.value


def next_attempt_at() -> datetime | None:
    """When the earliest pending row is due (None when nothing waits)."""
    return db.session.scalar(select(func.min(N.next_attempt_at)).where(N.status == ST.PENDING.value))


# --- what admins see -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A mail that could not be delivered: what kind, when, why (type and code), how often; never whom."""

    kind: str
    status: str
    attempts: int
    last_error: str
    last_error_at: datetime
    next_attempt_at: datetime | None


def recent_failures(limit: int = 10) -> list[Failure]:
    rows = db.session.execute(
        select(N.kind, N.status, N.attempts, N.last_error, N.last_error_at, N.next_attempt_at)
        .where(N.last_error_at.is_not(None))
        .order_by(N.last_error_at.desc(), N.id.desc())
        .limit(limit)
    )
    return [
        Failure(
            r.kind,
            r.status,
            r.attempts,
            r.last_error,
            r.last_error_at,
            r.next_attempt_at if r.status == ST.PENDING else None,
        )
        for r in rows
    ]
