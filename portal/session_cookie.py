"""The browser session cookie: Flask's signed cookie, its payload compact JSON, never compressed.

Flask's default serializer tags every value so that tuples, bytes, datetimes and markup survive the round
trip, and itsdangerous tries zlib on every payload; together they were 6% of a form save's instructions
(issue 9), for a session that only ever holds strings, numbers, booleans and the flashed messages (whose
``(category, message)`` pairs come back as lists, which ``get_flashed_messages`` and the layout accept).
Signing, the salt, the key derivation and ``SECRET_KEY_FALLBACKS`` are Flask's, unchanged; an older
compressed cookie still opens (itsdangerous reads both forms).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode


class CompactJSON:
    """``dumps``/``loads`` as the session serializer: plain JSON, no spaces; anything else is an error."""

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def loads(value: str | bytes) -> Any:
        return json.loads(value)


class UncompressedSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer without its zlib attempt on each payload."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(self.serializer.dumps(obj, **self.serializer_kwargs).encode("utf-8"))


class SessionInterface(SecureCookieSessionInterface):
    serializer = CompactJSON()

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        # Older keys first, the current one last: itsdangerous signs with the last and accepts them all.
        keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
        return UncompressedSerializer(
            keys,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )
