"""Security headers on every response: CSP, framing, sniffing, referrer, HSTS and caching.

The Content-Security-Policy allows scripts and styles from the portal's own origin only: templates carry no
inline ``<script>``, ``on*=`` handler or ``style=`` attribute (the JavaScript lives in ``static/js``), so
neither needs ``'unsafe-inline'``. Bootstrap's CSS draws some icons with ``data:`` SVG images, hence
``img-src 'self' data:``.

``Referrer-Policy: same-origin`` rather than ``no-referrer``: over HTTPS, Flask-WTF checks that a form was
posted from the same origin by its ``Referer``, which ``no-referrer`` would strip.

Every dynamic response is ``Cache-Control: no-store``: almost every page shows personal data (identities,
entered values, packages, user lists, the audit trail), and a rule that covers them all cannot forget one.
Only static files keep the default caching.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=31536000; includeSubDomains"
STATIC_ENDPOINTS = frozenset({"static", "bootstrap.static"})

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


_BY_LOWER_NAME = {name.lower(): (name, value) for name, value in SECURITY_HEADERS.items()}


def add_security_headers(response: Response) -> Response:
    """Each security header the response does not set itself; ``no-store`` on every dynamic response.

    The response's header names are read once: werkzeug's ``setdefault`` and ``pop`` look a missing header
    up by raising and catching an exception, which cost more than the rest of a redirect.
    """
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    missing = [pair for lower, pair in _BY_LOWER_NAME.items() if lower not in present]
    if request.is_secure and "strict-transport-security" not in present:
        missing.append(("Strict-Transport-Security", HSTS))
    headers.extend(missing)
    if request.endpoint not in STATIC_ENDPOINTS:
        headers["Cache-Control"] = "no-store"
        if "expires" in present:
            headers.remove("Expires")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
