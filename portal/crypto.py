"""Encryption at rest: AES-256-GCM with a keyring from config (first key encrypts, all keys decrypt).

Stored format: ``b"\\x01" + key_id(4) + nonce(12) + ciphertext+tag``. ``key_id`` is the first four bytes of
SHA-256 of the key, so rotating keys never needs a guess. A value that cannot be decrypted raises
``DecryptionError``; it is never shown as blank.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask.globals import _cv_app  # the app context variable behind current_app (Flask >= 2.2)

log = logging.getLogger(__name__)

FORMAT_VERSION = b"\x01"
AAD = b"manual-webhook-portal"
KEY_FILE_NAME = "encryption.key"


class EncryptionKeyError(RuntimeError):
    """The configured encryption key is missing or malformed."""


class DecryptionError(RuntimeError):
    """A stored value could not be decrypted with any configured key (corrupted, or wrong key)."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _parse_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError) as exc:
        raise EncryptionKeyError(
            "PORTAL_ENCRYPTION_KEY is not valid url-safe base64; generate one with "
            "`python -c 'import portal.crypto as c; print(c.generate_key())'`."
        ) from exc
    if len(raw) != 32:
        raise EncryptionKeyError(f"PORTAL_ENCRYPTION_KEY must decode to 32 bytes (AES-256), got {len(raw)}.")
    return raw


class Keyring:
    def __init__(self, keys_text: str):
        parts = [p.strip() for p in keys_text.split(",") if p.strip()]
        if not parts:
            raise EncryptionKeyError("PORTAL_ENCRYPTION_KEY is empty.")
        self._texts = parts
        self._keys = [(hashlib.sha256(k).digest()[:4], AESGCM(k)) for k in map(_parse_key, parts)]
        # A separate key for blind indexes (searchable hashes of identities), derived from the first key.
        self._index_key = hashlib.sha256(b"blind-index:" + _parse_key(parts[0])).digest()

    @property
    def first_key_id(self) -> bytes:
        """The id of the key that encrypts, as stored in every value it wrote."""
        return self._keys[0][0]

    def rotated(self, new_key_text: str) -> Keyring:
        """A keyring that encrypts with ``new_key_text`` and still decrypts with every current key."""
        new = [p.strip() for p in new_key_text.split(",") if p.strip()]
        return Keyring(",".join(dict.fromkeys([*new, *self._texts])))

    def config_text(self) -> str:
        """The keys as PORTAL_ENCRYPTION_KEY spells them (secret: for the key file, never for output)."""
        return ",".join(self._texts)

    @staticmethod
    def key_id_of(blob: bytes) -> bytes:
        return bytes(blob[1:5])

    def has_key_id(self, key_id: bytes) -> bool:
        """Whether a value stored under ``key_id`` (see ``key_id_of``) can be decrypted by this keyring."""
        return any(hmac.compare_digest(kid, key_id) for kid, _ in self._keys)

    def encrypt(self, plaintext: bytes) -> bytes:
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        return FORMAT_VERSION + key_id + nonce + aead.encrypt(nonce, plaintext, AAD)

    def decrypt(self, blob: bytes) -> bytes:
        if len(blob) < 1 + 4 + 12 + 16 or blob[:1] != FORMAT_VERSION:
            raise DecryptionError("stored value is not in the portal's encrypted format")
        key_id, nonce, body = blob[1:5], blob[5:17], blob[17:]
        for kid, aead in self._keys:
            if hmac.compare_digest(kid, key_id):
                try:
                    return aead.decrypt(nonce, body, AAD)
                except InvalidTag as exc:
                    raise DecryptionError("stored value is corrupted (authentication failed)") from exc
        raise DecryptionError("stored value was encrypted with a key that is not configured")

    def blind_index(self, value: str, purpose: str = "") -> str:
        """Keyed hash of a normalised value, so it can be searched without being stored in clear.

        ``purpose`` separates kinds of values (an external id's hash never equals an email's); identities
        have none. Stored values never hold NUL, so the separator cannot be forged.
        """
        message = f"{purpose}\x00{value}" if purpose else value
        return hmac.new(self._index_key, message.encode(), hashlib.sha256).hexdigest()


class UndecryptableValue:
    """Stands in for a stored value that cannot be decrypted; any use of it raises ``DecryptionError``.

    Loading a row never fails because one of its encrypted columns is corrupted (a list of requests still
    shows the others), yet the value can never be mistaken for data or for "empty": reading, iterating,
    testing or re-saving it raises. Templates test for it with ``value is undecryptable``.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def _fail(self, *args, **kwargs):
        raise DecryptionError(self.reason)

    __getitem__ = __iter__ = __len__ = __contains__ = __bool__ = _fail
    get = items = keys = values = copy = _fail

    def __eq__(self, other) -> bool:
        return other is self

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<undecryptable: {self.reason}>"


def is_undecryptable(value) -> bool:
    return isinstance(value, UndecryptableValue)


def require_decrypted(value):
    """``value``, or ``DecryptionError`` when it could not be decrypted (before it reaches JSON or a file)."""
    if isinstance(value, UndecryptableValue):
        raise DecryptionError(value.reason)
    return value


_keyring: Keyring | None = None


def init_app(app) -> None:
    """Load the keyring from config, or from/into ``instance/encryption.key`` when unset."""
    global _keyring
    text = app.config.get("ENCRYPTION_KEY")
    if not text:
        path = Path(app.instance_path) / KEY_FILE_NAME
        if path.exists():
            text = path.read_text().strip()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text + "\n")
            log.warning(
                "PORTAL_ENCRYPTION_KEY is not set: generated a new key into %s. Back it up — "
                "without it the stored personal data cannot be read.",
                path,
            )
            app.extensions["portal_keyring_generated"] = str(path)
    _keyring = Keyring(text)
    app.extensions["portal_keyring"] = _keyring


def keyring() -> Keyring:
    """The current app's keyring (or the last one initialised, outside an app context)."""
    context = _cv_app.get(None)  # read for every encrypted value: the context itself, not two proxies
    ring = context.app.extensions.get("portal_keyring") if context is not None else None
    if ring is not None:
        return ring
    if _keyring is None:
        raise EncryptionKeyError("encryption is not initialised; create the app first")
    return _keyring
