"""The browser session cookie: Flask's signed (and, when it helps, compressed) cookie, its payload compact
JSON.

Flask's default serializer tags every value so that tuples, bytes, datetimes and markup survive the round
trip; that tagging was 3% of a form save's instructions (issue 9), for a session that only ever holds
strings, numbers, booleans and the flashed messages (whose ``(category, message)`` pairs come back as
lists, which ``get_flashed_messages`` and the layout accept). Signing, the salt, the key derivation,
``SECRET_KEY_FALLBACKS`` and itsdangerous' compression (which keeps a session with many queued messages
under the browsers' 4 KB limit) are Flask's, unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from flask.sessions import SecureCookieSessionInterface


class CompactJSON:
    """``dumps``/``loads`` as the session serializer: plain JSON, no spaces; anything else is an error."""

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def loads(value: str | bytes) -> Any:
        return json.loads(value)


class SessionInterface(SecureCookieSessionInterface):
    serializer = CompactJSON()
