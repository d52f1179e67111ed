"""Start-up check: refuse to start with an encryption key that cannot read this database.

``create_app`` calls ``verify_encryption_key`` once. When the ``encryption_canary`` table exists and
``VERIFY_ENCRYPTION_KEY`` is on (the default), the canary row (a known plaintext encrypted with the first
key) must decrypt with the configured keyring, else ``ConfigurationError`` names ``PORTAL_ENCRYPTION_KEY``.
Without the check, a wrong or lost key would only show up later, request by request.

When the canary is missing (a database from before the canary, or a fresh one), the newest stored value
of every encrypted column is tried instead: if there are some and none decrypts, the key is wrong; if one
decrypts, the canary is written with the current first key. An empty database has nothing to protect and
gets its canary once it holds data. A database that cannot be reached is not checked (the app then
answers with error pages until it is back, which is what it does anyway).

This is the one query ``create_app`` makes: a deliberate exception to "no queries in the factory", because
refusing to start is the only safe answer to a wrong key.
"""

from __future__ import annotations

import json
import logging
import os

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from portal.crypto import KEY_FILE_NAME, DecryptionError, Keyring, keyring
from portal.extensions import db
from portal.models import EncryptionCanary
from portal.models.canary import CANARY_ID, CANARY_PLAINTEXT
from portal.services.key_rotation import encrypted_columns, raw_table

log = logging.getLogger(__name__)

CANARY_TABLE = EncryptionCanary.__tablename__


def _refusal(app: Flask, what: str) -> str:
    generated = app.extensions.get("portal_keyring_generated")
    hint = (
        f" No key was configured, so a new one was just generated into {generated}: that key cannot read "
        f"data encrypted before. Put the original key into PORTAL_ENCRYPTION_KEY (or {KEY_FILE_NAME})."
        if generated
        else ""
    )
    return (
        f"Refusing to start: PORTAL_ENCRYPTION_KEY cannot decrypt this database ({what}). Set "
        "PORTAL_ENCRYPTION_KEY to the key the data was encrypted with; while rotating keys, list the new "
        f"key first and the old one after it, comma-separated.{hint}"
    )


def _decrypts(ring: Keyring, blob: bytes) -> bool:
    try:
        ring.decrypt(bytes(blob))
    except DecryptionError:
        return False
    return True


def _check(app: Flask) -> None:
    from portal.config import ConfigurationError

    engine = db.engine
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and not os.path.exists(url.database):
        return  # connecting would create an empty file; there is nothing to check yet
    tables = set(sa.inspect(engine).get_table_names())
    if CANARY_TABLE not in tables:
        return  # not migrated this far yet (e.g. during `flask db upgrade`)
    ring = keyring()
    canary = raw_table(CANARY_TABLE, "id", "value")
    with engine.connect() as conn:
        stored = conn.scalar(sa.select(canary.c.value).where(canary.c.id == CANARY_ID))
        if stored is not None:
            try:
                plaintext = json.loads(ring.decrypt(bytes(stored)))
            except DecryptionError as exc:
                raise ConfigurationError(_refusal(app, f"the encryption canary: {exc}")) from None
            if plaintext != CANARY_PLAINTEXT:
                raise ConfigurationError(_refusal(app, "the encryption canary holds an unexpected value"))
            return
        samples = []
        for table, pk, column in encrypted_columns():
            if table in tables and table != CANARY_TABLE:
                t = raw_table(table, pk, column)
                query = sa.select(t.c[column]).where(t.c[column].is_not(None)).order_by(t.c[pk].desc())
                value = conn.scalar(query.limit(1))
                if value is not None:
                    samples.append(value)
    if not samples:
        return
    if not any(_decrypts(ring, blob) for blob in samples):
        raise ConfigurationError(_refusal(app, "none of the newest stored values decrypts"))
    db.session.add(EncryptionCanary(id=CANARY_ID, value=CANARY_PLAINTEXT))
    try:
        db.session.commit()
    except IntegrityError:  # another process starting at the same moment wrote it first
        db.session.rollback()


def verify_encryption_key(app: Flask) -> None:
    if not app.config.get("VERIFY_ENCRYPTION_KEY", True):
        return
    with app.app_context():
        try:
            _check(app)
        except SQLAlchemyError as exc:
            log.warning(
                "Could not check PORTAL_ENCRYPTION_KEY against the database (%s); continuing without "
                "the check.",
                type(exc).__name__,
            )
        finally:
            db.session.remove()
            db.engine.dispose()
