"""Sign-in, sign-out, own password, rate limit, roles, CSRF and session cookies (S3)."""

from __future__ import annotations

import html
import logging
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, RateLimitCounter, User
from portal.models.audit import Actor
from portal.security import verify_password
from portal.services import users
from tests.factories import TEST_PASSWORD

WRONG_CREDENTIALS = "Wrong email or password, or the account is deactivated."
TOO_MANY = "Too many attempts. Wait a minute, then try again."


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def login(client, email: str, password: str = TEST_PASSWORD, **kwargs):
    return client.post("/auth/login", data={"email": email, "password": password, **kwargs})


def stored(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


# --- sign-in and sign-out --------------------------------------------------------------------------


def test_login_leads_to_the_dashboard(client, make_user):
    user = make_user(role="staff", name="Sam Staff")

    response = login(client, user.email)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = text_of(client.get("/"))
    assert "Hello, Sam Staff" in page
    assert stored(user.email).last_login_at is not None


def test_login_ignores_case_and_spaces_in_the_email(client, make_user):
    user = make_user(role="staff")

    assert login(client, f"  {user.email.upper()} ").headers["Location"] == "/"


def test_logout_ends_the_session_and_the_old_cookie_stops_working(app, client, make_user):
    user = make_user(role="staff")
    login(client, user.email)
    old_cookie = client.get_cookie("session").value
    assert client.get("/").status_code == 200

    response = client.post("/auth/logout")

    assert response.headers["Location"] == "/auth/login"
    assert "You have been signed out." in text_of(client.get("/auth/login"))
    assert client.get("/").headers["Location"].startswith("/auth/login")
    replay = app.test_client()
    replay.set_cookie("session", old_cookie)
    assert replay.get("/").headers["Location"].startswith("/auth/login")
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "logout")).actor_user_id == user.id


def test_logout_is_post_only(client, login_as):
    login_as("staff")

    assert client.get("/auth/logout").status_code == 405
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("password", ["wrong-password-123", "", TEST_PASSWORD.upper()])
def test_wrong_password_shows_the_form_error(client, make_user, password):
    user = make_user(role="staff")

    response = login(client, user.email, password)

    assert response.status_code == 200
    page = text_of(response)
    assert WRONG_CREDENTIALS in page or "This field is required." in page
    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_unknown_email_gets_the_same_message(client):
    response = login(client, "nobody@example.com")

    assert response.status_code == 200
    assert WRONG_CREDENTIALS in text_of(response)


def test_deactivated_user_cannot_sign_in(client, make_user):
    user = make_user(role="staff")
    user.active = False
    db.session.commit()

    response = login(client, user.email)

    assert response.status_code == 200
    assert WRONG_CREDENTIALS in text_of(response)
    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_deactivation_ends_an_open_session(client, make_user):
    admin = make_user(role="admin")
    user = make_user(role="staff")
    login(client, user.email)
    assert client.get("/").status_code == 200

    users.update_user(user, Actor.for_user(admin), role=user.role, name=user.name, active=False)
    db.session.commit()

    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_a_role_or_name_change_applies_to_an_open_session_at_its_next_request(client, make_user):
    """The signed-in user is read afresh on every request (a snapshot of its row, never kept across)."""
    admin = make_user(role="admin")
    user = make_user(role="staff")
    login(client, user.email)
    assert client.get("/requests/").status_code == 200

    users.update_user(user, Actor.for_user(admin), role="reviewer", name="Renamed Person", active=True)
    db.session.commit()

    assert client.get("/requests/new").status_code == 403
    assert "Hello, Renamed Person. You are signed in as <strong>reviewer</strong>." in text_of(
        client.get("/")
    )


