"""The admin user pages: list, create, edit role / name, deactivate / reactivate, reset password."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import ApiToken, AuditEvent, User, utcnow
from portal.models.audit import Actor
from portal.security import verify_password
from portal.services import tokens
from tests.factories import TEST_PASSWORD


def text_of(response) -> str:
    """The page as a person reads it: entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def stored(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def shown_password(response) -> str:
    match = re.search(r'id="generated-password"[^>]*value="([^"]+)"', response.get_data(as_text=True))
    assert match, "the generated password is not on the page"
    return html.unescape(match.group(1))


def sign_in(client, email: str, password: str):
    client.post("/auth/logout")
    return client.post("/auth/login", data={"email": email, "password": password})


@pytest.fixture
def admin(login_as):
    return login_as("admin", name="Ada Admin")


# --- list ------------------------------------------------------------------------------------------


def test_list_shows_users_with_role_status_and_last_sign_in(client, admin, make_user):
    make_user(role="reviewer", email="rita@example.com", name="Rita Reviewer")
    gone = make_user(role="staff", email="sam@example.com")
    gone.active = False
    db.session.commit()

    response = client.get("/admin/users")

    assert response.status_code == 200
    page = text_of(response)
    assert "rita@example.com" in page and "Rita Reviewer" in page
    assert ">Reviewer</span>" in page and ">Admin</span>" in page
    assert ">Deactivated</span>" in page
    assert ">Never</span>" in page  # nobody here ever signed in through the form
    assert "3 accounts" in page


def test_list_is_paginated(client, app, admin, make_user):
    app.config["PAGE_SIZE"] = 2
    for n in range(3):
        make_user(role="staff", email=f"user{n}@example.com")

    first = text_of(client.get("/admin/users"))
    second = text_of(client.get("/admin/users?page=2"))
    beyond = client.get("/admin/users?page=9")

    assert "4 accounts" in first
    assert len(re.findall(r'href="/admin/users/\d+"', first)) == 4  # two rows: email link + Edit button
    assert admin.email in first and "user0@example.com" in first  # sorted by email
    assert "user1@example.com" in second and "user2@example.com" in second
    assert "user0@example.com" not in second
    assert 'href="/admin/users?page=2"' in first
    assert beyond.status_code == 200
    assert "There are no users on page 9." in text_of(beyond)


# --- create ----------------------------------------------------------------------------------------


def test_create_with_explicit_password(client, admin):
    response = client.post(
        "/admin/users/new",
        data={
            "email": "Ann@Example.com",
            "name": "Ann Staff",
            "role": "staff",
            "password_mode": "set",
            "password": "a-long-unusual-password",
            "must_change_password": "",
        },
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users"
    user = stored("ann@example.com")
    assert (user.name, user.role, user.active, user.must_change_password) == (
        "Ann Staff",
        "staff",
        True,
        False,
    )
    assert verify_password(user.password_hash, "a-long-unusual-password")
    assert "User ann@example.com created." in text_of(client.get("/admin/users"))
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "user.created", AuditEvent.actor_user_id == admin.id)
    )
    assert event.details == {"target_user": "ann@example.com", "role": "staff"}


def test_create_with_generated_password_shows_it_once_and_forces_a_change(client, admin):
    response = client.post(
        "/admin/users/new",
        data={"email": "gen@example.com", "role": "reviewer", "password_mode": "generate", "password": ""},
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = shown_password(response)
    assert "This password is shown only this once." in text_of(response)
    user = stored("gen@example.com")
    assert user.role == "reviewer" and user.must_change_password
    assert verify_password(user.password_hash, password)
    assert password not in text_of(client.get(f"/admin/users/{user.id}"))

    signed_in = sign_in(client, "gen@example.com", password)
    assert signed_in.headers["Location"] == "/"
    assert client.get("/").headers["Location"] == "/auth/password"


def test_create_with_set_mode_needs_a_password(client, admin):
    response = client.post(
        "/admin/users/new", data={"email": "x@example.com", "role": "staff", "password_mode": "set"}
    )

    assert response.status_code == 200
    assert "Enter a password, or choose to generate one." in text_of(response)
    assert stored("x@example.com") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email"}, "Invalid email address: "),
        ({"password": "short"}, "The password must be at least 12 characters long."),
        ({"password": "password1234"}, "This password is too common; choose another one."),
        ({"password": "new.person@example.com"}, "The password must not be your email address."),
    ],
)
def test_create_shows_service_errors_on_the_form(client, admin, data, message):
    form = {"email": "new.person@example.com", "role": "staff", "password_mode": "set"}
    form["password"] = "a-long-unusual-password"
    form.update(data)

    response = client.post("/admin/users/new", data=form)

    assert response.status_code == 200
    assert message in text_of(response)
    assert db.session.scalar(select(User).where(User.email != admin.email)) is None


