"""Rate-limit counters kept in the portal's database, for setups without Redis (``portal.rate_limits``)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base


class RateLimitCounter(Base):
    """One fixed window of one limit: how many hits it has had, and when (epoch seconds) it ends.

    ``key`` is a SHA-256 of the limiter's key, so neither an address nor an account is stored. Rows of
    ended windows are deleted by the next hit of any limit.
    """

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int]
    expires_at: Mapped[float] = mapped_column(index=True)
