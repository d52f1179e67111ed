"""Config layers, the production guard, the encryption key file and the default database (S8)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat

import pytest

from portal import ConfigurationError, create_app
from portal.config import DEFAULT_SECRET_KEY
from portal.crypto import EncryptionKeyError, generate_key
from portal.execution.connectors import sql as sql_connector
from portal.extensions import db


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """An empty instance folder, and no PORTAL_* / FLASK_DEBUG settings leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith("PORTAL_") or name == "FLASK_DEBUG":
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def base(app_config) -> dict:
    """The suite's test settings (database of this backend) minus what the tests below vary."""
    return {
        key: app_config[key]
        for key in ("TESTING", "SECRET_KEY", "DATABASE_URL", "ENCRYPTION_KEY", "PASSWORD_HASH_MEMORY_COST")
    }


def test_instance_config_is_read(instance, base):
    (instance / "config.py").write_text("PAGE_SIZE = 7\nREQUIRE_APPROVAL = True\n")

    app = create_app(base, instance_path=str(instance))

    assert app.instance_path == str(instance)
    assert app.config["PAGE_SIZE"] == 7
    assert app.config["REQUIRE_APPROVAL"] is True
    assert app.config["SQLALCHEMY_DATABASE_URI"] == base["DATABASE_URL"]


def test_environment_beats_instance_config_and_test_config_beats_both(instance, base, monkeypatch):
    (instance / "config.py").write_text("PAGE_SIZE = 7\nIDLE_TIMEOUT_MINUTES = 5\n")
    monkeypatch.setenv("PORTAL_PAGE_SIZE", "9")
    monkeypatch.setenv("PORTAL_IDLE_TIMEOUT_MINUTES", "15")

    app = create_app({**base, "IDLE_TIMEOUT_MINUTES": 60}, instance_path=str(instance))

    assert app.config["PAGE_SIZE"] == 9
    assert app.config["IDLE_TIMEOUT_MINUTES"] == 60


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_require_approval_from_the_environment_is_a_boolean(instance, base, monkeypatch, value, expected):
    monkeypatch.setenv("PORTAL_REQUIRE_APPROVAL", value)

    app = create_app(base, instance_path=str(instance))

    assert app.config["REQUIRE_APPROVAL"] is expected


def test_require_approval_defaults_to_false(instance, base):
    assert create_app(base, instance_path=str(instance)).config["REQUIRE_APPROVAL"] is False


@pytest.mark.parametrize("secret_key", [None, DEFAULT_SECRET_KEY, ""])
def test_production_refuses_the_default_secret_key(instance, base, secret_key):
    settings = {**base, "TESTING": False, "DEBUG": False}
    if secret_key is None:
        del settings["SECRET_KEY"]
    else:
        settings["SECRET_KEY"] = secret_key

    with pytest.raises(ConfigurationError, match="PORTAL_SECRET_KEY"):
        create_app(settings, instance_path=str(instance))


def test_production_starts_with_a_real_secret_key_from_the_environment(instance, base, monkeypatch):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "a-long-random-production-secret")
    settings = {key: value for key, value in base.items() if key not in ("TESTING", "SECRET_KEY")}

    app = create_app(settings, instance_path=str(instance))

    assert not app.testing and not app.debug
    assert app.config["SECRET_KEY"] == "a-long-random-production-secret"


@pytest.mark.parametrize("flag", ["DEBUG", "TESTING"])
def test_debug_or_testing_may_use_the_default_secret_key(instance, base, flag):
    settings = {**base, "TESTING": False, "DEBUG": False, flag: True}
    del settings["SECRET_KEY"]

    app = create_app(settings, instance_path=str(instance))

    assert app.config["SECRET_KEY"] == DEFAULT_SECRET_KEY


def test_encryption_key_is_generated_once_with_a_warning_then_reused(instance, base, caplog):
    del base["ENCRYPTION_KEY"]
    key_file = instance / "encryption.key"

    with caplog.at_level(logging.WARNING, logger="portal.crypto"):
        first = create_app(base, instance_path=str(instance))
    warnings = [r for r in caplog.records if r.name == "portal.crypto" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PORTAL_ENCRYPTION_KEY is not set: generated a new key into" in warnings[0].getMessage()
    assert str(key_file) in warnings[0].getMessage()
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text()
    sealed = first.extensions["portal_keyring"].encrypt(b"jane@example.com")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="portal.crypto"):
        second = create_app(base, instance_path=str(instance))

    assert [r for r in caplog.records if r.name == "portal.crypto"] == []
    assert key_file.read_text() == key_text
    assert second.extensions["portal_keyring"].decrypt(sealed) == b"jane@example.com"