def test_duplicate_email_is_an_error_on_the_form(client, admin, make_user):
    make_user(role="staff", email="dup@example.com")

    response = client.post(
        "/admin/users/new",
        data={"email": "DUP@example.com", "role": "admin", "password_mode": "generate"},
    )

    assert response.status_code == 200
    page = text_of(response)
    assert '<div id="email-error" class="invalid-feedback d-block" role="alert">' in page
    assert "A user with email dup@example.com already exists." in page
    assert stored("dup@example.com").role == "staff"


# --- edit ------------------------------------------------------------------------------------------


def test_change_role_and_name(client, admin, make_user):
    user = make_user(role="staff", email="ben@example.com", name="Ben")

    response = client.post(f"/admin/users/{user.id}", data={"name": "Benjamin", "role": "reviewer"})

    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/users/{user.id}"
    row = stored("ben@example.com")
    assert (row.name, row.role) == ("Benjamin", "reviewer")
    assert "Changes to ben@example.com saved." in text_of(client.get(response.headers["Location"]))
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.changed"))
    assert event.details == {
        "target_user": "ben@example.com",
        "role": ["staff", "reviewer"],
        "name_changed": True,
    }


def test_edit_page_of_an_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/999999").status_code == 404


def _deactivate_in_another_request(app, user_id: int) -> None:
    """Simulate a second admin's request committing while ours runs (after we were signed in)."""

    @app.before_request
    def _concurrent_change():
        # Runs after sign-in loaded us (still active in our session), on a connection of its own.
        with db.engine.begin() as connection:
            connection.execute(update(User).where(User.id == user_id).values(active=False))


@pytest.mark.parametrize("change", ["demote", "deactivate"])
def test_the_last_active_admin_cannot_be_demoted_or_deactivated(client, app, admin, make_user, change):
    other = make_user(role="admin", email="other-admin@example.com")
    # Both admins act on each other at once; the other one's request deactivated us first, so ``other``
    # is now the last active admin and our request must be refused.
    _deactivate_in_another_request(app, admin.id)
    message = "The last active admin cannot be demoted or deactivated."
    if change == "demote":
        response = client.post(f"/admin/users/{other.id}", data={"name": "", "role": "staff"})
        assert response.status_code == 200
        assert message in text_of(response)
    else:
        response = client.post(f"/admin/users/{other.id}/deactivate")
        assert response.headers["Location"] == f"/admin/users/{other.id}"
        with client.session_transaction() as session:
            assert ("danger", message) in map(tuple, session["_flashes"])
    row = stored("other-admin@example.com")
    assert (row.role, row.active) == ("admin", True)


def test_a_deactivated_admin_can_be_demoted_while_one_admin_is_active(client, admin, make_user):
    former = make_user(role="admin", email="former-admin@example.com")
    client.post(f"/admin/users/{former.id}/deactivate")

    response = client.post(f"/admin/users/{former.id}", data={"name": "", "role": "reviewer"})

    assert response.status_code == 302
    assert stored("former-admin@example.com").role == "reviewer"


def test_an_admin_cannot_change_their_own_role(client, admin, make_user):
    make_user(role="admin")  # not the last admin: the self rule is what refuses

    response = client.post(f"/admin/users/{admin.id}", data={"name": "Ada", "role": "staff"})

    assert response.status_code == 200
    assert "You cannot change your own role or deactivate yourself." in text_of(response)
    assert stored(admin.email).role == "admin"


# --- deactivate / reactivate -----------------------------------------------------------------------


def test_deactivate_asks_for_confirmation_then_deactivates(client, admin, make_user):
    user = make_user(role="staff", email="dee@example.com")

    confirm = client.get(f"/admin/users/{user.id}/deactivate")
    assert confirm.status_code == 200
    assert "Deactivate dee@example.com?" in text_of(confirm)
    assert stored("dee@example.com").active is True

    done = client.post(f"/admin/users/{user.id}/deactivate")
    assert done.headers["Location"] == f"/admin/users/{user.id}"
    row = stored("dee@example.com")
    assert row.active is False and row.session_version == 2
    page = text_of(client.get(done.headers["Location"]))
    assert "dee@example.com is deactivated: they cannot sign in, and their sessions ended." in page
    assert "Reactivate…" in page

    failed = sign_in(client, "dee@example.com", TEST_PASSWORD)
    assert "Wrong email or password, or the account is deactivated." in text_of(failed)


