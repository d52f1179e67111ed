"""The scriptable commands: create-user, create-token, ensure-admin (S8)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.models import ApiToken, AuditEvent, User
from portal.security import verify_password


def stored(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def user_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(User))


# --- create-user -----------------------------------------------------------------------------------


def test_create_user_with_a_password(runner):
    result = runner.invoke(
        args=[
            "create-user",
            "Bob@Example.com",
            "--role",
            "admin",
            "--password",
            "bobs-long-password",
            "--name",
            "Bob",
        ]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # nothing secret to show
    assert "Created admin bob@example.com." in result.stderr
    user = stored("bob@example.com")
    # A password someone else chose is changed at the first sign-in ...
    assert (user.role, user.name, user.must_change_password) == ("admin", "Bob", True)
    assert verify_password(user.password_hash, "bobs-long-password")


def test_create_user_keep_password_is_not_asked_to_change_it(runner):
    args = ["create-user", "kim@example.com", "--role", "staff", "--password", "kims-long-password"]
    result = runner.invoke(args=[*args, "--keep-password"])

    assert result.exit_code == 0, result.output
    assert stored("kim@example.com").must_change_password is False


def test_create_user_without_a_password_prints_a_generated_one(runner):
    result = runner.invoke(args=["create-user", "ann@example.com", "--role", "staff"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 20
    user = stored("ann@example.com")
    assert user.role == "staff" and user.must_change_password is True
    assert verify_password(user.password_hash, lines[0])
    assert lines[0] not in str(db.session.scalars(select(AuditEvent.details)).all())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "boss"], "Error: Unknown role 'boss'; choose admin, staff or reviewer."),
        (
            ["--role", "staff", "--password", "short"],
            "Error: The password must be at least 12 characters long.",
        ),
        (["--role", "staff", "--password", ""], "Error: The password must be at least 12 characters long."),
    ],
)
def test_create_user_refusals_exit_1_with_a_message(runner, args, message):
    result = runner.invoke(args=["create-user", "carl@example.com", *args])

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert stored("carl@example.com") is None


def test_create_user_with_a_duplicate_email_exits_1(runner, make_user):
    make_user(role="staff", email="dup@example.com")

    result = runner.invoke(args=["create-user", "DUP@example.com", "--role", "admin"])

    assert result.exit_code == 1
    assert "Error: A user with email dup@example.com already exists." in result.stderr
    assert result.stdout == ""
    assert stored("dup@example.com").role == "staff"
    assert user_count() == 1


def test_create_user_with_an_invalid_email_exits_1(runner):
    result = runner.invoke(args=["create-user", "not-an-email", "--role", "staff"])

    assert result.exit_code == 1
    assert "Error: Invalid email address:" in result.stderr
    assert user_count() == 0


# --- create-token ----------------------------------------------------------------------------------


def test_create_token_prints_only_the_token_and_stores_only_its_hash(runner, make_user):
    user = make_user(role="staff", email="tok@example.com")

    result = runner.invoke(args=["create-token", "tok@example.com", "--name", "nightly export"])

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    token = result.stdout.removesuffix("\n")
    assert "\n" not in token and token.startswith("mwp_") and len(token) > 40
    row = db.session.scalar(select(ApiToken))
    assert (row.name, row.user_id) == ("nightly export", user.id)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    every_cell = db.session.execute(text("SELECT * FROM api_tokens")).all()
    assert token not in repr(every_cell)
    assert token[len("mwp_") + 4 :] not in repr(every_cell)  # nor any long part of it (the prefix is kept)


def test_create_token_default_name(runner, make_user):
    make_user(role="reviewer", email="rev@example.com")

    result = runner.invoke(args=["create-token", "rev@example.com"])

    assert result.exit_code == 0
    assert db.session.scalar(select(ApiToken.name)) == "cli"


@pytest.mark.parametrize("active", [None, False])
def test_create_token_for_an_unknown_or_deactivated_user_exits_1(runner, make_user, active):
    if active is False:
        user = make_user(role="staff", email="gone@example.com")
        user.active = False
        db.session.commit()

    result = runner.invoke(args=["create-token", "gone@example.com"])

    assert result.exit_code == 1
    assert "Error: No active user with email gone@example.com." in result.stderr
    assert result.stdout == ""
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


# --- ensure-admin ----------------------------------------------------------------------------------


def test_ensure_admin_creates_the_first_admin_only_once(runner):
    first = runner.invoke(args=["ensure-admin"])

    assert first.exit_code == 0, first.output
    admin = stored("admin@example.com")
    assert admin.role == "admin" and admin.must_change_password is True
    password = next(
        line.split(":", 1)[1].strip() for line in first.stdout.splitlines() if "password:" in line
    )
    assert verify_password(admin.password_hash, password)
    assert "This password is shown only once" in first.stdout

    second = runner.invoke(args=["ensure-admin", "--email", "another@example.com"])

    assert second.exit_code == 0
    assert second.stdout == ""
    assert user_count() == 1


def test_ensure_admin_does_nothing_when_an_active_admin_exists(runner, make_user):
    make_user(role="admin", email="boss@example.com")

    result = runner.invoke(args=["ensure-admin"])

    assert result.exit_code == 0 and result.stdout == ""
    assert stored("admin@example.com") is None
    assert user_count() == 1


@pytest.mark.parametrize("others", [["staff", "reviewer"], ["admin-deactivated"]])
def test_ensure_admin_creates_an_admin_when_users_exist_but_no_active_admin(runner, make_user, others):
    for role in others:
        user = make_user(role=role.removesuffix("-deactivated"), email=f"{role}@example.com")
        if role.endswith("-deactivated"):
            user.active = False
            db.session.commit()

    result = runner.invoke(args=["ensure-admin"])

    assert result.exit_code == 0, result.output
    assert "First admin created — sign in at http://127.0.0.1:5000" in result.stdout
    assert stored("admin@example.com").role == "admin"


def test_ensure_admin_says_what_to_do_when_its_email_is_taken_by_another_role(runner, make_user):
    make_user(role="staff", email="admin@example.com")

    result = runner.invoke(args=["ensure-admin"])

    assert result.exit_code == 1
    assert "No active admin exists, and admin@example.com is already a user." in result.stderr
    assert stored("admin@example.com").role == "staff"