def test_signed_out_visitor_is_sent_to_login_with_next(client, make_user):
    user = make_user(role="admin")

    first = client.get("/admin/users?page=1")
    assert first.status_code == 302
    assert first.headers["Location"] == "/auth/login?next=%2Fadmin%2Fusers%3Fpage%3D1"
    assert 'value="/admin/users?page=1"' in client.get(first.headers["Location"]).get_data(as_text=True)

    response = login(client, user.email, next="/admin/users?page=1")
    assert response.headers["Location"] == "/admin/users?page=1"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "https://evil.example/admin",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        " //evil.example",
    ],
)
def test_next_is_open_redirect_safe(client, make_user, target):
    user = make_user(role="staff")

    response = login(client, user.email, next=target)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_signed_in_user_on_login_page_goes_to_dashboard(client, login_as):
    login_as("reviewer")

    assert client.get("/auth/login").headers["Location"] == "/"


def test_sign_in_rehashes_a_password_hashed_with_other_parameters(app, client, make_user):
    user = make_user(role="staff")
    old_hash = stored(user.email).password_hash
    assert "m=8," in old_hash

    app.config["PASSWORD_HASH_MEMORY_COST"] = 16  # e.g. a deployment moving to other Argon2 settings
    assert login(client, user.email).status_code == 302

    new_hash = stored(user.email).password_hash
    assert new_hash != old_hash and "m=16," in new_hash
    assert verify_password(new_hash, TEST_PASSWORD)
    assert login(app.test_client(), user.email).status_code == 302  # the new hash works


def test_sign_in_keeps_a_hash_made_with_the_current_parameters(client, make_user):
    user = make_user(role="staff")
    before = stored(user.email).password_hash

    assert login(client, user.email).status_code == 302

    assert stored(user.email).password_hash == before


def test_default_password_hashing_is_owasps_argon2id_profile():
    from portal.config import DefaultConfig

    assert (DefaultConfig.PASSWORD_HASH_MEMORY_COST, DefaultConfig.PASSWORD_HASH_TIME_COST) == (19456, 2)
    assert DefaultConfig.PASSWORD_HASH_PARALLELISM == 1


# --- idle timeout ----------------------------------------------------------------------------------


class Clock:
    """``portal.auth.utcnow`` under the test's control."""

    def __init__(self, monkeypatch):
        from datetime import UTC, datetime

        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        monkeypatch.setattr("portal.auth.utcnow", lambda: self.now)

    def advance(self, **delta) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


def session_cookie_sent(response) -> bool:
    return any(h.startswith("session=") for h in response.headers.getlist("Set-Cookie"))


