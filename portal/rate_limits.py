"""A `limits` storage in the portal's own database: ``RATELIMIT_STORAGE_URI = "database://"``.

Flask-Limiter's memory storage counts in each process, so N gunicorn workers allowed N times every limit.
The database is the one store that every process of every setup shares (Redis exists only with the celery
backend), so without Redis the sign-in limits are counted here. Importing this module registers the
scheme. Counting runs on a connection of its own, committed at once: a count is never part of, nor rolled
back with, the request's transaction.
"""

from __future__ import annotations

import hashlib
import time

from limits.storage import Storage
from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db
from portal.models.rate_limits import RateLimitCounter

COUNTERS = RateLimitCounter.__table__
# Ended windows deleted by one hit, at most: the sweep stays short however many piled up.
SWEEP_BATCH = 500


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class DatabaseStorage(Storage):
    """Fixed-window counters (Flask-Limiter's default strategy) in ``rate_limit_counters``."""

    STORAGE_SCHEME = ["database"]

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        digest = _digest(key)
        insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(COUNTERS)
        ended = COUNTERS.c.expires_at <= now
        upsert = insert.values(key=digest, count=amount, expires_at=now + expiry).on_conflict_do_update(
            index_elements=[COUNTERS.c.key],
            set_={
                "count": case((ended, amount), else_=COUNTERS.c.count + amount),
                "expires_at": case((ended, now + expiry), else_=COUNTERS.c.expires_at),
            },
        )
        # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): two sweeps never wait for, or deadlock
        # on, each other's rows.
        stale = select(COUNTERS.c.key).where(ended).limit(SWEEP_BATCH).with_for_update(skip_locked=True)
        with db.engine.begin() as conn:
            conn.execute(delete(COUNTERS).where(COUNTERS.c.key.in_(stale), COUNTERS.c.key != digest))
            conn.execute(upsert)
            return conn.execute(select(COUNTERS.c.count).where(COUNTERS.c.key == digest)).scalar_one()

    def _current(self, column, key: str):
        with db.engine.connect() as conn:
            return conn.execute(
                select(column).where(COUNTERS.c.key == _digest(key), COUNTERS.c.expires_at > time.time())
            ).scalar()

    def get(self, key: str) -> int:
        return self._current(COUNTERS.c.count, key) or 0

    def get_expiry(self, key: str) -> float:
        return self._current(COUNTERS.c.expires_at, key) or time.time()

    def check(self) -> bool:
        """Whether the table answers; False (not an error) lets Flask-Limiter keep counting in memory."""
        try:
            with db.engine.connect() as conn:
                conn.execute(select(COUNTERS.c.key).limit(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as conn:
            return conn.execute(delete(COUNTERS)).rowcount

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(COUNTERS).where(COUNTERS.c.key == _digest(key)))
