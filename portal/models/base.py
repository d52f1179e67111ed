"""Declarative base, naming convention, and the column types every model shares."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, LargeBinary, MetaData
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value) -> str | None:
    """A time (or date) as ISO 8601 in JSON answers; None stays None."""
    return value.isoformat() if value is not None else None


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, also on SQLite (which stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Encrypted(TypeDecorator):
    """A value encrypted with the portal keyring (AES-GCM) before it reaches the database.

    Key rotation finds every column of this type; ``rotation_batch`` caps how many of its values one
    rotation batch loads (``None``: the caller's batch size), for columns whose values are large.
    """

    impl = LargeBinary
    cache_ok = True
    rotation_batch: int | None = None


class EncryptedJSON(Encrypted):
    """Any JSON value, encrypted with the portal keyring (AES-GCM) before it reaches the database."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> bytes | None:
        if value is None:
            return None
        from portal.crypto import DecryptionError, is_undecryptable, keyring

        if is_undecryptable(value):
            raise DecryptionError(f"refusing to store a value that could not be decrypted ({value.reason})")
        return keyring().encrypt(json.dumps(value, ensure_ascii=False).encode())

    def process_result_value(self, value: bytes | None, dialect) -> Any:
        """The value, or an ``UndecryptableValue`` (never a blank) when it cannot be decrypted."""
        if value is None:
            return None
        from portal.crypto import DecryptionError, UndecryptableValue, keyring

        try:
            return json.loads(keyring().decrypt(bytes(value)).decode())
        except DecryptionError as exc:
            return UndecryptableValue(str(exc))


class EncryptedText(Encrypted):
    """Text, encrypted with the portal keyring; read back as str, or an ``UndecryptableValue``.

    Never compare such a column with a value in SQL (each encryption differs): search its blind index.
    """

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> bytes | None:
        if value is None:
            return None
        from portal.crypto import DecryptionError, is_undecryptable, keyring

        if is_undecryptable(value):
            raise DecryptionError(f"refusing to store a value that could not be decrypted ({value.reason})")
        return keyring().encrypt(value.encode())

    def process_result_value(self, value: bytes | None, dialect) -> Any:
        if value is None:
            return None
        from portal.crypto import DecryptionError, UndecryptableValue, keyring

        try:
            return keyring().decrypt(bytes(value)).decode()
        except DecryptionError as exc:
            return UndecryptableValue(str(exc))


class EncryptedBytes(Encrypted):
    """Bytes, encrypted with the portal keyring; read back as bytes, or an ``UndecryptableValue``.

    For large values (package chunks, up to about 1 MB each): key rotation loads 4 of them at a time.
    """

    cache_ok = True
    rotation_batch = 4

    def process_bind_param(self, value: bytes | None, dialect) -> bytes | None:
        if value is None:
            return None
        from portal.crypto import keyring

        return keyring().encrypt(bytes(value))

    def process_result_value(self, value: bytes | None, dialect) -> Any:
        if value is None:
            return None
        from portal.crypto import DecryptionError, UndecryptableValue, keyring

        try:
            return keyring().decrypt(bytes(value))
        except DecryptionError as exc:
            return UndecryptableValue(str(exc))


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON},
    )