def test_idle_session_is_signed_out_after_the_timeout(app, client, make_user, monkeypatch):
    clock = Clock(monkeypatch)
    login(client, make_user(role="staff").email)
    assert client.get("/").status_code == 200

    clock.advance(minutes=app.config["IDLE_TIMEOUT_MINUTES"], seconds=1)
    response = client.get("/requests/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    assert "You were signed out after a period of inactivity." in text_of(client.get("/auth/login"))
    assert client.get("/").status_code == 302  # the session is gone, not just this request refused


def test_activity_keeps_the_session_alive_past_the_timeout(app, client, make_user, monkeypatch):
    clock = Clock(monkeypatch)
    login(client, make_user(role="staff").email)
    client.get("/")
    for _ in range(6):  # an hour of use, a request every 10 minutes
        clock.advance(minutes=10)
        assert client.get("/").status_code == 200


def test_activity_is_recorded_once_a_minute_not_on_every_request(app, client, make_user, monkeypatch):
    clock = Clock(monkeypatch)
    login(client, make_user(role="staff").email)
    client.get("/")  # first activity recorded

    clock.advance(seconds=30)
    within_the_minute = client.get("/")
    clock.advance(seconds=31)
    after_a_minute = client.get("/")

    assert within_the_minute.status_code == after_a_minute.status_code == 200
    assert not session_cookie_sent(within_the_minute)  # nothing changed: the cookie is not re-signed
    assert session_cookie_sent(after_a_minute)  # new activity time, and a fresh expiry


# --- must change password, password rules ---------------------------------------------------------


def test_api_calls_neither_refresh_nor_end_a_browser_session_sent_along(app, client, make_user, monkeypatch):
    """A token route authenticates by its token alone; the session cookie a browser sends is left as it is."""
    from portal.services import tokens

    clock = Clock(monkeypatch)
    user = make_user(role="staff")
    secret = tokens.create_token(user, "script", Actor.for_user(user))[1]
    db.session.commit()
    login(client, user.email)
    client.get("/")
    clock.advance(minutes=5)

    response = client.get("/api/v1/privacy-request", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200
    assert not session_cookie_sent(response)  # the activity time was not moved by the API call


def test_must_change_password_forces_the_password_page(client, make_user):
    user = make_user(role="staff", must_change_password=True)
    login(client, user.email)

    for path in ("/", "/admin/users", "/no-such-page"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == "/auth/password"
    page = text_of(client.get("/auth/password"))
    assert "Please choose a new password before you continue." in page

    response = client.post(
        "/auth/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "a-brand-new-long-secret",
            "confirm": "a-brand-new-long-secret",
        },
    )

    assert response.headers["Location"] == "/"
    assert "Your password has been changed." in text_of(client.get("/"))
    row = stored(user.email)
    assert row.must_change_password is False
    assert verify_password(row.password_hash, "a-brand-new-long-secret")


def test_changing_the_password_ends_other_sessions(app, client, make_user):
    user = make_user(role="staff")
    other_device = app.test_client()
    login(other_device, user.email)
    login(client, user.email)

    client.post(
        "/auth/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "fresh-long-secret-1",
            "confirm": "fresh-long-secret-1",
        },
    )

    assert client.get("/").status_code == 200
    assert other_device.get("/").headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize(
    ("new_password", "message"),
    [
        ("short-pass1", "The password must be at least 12 characters long."),
        ("", "This field is required."),
        ("{email}", "The password must not be your email address."),
        ("{EMAIL}", "The password must not be your email address."),
        ("password1234", "This password is too common; choose another one."),
        ("Password1234", "This password is too common; choose another one."),
        ("correct horse battery staple", "This password is too common; choose another one."),
        (TEST_PASSWORD, "The new password must differ from the current one."),
    ],
)
def test_password_rules(client, login_as, new_password, message):
    user = login_as("staff", email="rules.person@example.com")
    new_password = new_password.format(email=user.email, EMAIL=user.email.upper())

    response = client.post(
        "/auth/password",
        data={"current_password": TEST_PASSWORD, "new_password": new_password, "confirm": new_password},
    )

    assert response.status_code == 200
    assert message in text_of(response)
    assert verify_password(stored(user.email).password_hash, TEST_PASSWORD)


def test_password_change_needs_the_current_password_and_a_matching_repeat(client, login_as):
    login_as("staff")

    wrong = client.post(
        "/auth/password",
        data={
            "current_password": "not-it-at-all",
            "new_password": "new-long-secret-9",
            "confirm": "new-long-secret-9",
        },
    )
    differ = client.post(
        "/auth/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "new-long-secret-9",
            "confirm": "new-long-secret-8",
        },
    )

    assert "Your current password is not correct." in text_of(wrong)
    assert "The two passwords differ." in text_of(differ)


# --- rate limit ------------------------------------------------------------------------------------


def test_five_failures_a_minute_then_429_even_with_the_right_password(client, make_user):
    user = make_user(role="staff")
    for _ in range(5):
        assert login(client, user.email, "wrong-password-123").status_code == 200

    response = login(client, user.email)

    assert response.status_code == 429
    page = text_of(response)
    assert TOO_MANY in page
    assert "Too many attempts <span" in response.get_data(as_text=True)  # the error page heading
    assert 'class="navbar-brand"' in page  # the normal layout
    assert client.get("/").headers["Location"].startswith("/auth/login")