def test_configured_encryption_key_writes_no_file(instance, base):
    create_app(base, instance_path=str(instance))

    assert not (instance / "encryption.key").exists()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key!", "PORTAL_ENCRYPTION_KEY"),
        ("c2hvcnQ=", "PORTAL_ENCRYPTION_KEY must decode to 32 bytes (AES-256), got 5."),
        (f"{generate_key()},bad", "PORTAL_ENCRYPTION_KEY"),
    ],
)
def test_invalid_encryption_key_is_a_clear_error(instance, base, monkeypatch, key, message):
    del base["ENCRYPTION_KEY"]
    monkeypatch.setenv("PORTAL_ENCRYPTION_KEY", key)

    with pytest.raises(EncryptionKeyError) as error:
        create_app(base, instance_path=str(instance))

    assert message in str(error.value)


def test_default_database_is_a_sqlite_file_in_the_instance_folder(instance, base):
    del base["DATABASE_URL"]

    app = create_app(base, instance_path=str(instance))

    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'portal.sqlite3'}"


def test_database_url_from_the_environment(instance, base, monkeypatch):
    del base["DATABASE_URL"]
    monkeypatch.setenv("PORTAL_DATABASE_URL", "sqlite:////tmp/elsewhere.sqlite3")

    app = create_app(base, instance_path=str(instance))

    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/elsewhere.sqlite3"


def test_the_portal_sqlite_file_is_in_write_ahead_log_mode_with_full_sync(instance, base):
    del base["DATABASE_URL"]
    app = create_app(base, instance_path=str(instance))

    with app.app_context():
        with db.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        db.engine.dispose()

    assert (mode, sync) == ("wal", 2)  # 2: FULL, every commit durable
    with sqlite3.connect(instance / "portal.sqlite3") as raw:  # kept in the file for every process
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_sqlite_collection_source_keeps_its_own_journal_mode(instance, base, tmp_path):
    source = tmp_path / "source.sqlite3"
    with sqlite3.connect(source) as raw:
        raw.execute("CREATE TABLE t (x INTEGER)")
    app = create_app(base, instance_path=str(instance))

    with app.app_context():
        engine = sql_connector.create_engine("sqlite", {"path": str(source)})
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        engine.dispose()

    with sqlite3.connect(source) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_oauth_tokens_last_an_hour_unless_set_otherwise(instance, base, monkeypatch):
    assert create_app(base, instance_path=str(instance)).config["OAUTH_TOKEN_MINUTES"] == 60

    monkeypatch.setenv("PORTAL_OAUTH_TOKEN_MINUTES", "11520")

    assert create_app(base, instance_path=str(instance)).config["OAUTH_TOKEN_MINUTES"] == 11520


@pytest.mark.parametrize("value", ["0", "-5", "1.5", '"sixty"', "true"])
def test_a_token_lifetime_that_is_no_positive_whole_number_refuses_to_start(
    instance, base, monkeypatch, value
):
    monkeypatch.setenv("PORTAL_OAUTH_TOKEN_MINUTES", value)

    with pytest.raises(ConfigurationError, match="PORTAL_OAUTH_TOKEN_MINUTES must be a whole number"):
        create_app(base, instance_path=str(instance))


@pytest.mark.parametrize("name", ["DELIVERY_LINK_DAYS", "DELIVERY_CODE_MINUTES", "DELIVERY_CODE_ATTEMPTS"])
@pytest.mark.parametrize("value", ["0", "1.5", "true"])
def test_delivery_settings_that_are_no_positive_whole_number_refuse_to_start(
    instance, base, monkeypatch, name, value
):
    assert create_app(base, instance_path=str(instance)).config[name] >= 1
    monkeypatch.setenv(f"PORTAL_{name}", value)

    with pytest.raises(ConfigurationError, match=f"PORTAL_{name} must be a whole number"):
        create_app(base, instance_path=str(instance))
