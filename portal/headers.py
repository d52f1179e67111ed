"""Security headers on every response (issue 8): CSP, framing, sniffing, referrer, HSTS and caching.

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


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint not in STATIC_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