def test_rate_limit_is_per_account_and_ip(app, client, make_user):
    blocked = make_user(role="staff")
    other = make_user(role="staff")
    for _ in range(5):
        login(client, blocked.email, "wrong-password-123")
    assert login(client, blocked.email).status_code == 429

    assert login(app.test_client(), other.email).headers["Location"] == "/"
    from_elsewhere = app.test_client()
    response = from_elsewhere.post(
        "/auth/login",
        data={"email": blocked.email, "password": TEST_PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.headers["Location"] == "/"


def test_successful_logins_do_not_count(app, make_user):
    user = make_user(role="staff")
    for _ in range(6):
        assert login(app.test_client(), user.email).status_code == 302

    client = app.test_client()
    for _ in range(5):
        assert login(client, user.email, "wrong-password-123").status_code == 200
    assert login(client, user.email).status_code == 429


@pytest.fixture
def counted_in_the_database(app_config):
    """Requested before ``app``: the default storage of the inline backend (the suite uses memory)."""
    app_config["RATELIMIT_STORAGE_URI"] = None


def test_failures_are_counted_in_the_database_that_every_process_shares(
    counted_in_the_database, app, app_config, make_user
):
    from portal import create_app

    user = make_user(role="staff")
    client = app.test_client()
    for _ in range(5):
        assert login(client, user.email, "wrong-password-123").status_code == 200

    # Another process (a second gunicorn worker, or the portal restarted) sees the same counts.
    other_process = create_app(app_config)
    try:
        response = login(other_process.test_client(), user.email)
    finally:
        with other_process.app_context():
            db.engine.dispose()
    assert response.status_code == 429 and TOO_MANY in text_of(response)

    keys = db.session.scalars(select(RateLimitCounter.key)).all()
    assert len(keys) == 2  # this account from this address, and this address
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)  # no address, no account
    assert app.config["RATELIMIT_STORAGE_URI"] == "database://"


def test_failures_from_one_address_are_limited_over_all_accounts(app, client, make_user):
    """30 failed sign-ins a minute per address, whichever accounts they name; then even the right
    password of an account never tried from there gets 429. Other addresses are not affected."""
    user = make_user(role="staff")
    for n in range(30):
        assert login(client, f"guess-{n}@example.com", "wrong-password-123").status_code == 200

    response = login(app.test_client(), user.email)
    assert response.status_code == 429 and TOO_MANY in text_of(response)
    from_elsewhere = app.test_client().post(
        "/auth/login",
        data={"email": user.email, "password": TEST_PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert from_elsewhere.headers["Location"] == "/"
    assert app.config["LOGIN_IP_RATE_LIMIT"] == "30 per minute"


def test_the_limiters_log_and_keys_hold_no_email(app, client, make_user, caplog):
    caplog.set_level(logging.INFO)
    user = make_user(role="staff")
    for _ in range(6):
        login(client, user.email, "wrong-password-123")

    assert "exceeded" in caplog.text  # Flask-Limiter logged the breach, with its key
    assert user.email not in caplog.text and user.email.split("@")[0] not in caplog.text


def test_database_counters_start_again_when_their_window_ends(counted_in_the_database, app, monkeypatch):
    from portal import rate_limits

    now = [1_000_000.0]
    monkeypatch.setattr(rate_limits.time, "time", lambda: now[0])
    storage = rate_limits.DatabaseStorage()

    assert [storage.incr("a", 60), storage.incr("a", 60), storage.incr("b", 60, amount=3)] == [1, 2, 3]
    assert (storage.get("a"), storage.get_expiry("a")) == (2, 1_000_060.0)
    now[0] += 61
    assert (storage.get("a"), storage.get("b")) == (0, 0)
    assert storage.incr("c", 60) == 1  # and the ended windows of other keys are deleted
    assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) == 1
    assert storage.incr("a", 60) == 1
    storage.clear("a")
    assert storage.get("a") == 0 and storage.check() is True
    assert storage.reset() == 1


# --- roles -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "reviewer"])
def test_non_admins_get_403_on_admin_pages(client, login_as, role):
    login_as(role)

    response = client.get("/admin/users")

    assert response.status_code == 403
    page = text_of(response)
    assert f"It is for admins; you are signed in as {role}. Ask an admin if you need it." in page
    assert 'class="navbar-brand"' in page


def test_admin_reaches_admin_pages_and_sees_the_nav_link(client, login_as):
    login_as("admin")

    assert client.get("/admin/users").status_code == 200
    assert 'href="/admin/users"' in client.get("/").get_data(as_text=True)


def test_nav_hides_admin_links_from_staff(client, login_as):
    login_as("staff")

    assert 'href="/admin/users"' not in client.get("/").get_data(as_text=True)


def test_roles_required_decorator(app, client, login_as):
    from portal.security import roles_required

    @app.route("/only-reviewers")
    @roles_required("reviewer", "admin")
    def only_reviewers():
        return "ok"

    assert client.get("/only-reviewers").headers["Location"].startswith("/auth/login")
    login_as("staff")
    assert client.get("/only-reviewers").status_code == 403
    login_as("reviewer")
    assert client.get("/only-reviewers").get_data(as_text=True) == "ok"


# --- audit -----------------------------------------------------------------------------------------


def test_login_attempts_are_audited_without_the_password(client, make_user):
    user = make_user(role="staff")
    login(client, user.email, "wrong-password-123")
    login(client, user.email)

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("login.%")).order_by(AuditEvent.id)
    ).all()

    assert [(e.action, e.actor_user_id, e.actor_label) for e in events] == [
        ("login.failed", user.id, user.email),
        ("login.succeeded", user.id, user.email),
    ]
    for event in events:
        assert "wrong-password-123" not in str(event.details)
        assert TEST_PASSWORD not in str(event.details)


