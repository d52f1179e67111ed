"""Every route is guarded: this walks ``app.url_map``, so a route added tomorrow is checked too (S3).

Signed out, HTML routes answer 302 → the login page and API routes 401 with JSON, for every method a
route accepts. Only the endpoints in ``PUBLIC`` are open; adding one there is a deliberate, reviewed act.
"""

from __future__ import annotations

import html
import uuid

import pytest
from werkzeug.routing import Rule
from werkzeug.routing.converters import (
    AnyConverter,
    FloatConverter,
    IntegerConverter,
    PathConverter,
    UUIDConverter,
)

PUBLIC = {
    "auth.login",
    "static",
    "bootstrap.static",
    "healthz",  # the load balancer's probe: answers only up or down (portal/health.py)
    "favicon",  # the site icon browsers fetch on every page, signed in or not (static/favicon.ico)
    "api.oauth_token",  # OAuth clients authenticate with their own credentials here (tests/test_oauth.py)
    # A mail's unsubscribe link: opened from a mailbox, signed in or not. Only a token this portal signed
    # (itsdangerous) gets past it, and it can only turn mails off (portal/notifications/views.py).
    "unsubscribe.confirm",
    # The data subject's delivery page: no account. Only a valid link (a 256-bit token, stored hashed)
    # opens anything, and only after the code mailed to the request's address (portal/delivery).
    "delivery.page",
    "delivery.send_code",
    "delivery.verify",
    "delivery.download_json",
    "delivery.download_zip",
    "delivery.download_attachment",
}
# Flask answers OPTIONS itself (the Allow header) without running the view; nothing to guard there.
UNGUARDED_METHODS = {"OPTIONS"}


def _dummy_value(converter) -> object:
    if isinstance(converter, IntegerConverter):
        return 1
    if isinstance(converter, FloatConverter):
        return 1.5
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=1)
    if isinstance(converter, AnyConverter):
        return converter.items[0]
    if isinstance(converter, PathConverter):
        return "some/path"
    return "dummy"


def _url_for(rule: Rule) -> str:
    """A concrete URL for ``rule``, its parameters filled with dummy values of the right type."""
    values = {name: _dummy_value(conv) for name, conv in rule._converters.items()}
    values.update(rule.defaults or {})
    built = rule.build(values, append_unknown=False)
    assert built is not None, f"cannot build a URL for {rule.rule}"
    return built[1]


def _guarded_routes(app, prefix: str = "/") -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC or not rule.rule.startswith(prefix):
            continue
        for method in sorted(rule.methods - UNGUARDED_METHODS):
            routes.append((method, _url_for(rule)))
    return routes


def test_the_walk_finds_the_routes_it_should(app):
    routes = _guarded_routes(app)
    assert ("GET", "/") in routes
    assert ("POST", "/auth/logout") in routes
    assert ("GET", "/admin/users/1") in routes
    assert ("POST", "/admin/users/1/reset-password") in routes
    assert not [url for _, url in routes if url.startswith(("/auth/login", "/static/"))]


def test_every_non_public_route_sends_signed_out_visitors_to_login(app, client):
    wrong = []
    for method, url in _guarded_routes(app):
        response = client.open(url, method=method)
        if url.startswith("/api/"):
            ok = response.status_code == 401 and (method == "HEAD" or "detail" in response.get_json())
        else:
            location = response.headers.get("Location", "")
            ok = response.status_code == 302 and location.startswith("/auth/login")
        if not ok:
            wrong.append(f"{method} {url} → {response.status_code} {response.headers.get('Location', '')}")
    assert wrong == []


def test_the_login_redirect_keeps_the_page_to_return_to(client):
    response = client.get("/admin/users/1")
    assert response.headers["Location"] == "/auth/login?next=%2Fadmin%2Fusers%2F1"


def test_public_routes_stay_reachable_signed_out(client):
    assert client.get("/auth/login").status_code == 200
    with client.get("/static/css/portal.css") as response:
        assert response.status_code == 200


@pytest.mark.parametrize("role", ["staff", "reviewer"])
def test_every_admin_route_is_forbidden_to_non_admins(app, client, login_as, role):
    login_as(role)
    routes = _guarded_routes(app, prefix="/admin/")
    assert ("GET", "/admin/users") in routes

    wrong = [
        f"{method} {url} → {status}"
        for method, url in routes
        if (status := client.open(url, method=method).status_code) != 403
    ]

    assert wrong == []
    page = html.unescape(client.get("/admin/users").get_data(as_text=True))
    assert "You don't have permission to open this page." in page


def test_every_task_route_is_forbidden_to_reviewers(app, client, login_as):
    """Tasks are staff and admins' work: the blueprint refuses reviewers on every route, whatever the id."""
    login_as("reviewer")
    routes = _guarded_routes(app, prefix="/tasks/")
    assert ("GET", "/tasks/") in routes and ("POST", "/tasks/1/claim") in routes

    wrong = [
        f"{method} {url} → {status}"
        for method, url in routes
        if (status := client.open(url, method=method).status_code) != 403
    ]

    assert wrong == []
