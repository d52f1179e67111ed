"""The encryption canary: a known plaintext encrypted with the portal's key, checked at start-up.

A process started with a wrong or missing ``PORTAL_ENCRYPTION_KEY`` cannot decrypt it, and refuses to start
(``portal.key_check``) instead of serving data it cannot read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, EncryptedJSON, utcnow

CANARY_ID = 1
CANARY_PLAINTEXT = "manual-webhook-portal encryption canary v1"


class EncryptionCanary(Base):
    __tablename__ = "encryption_canary"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Re-encrypted with every other encrypted column by `flask rotate-encryption-key`.
    value: Mapped[Any] = mapped_column(EncryptedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