def _failed_logins() -> list[AuditEvent]:
    return db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login.failed").order_by(AuditEvent.id)
    ).all()


@pytest.mark.parametrize("typed", ["Nobody@Example.com", "Correct-Horse-Battery-9"])
def test_failed_login_for_an_unknown_account_is_audited_without_what_was_typed(client, make_user, typed):
    make_user(role="staff", email="someone@example.com")
    login(client, typed, "whatever-password")
    login(client, f"  {typed.upper()} ", "whatever-password")  # the same text, typed differently
    login(client, "other-text", "whatever-password")

    events = _failed_logins()
    labels = [event.actor_label for event in events]
    assert [(e.actor_type, e.actor_user_id) for e in events] == [("user", None)] * 3
    assert all(re.fullmatch(r"unknown:[0-9a-f]{16}", label) for label in labels), labels
    assert labels[0] == labels[1] != labels[2]  # repeated attempts still match each other
    stored_text = repr([(e.actor_label, e.details) for e in events]).lower()
    assert typed.lower() not in stored_text and "nobody" not in stored_text and "horse" not in stored_text


def test_the_audit_log_explains_an_unknown_account_and_finds_its_other_attempts(client, make_user, login_as):
    login(client, "Correct-Horse-Battery-9", "whatever-password")
    login(client, "correct-horse-battery-9", "whatever-password")
    login(client, "someone-else", "whatever-password")
    label = _failed_logins()[0].actor_label
    login_as("admin")

    page = html.unescape(client.get("/admin/audit?action=login.failed").get_data(as_text=True))
    same = html.unescape(client.get(f"/admin/audit?actor={label}&actor_match=exact").get_data(as_text=True))
    csv = client.get("/admin/audit.csv?action=login.failed").get_data(as_text=True)

    assert "No such account (a keyed hash of what was typed)." in page
    assert f'href="/admin/audit?actor={label}&actor_match=exact"' in page
    assert "2 events match the filters." in same
    assert f",{label},user,login.failed," in csv
    assert "horse" not in (page + csv).lower()


# --- CSRF and cookies ------------------------------------------------------------------------------


def _csrf_token(response) -> str:
    match = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def csrf_on(app_config):
    """Requested before ``client``/``make_user`` so the app is built with CSRF protection on."""
    app_config["WTF_CSRF_ENABLED"] = True


