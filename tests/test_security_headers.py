"""Web security: headers on every response, no inline code, no PII in URLs or logs."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from portal.config import DefaultConfig
from portal.headers import CONTENT_SECURITY_POLICY
from tests.hardening_helpers import (
    SUBJECT_EMAIL,
    WEBHOOK_KEY,
    build_world,
    params_for,
    route_methods,
    sign_in,
    url_for_rule,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# The report inside a downloaded ZIP is opened from disk by the data subject, never served by the portal,
# so it is self-contained (its CSS inline) and no Content-Security-Policy applies to it.
NOT_SERVED = {"reports/report.html"}
# Mails are read in mail clients, which drop <style> blocks and linked CSS: their styles are inline (they
# still carry no script and no handler).
MAIL_TEMPLATES = {str(p.relative_to(TEMPLATES)) for p in (TEMPLATES / "mail").glob("*.html")}
EXPECTED = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _missing_headers(response) -> dict:
    return {
        name: response.headers.get(name)
        for name, value in EXPECTED.items()
        if response.headers.get(name) != value
    }


def _every_response(app, world, role):
    """(method, url, response) for every route of the url_map, signed in as ``role`` (or not)."""
    for rule, method in route_methods(app):
        client = app.test_client()
        if role:
            sign_in(client, world.users[role])
        url = url_for_rule(rule, params_for(world, rule.endpoint))
        headers = world.headers("admin") if rule.endpoint.startswith("api.") and role else {}
        with client.open(url, method=method, headers=headers) as response:
            yield method, url, rule.endpoint, response


# --- the headers -----------------------------------------------------------------------------------


def test_the_policy_allows_no_inline_script_and_no_framing():
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))

    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("role", [None, "admin"])
def test_every_route_answers_with_the_security_headers(app, role):
    world = build_world()
    wrong = [
        f"{method} {url} → {response.status_code} {missing}"
        for method, url, _, response in _every_response(app, world, role)
        if (missing := _missing_headers(response))
    ]

    assert wrong == []


def test_error_pages_carry_the_headers_too(app, client, login_as):
    login_as("admin")
    responses = {
        "404": client.get("/no/such/page"),
        "405": client.get("/auth/logout"),
        "413": client.post("/requests/new", data={"email": "x" * (2 * 1024 * 1024)}),
        "api 401": client.get("/api/v1/connection"),
        "api 404": client.get("/api/v1/nothing-here"),
    }

    assert {name: r.status_code for name, r in responses.items()} == {
        "404": 404,
        "405": 405,
        "413": 413,
        "api 401": 401,
        "api 404": 404,
    }
    assert {name: _missing_headers(r) for name, r in responses.items()} == {name: {} for name in responses}


def test_hsts_only_over_https(client):
    plain = client.get("/auth/login")
    secure = client.get("/auth/login", base_url="https://portal.example.com")

    assert "Strict-Transport-Security" not in plain.headers
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


# --- caching ---------------------------------------------------------------------------------------


def test_pages_with_personal_data_are_never_cached(app, client):
    world = build_world()
    sign_in(client, world.users["admin"])
    token = world.headers("admin")
    pages = [
        "/requests/",
        f"/requests/{world.waiting_id}",
        f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}",
        "/packages/",
        f"/packages/{world.complete_id}",
        f"/packages/{world.complete_id}/package.json",
        "/admin/users",
        "/admin/audit",
    ]
    api = [
        f"/api/v1/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}",
        f"/api/v1/privacy-request/{world.complete_id}/package",
        "/api/v1/privacy-request",
    ]

    cache = {url: client.get(url).headers.get("Cache-Control") for url in pages}
    cache.update({url: client.get(url, headers=token).headers.get("Cache-Control") for url in api})
    revealed = client.post(f"/requests/{world.waiting_id}/reveal")

    assert cache == dict.fromkeys(pages + api, "no-store")
    assert revealed.status_code == 200 and revealed.headers["Cache-Control"] == "no-store"


def test_static_files_stay_cacheable(client):
    with client.get("/static/css/portal.css") as response:
        assert response.status_code == 200
        assert "no-store" not in (response.headers.get("Cache-Control") or "")
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- no inline code --------------------------------------------------------------------------------


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, event handler and style attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = "src" not in names
            if self._in_script:
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> element")
        self.found.extend(f"{tag} {name}=" for name in names if name.startswith("on") or name == "style")
        self.found.extend(
            f"{tag} {name}=javascript:"
            for name, value in attrs
            if (value or "").lower().startswith("javascript:")
        )

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def test_no_page_holds_inline_script_handlers_or_styles(app):
    world = build_world()
    pages = 0
    found = []
    for role in ("admin", "staff", "reviewer", None):
        for method, url, _, response in _every_response(app, world, role):
            if method == "GET" and response.mimetype == "text/html":
                pages += 1
                parser = InlineCode()
                parser.feed(response.get_data(as_text=True))
                found.extend(f"{url} ({role}): {item}" for item in parser.found)

    assert pages > 40
    assert found == []


@pytest.mark.parametrize(
    "template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")), ids=str
)
def test_no_template_holds_inline_script_handlers_or_styles(template):
    if template in NOT_SERVED:
        pytest.skip("a downloaded file, never served: see NOT_SERVED")
    source = (TEMPLATES / template).read_text()

    if template in MAIL_TEMPLATES:
        assert "<script" not in source  # not even from a file
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", source) == []
    assert re.findall(r"<style\b", source) == []
    inline = r"\s(on[a-z]+)\s*=" if template in MAIL_TEMPLATES else r"\s(on[a-z]+|style)\s*="
    assert re.findall(inline, source) == []


# --- cookies, URLs and logs ------------------------------------------------------------------------


def test_session_cookies_are_secure_by_default():
    assert DefaultConfig.SESSION_COOKIE_SECURE is True
    assert DefaultConfig.SESSION_COOKIE_HTTPONLY is True
    assert DefaultConfig.SESSION_COOKIE_SAMESITE == "Lax"
    assert DefaultConfig.REMEMBER_COOKIE_SECURE is True
    assert DefaultConfig.IDLE_TIMEOUT_MINUTES == 30


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls.extend(value for name, value in attrs if name in ("href", "action", "src") and value)


def test_no_url_carries_personal_data(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    world = build_world()
    sign_in(client, world.users["admin"])

    search = client.post("/requests/", data={"search": SUBJECT_EMAIL, "status": "all"})
    found = client.get(search.headers["Location"])
    pages = [found, *(r for m, _, _, r in _every_response(app, world, "admin") if m == "GET")]
    urls = [search.headers["Location"]]
    for page in pages:
        if page.mimetype == "text/html":
            parser = Links()
            parser.feed(page.get_data(as_text=True))
            urls.extend(parser.urls)

    assert world.complete_id in found.get_data(as_text=True)  # the search found the subject's request
    leaking = [url for url in urls if re.search(r"jane|subject|wanda|%40|@", url, re.IGNORECASE)]
    assert leaking == []
    for secret in (SUBJECT_EMAIL, "waiting@example.com", "Jane", "Wanda"):
        assert secret not in caplog.text


def test_security_md_describes_the_threat_model_and_names_tests_that_exist():
    root = TEMPLATES.parent
    text = (root / "SECURITY.md").read_text()

    for heading in ("## Reporting a vulnerability", "## Threat model", "## What is protected, and how"):
        assert heading in text
    named = set(re.findall(r"`(tests/test_[a-z_]+\.py)`", text))
    assert len(named) >= 6
    assert sorted(path for path in named if not (root / path).exists()) == []
