"""Fixtures in flaskr's shape (``app``, ``client``, ``runner``, ``login_as``), run on every backend.

Every test that uses ``app`` runs once on SQLite and once on PostgreSQL. PostgreSQL comes from
``PORTAL_TEST_POSTGRES_URL`` (default: this machine kind's server); each pytest session migrates a fresh
database of its own and drops it at the end, so parallel runs never collide. When the server cannot be
reached the PostgreSQL half is skipped with the reason — unless ``PORTAL_TEST_REQUIRE_ALL=1`` (CI), where
that is a failure.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from flask import g, request_started
from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db
from portal.models import Base, Role

PG_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_ALL = os.environ.get("PORTAL_TEST_REQUIRE_ALL") == "1"
TEST_KEY = "zRHhzjZ9a2vh9g1kr9rJmA2rYyY5D5hYb6l2pRj0oGc="  # 32 bytes, url-safe base64: tests only
TEST_PASSWORD = "correct-horse-staple-42"


def _base_config(database_url: str, instance_path: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": TEST_KEY,
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_COST": 8,
        "RATELIMIT_STORAGE_URI": "memory://",
        "INSTANCE_PATH_FOR_TESTS": instance_path,
    }


def _postgres_unavailable_reason() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not configured here"
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """A freshly migrated database for this pytest session, on each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "portal.sqlite3"
        url = f"sqlite:///{path}"
        _migrate(url, tmp_path_factory)
        yield url
        return
    reason = _postgres_unavailable_reason()
    if reason:
        if REQUIRE_ALL:
            pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(reason)
    name = f"portal_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url, tmp_path_factory)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str, tmp_path_factory) -> None:
    app = create_app(_base_config(url, str(tmp_path_factory.mktemp("instance"))))
    with app.app_context():
        upgrade()
        db.engine.dispose()


def _clean(app) -> None:
    """Empty every table but keep the rows the migrations create (the default policy)."""
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name == "policies":
                    conn.execute(table.delete().where(table.c.key != "default_access_policy"))
                else:
                    conn.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def app_config(database_url, tmp_path) -> dict:
    """Override per test with ``@pytest.mark.parametrize`` or by requesting and mutating it."""
    return _base_config(database_url, str(tmp_path))


def _fresh_g(sender, **extra) -> None:
    """Give every test request a fresh ``g``, as production does.

    Requests reuse the fixture's app context (and so its ``g``): without this, Flask-Login's signed-in
    user and Flask-WTF's CSRF token would leak from one request (or test client) into the next.
    """
    for name in list(g):
        g.pop(name)


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.instance_path = app_config["INSTANCE_PATH_FOR_TESTS"]
    with app.app_context(), request_started.connected_to(_fresh_g, app):
        yield app
    _clean(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    from tests.factories import make_user

    return make_user


@pytest.fixture
def login_as(client, make_user):
    """``login_as("staff")`` creates a user with that role and signs the test client in as them."""

    def _login(role: str | Role = Role.STAFF, **kwargs):
        user = make_user(role=str(role), **kwargs)
        with client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True
        return user

    return _login