def test_csrf_token_is_required_on_posts(csrf_on, make_user, client):
    user = make_user(role="staff")
    assert client.application.config["WTF_CSRF_ENABLED"] is True

    refused = login(client, user.email)
    assert refused.status_code == 400
    assert "The form expired or was sent from another site." in text_of(refused)

    token = _csrf_token(client.get("/auth/login"))
    accepted = login(client, user.email, csrf_token=token)
    assert accepted.status_code == 302 and accepted.headers["Location"] == "/"

    assert client.post("/auth/logout").status_code == 400  # the sign-out form needs its token too
    token = _csrf_token(client.get("/"))
    assert client.post("/auth/logout", data={"csrf_token": token}).headers["Location"] == "/auth/login"


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(make_user, client, secure):
    user = make_user(role="staff")
    client.application.config["SESSION_COOKIE_SECURE"] = secure

    response = login(client, user.email)

    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    flags = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in flags
    assert "SameSite=Lax" in flags
    assert ("Secure" in flags) is secure


def test_every_rate_limit_is_declared_with_rate_limited():
    """The limiter checks only views marked by ``rate_limited`` (``portal.patches``): a limit declared
    with ``limiter.limit`` directly would never be checked, so none may be."""
    from pathlib import Path

    import portal
    from portal.auth import views

    root = Path(portal.__file__).parent
    direct = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "extensions.py" and "limiter.limit(" in path.read_text()
    ]
    assert direct == []
    assert getattr(views.login, "rate_limited", False) is True


def test_the_limiter_runs_for_marked_views_only(client, login_as, monkeypatch):
    """Flask-Limiter's per-request hooks are skipped where no limit is declared, and still run on sign-in."""
    from portal.extensions import limiter

    seen = []
    identify = limiter.identify_request
    monkeypatch.setattr(limiter, "identify_request", lambda: seen.append(1) or identify())
    login_as("staff")
    seen.clear()
    assert client.get("/requests/").status_code == 200
    assert seen == []
    client.post("/auth/logout")
    client.post("/auth/login", data={"email": "nobody@example.com", "password": "wrong"})
    assert seen  # the sign-in form is checked


def test_marking_views_needs_the_limiters_hooks_in_place(app):
    from flask import Flask

    from portal.extensions import limiter
    from portal.patches import limit_marked_views_only

    with pytest.raises(RuntimeError, match="found 0"):
        limit_marked_views_only(Flask("bare"), limiter)


def test_password_inputs_tell_password_managers_what_they_are(client, login_as):
    login = client.get("/auth/login").get_data(as_text=True)
    assert re.search(r'<input[^>]*autocomplete="username"[^>]*name="email"', login)
    assert re.search(r'<input[^>]*autocomplete="current-password"[^>]*name="password"', login)
    login_as("staff")
    change = client.get("/auth/password").get_data(as_text=True)
    assert re.search(r'autocomplete="current-password"[^>]*name="current_password"', change)
    assert re.search(r'autocomplete="new-password"[^>]*name="new_password"', change)
    assert re.search(r'autocomplete="new-password"[^>]*name="confirm"', change)


def test_every_page_has_an_icon_and_the_root_icon_is_served(client):
    assert '<link rel="icon" href="/favicon.ico"' in client.get("/auth/login").get_data(as_text=True)
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/vnd.microsoft.icon"
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    icon.close()


def test_the_error_page_offers_sign_in_to_someone_signed_out(client):
    page = client.get("/no-such-page").get_data(as_text=True)
    assert "Back to sign in" in page and "Back to the dashboard" not in page


def test_a_forbidden_page_says_which_role_it_is_for(client, login_as):
    login_as("reviewer")
    response = client.get("/admin/users")
    assert response.status_code == 403
    assert "It is for admins; you are signed in as reviewer." in response.get_data(as_text=True)
    staff_only = client.get("/requests/new")
    assert "It is for admins and staff; you are signed in as reviewer." in staff_only.get_data(as_text=True)