def test_reactivate_lets_the_user_sign_in_again(client, admin, make_user):
    user = make_user(role="staff", email="re@example.com")
    client.post(f"/admin/users/{user.id}/deactivate")

    assert "Reactivate re@example.com?" in text_of(client.get(f"/admin/users/{user.id}/reactivate"))
    client.post(f"/admin/users/{user.id}/reactivate")

    assert stored("re@example.com").active is True
    assert sign_in(client, "re@example.com", TEST_PASSWORD).headers["Location"] == "/"


def test_self_deactivation_is_refused(client, admin, make_user):
    make_user(role="admin")

    response = client.post(f"/admin/users/{admin.id}/deactivate", follow_redirects=True)

    assert "You cannot change your own role or deactivate yourself." in text_of(response)
    assert stored(admin.email).active is True


def test_reset_password_generated_is_shown_once_and_forces_a_change(client, admin, make_user):
    user = make_user(role="staff", email="forgot@example.com")

    response = client.post(f"/admin/users/{user.id}/reset-password", data={"reset-password_mode": "generate"})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = shown_password(response)
    row = stored("forgot@example.com")
    assert row.must_change_password and row.session_version == 2
    assert verify_password(row.password_hash, password)
    assert not verify_password(row.password_hash, TEST_PASSWORD)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.password_reset"))


def test_reset_password_to_a_chosen_one(client, admin, make_user):
    user = make_user(role="staff", email="chosen@example.com")

    response = client.post(
        f"/admin/users/{user.id}/reset-password",
        data={"reset-password_mode": "set", "reset-password": "another-long-secret"},
    )

    assert response.headers["Location"] == f"/admin/users/{user.id}"
    row = stored("chosen@example.com")
    assert row.must_change_password and verify_password(row.password_hash, "another-long-secret")


def _api_status(client, secret: str) -> int:
    return client.get("/api/v1/privacy-request", headers={"Authorization": f"Bearer {secret}"}).status_code


def test_reset_password_revokes_the_users_api_tokens_and_says_how_many(client, admin, make_user):
    user = make_user(role="staff", email="stolen@example.com")
    other = make_user(role="staff", email="bystander@example.com")
    system = Actor.system("test")
    live = [tokens.create_token(user, name, system)[1] for name in ("scripts", "crm sync")]
    tokens.revoke_token(tokens.create_token(user, "old", system)[0], system)
    expired, _ = tokens.create_token(user, "expired", system, expires_at=utcnow() - timedelta(days=1))
    _, others = tokens.create_token(other, "theirs", system)
    db.session.commit()
    assert [_api_status(client, secret) for secret in live] == [200, 200]

    response = client.post(f"/admin/users/{user.id}/reset-password", data={"reset-password_mode": "generate"})

    assert "Their 2 API tokens were revoked; issue new ones if needed." in text_of(response)
    assert [_api_status(client, secret) for secret in live] == [401, 401]
    assert _api_status(client, others) == 200
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(["token.revoked", "user.password_reset"]))
        .order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.details.get("token_name"), e.details.get("reason")) for e in events][-3:] == [
        ("token.revoked", "scripts", "password_reset"),
        ("token.revoked", "crm sync", "password_reset"),
        ("user.password_reset", None, None),
    ]
    assert events[-1].details == {"target_user": "stolen@example.com", "tokens_revoked": 2}
    assert events[-1].actor_label == admin.email
    db.session.expire_all()
    assert db.session.get(ApiToken, expired.id).revoked_at is None  # already unusable: left as it was


@pytest.mark.parametrize(
    ("token_names", "message"),
    [([], "They had no API tokens to revoke."), (["scripts"], "Their 1 API token was revoked;")],
)
def test_a_chosen_password_reset_says_what_happened_to_the_tokens(
    client, admin, make_user, token_names, message
):
    user = make_user(role="staff", email="chosen-reset@example.com")
    for name in token_names:
        tokens.create_token(user, name, Actor.system("test"))
    db.session.commit()

    response = client.post(
        f"/admin/users/{user.id}/reset-password",
        data={"reset-password_mode": "set", "reset-password": "another-long-secret"},
        follow_redirects=True,
    )

    assert "they must change it at their next sign-in. " + message in text_of(response)


def test_reset_password_rules_are_shown_on_the_edit_page(client, admin, make_user):
    user = make_user(role="staff", email="rules@example.com")

    response = client.post(
        f"/admin/users/{user.id}/reset-password",
        data={"reset-password_mode": "set", "reset-password": "too-short"},
    )

    assert response.status_code == 200
    assert "The password must be at least 12 characters long." in text_of(response)
    assert verify_password(stored("rules@example.com").password_hash, TEST_PASSWORD)
