"""Faults: the database dies mid-request, code fails mid-save, the key is wrong or lost,
a stored value is corrupted. Each time: a clear message, nothing half-saved, everything else keeps working.
"""

from __future__ import annotations

import logging
import re
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from portal import ConfigurationError, create_app
from portal.crypto import Keyring, generate_key
from portal.errors import UNDECRYPTABLE
from portal.extensions import db
from portal.models import (
    AccessPackage,
    AccessPackageChunk,
    AuditEvent,
    EncryptionCanary,
    ManualInput,
    ManualWebhook,
    PrivacyRequest,
    User,
)
from portal.models.canary import CANARY_PLAINTEXT
from portal.services import identities, manual_inputs, users
from tests.conftest import PG_URL, TEST_KEY, TEST_PASSWORD
from tests.hardening_helpers import WEBHOOK_KEY, build_world, sign_in, text_of

SERVER_ERROR = "Something went wrong on our side. Nothing you entered was half-saved; please try again."
API_SERVER_ERROR = {"detail": "Internal Server Error: nothing was half-saved; try again."}


def _count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def _entry_values(request_id: str):
    db.session.expire_all()
    entry = db.session.scalar(select(ManualInput).where(ManualInput.privacy_request_id == request_id))
    return entry.values if entry else None


# --- the database goes away in the middle of a request ---------------------------------------------


def _kill_database_connections(app) -> None:
    """PostgreSQL: terminate every backend of the test database from a separate admin connection (the
    shared server keeps running). SQLite has no server to kill: the next statement fails the same way."""
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            pids = conn.scalars(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"),
                {"name": url.database},
            ).all()
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):  # until the backends are really gone
                alive = conn.scalar(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": list(pids)},
                )
                if not alive:
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()


def _database_dies_during(monkeypatch, app, target, name: str) -> list[bool]:
    """Wrap ``target.name``: on its first call the database connection dies, then it carries on."""
    original = getattr(target, name)
    died: list[bool] = []

    def dying(*args, **kwargs):
        if not died:
            died.append(True)
            if db.engine.dialect.name == "postgresql":
                _kill_database_connections(app)
            else:  # a driver error that echoes the values, as drivers do
                raise OperationalError("UPDATE ...", args, Exception(f"disk I/O error writing {args!r}"))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)
    return died


def test_database_dying_mid_save_shows_a_clean_page_and_saves_nothing(app, monkeypatch, caplog):
    world = build_world()
    client = app.test_client()
    sign_in(client, world.users["staff"])
    url = f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}"
    events = _count(AuditEvent)
    died = _database_dies_during(monkeypatch, app, manual_inputs, "validate_values")

    with caplog.at_level(logging.ERROR):
        response = client.post(url, data={"version": "1", "field_0": "Jane Killed", "field_1": "Doe"})

    assert died and response.status_code == 500
    assert SERVER_ERROR in text_of(response)
    assert "Traceback" not in text_of(response)
    assert _entry_values(world.waiting_id) == {"first_name": "Wanda", "last_name": None, "notes": None}
    assert _count(AuditEvent) == events
    assert "Jane Killed" not in caplog.text and world.users["staff"].email not in caplog.text

    # The very next requests work, without restarting anything; the same save now goes through.
    assert client.get(f"/requests/{world.waiting_id}").status_code == 200
    assert client.post(url, data={"version": "1", "field_0": "Jane Saved"}).status_code == 302
    assert _entry_values(world.waiting_id)["first_name"] == "Jane Saved"


def test_database_dying_mid_api_upload_is_a_json_500_and_the_next_call_works(app, monkeypatch):
    world = build_world()
    client = app.test_client()
    path = f"/api/v1/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"
    headers = world.headers("staff")
    died = _database_dies_during(monkeypatch, app, manual_inputs, "validate_values")

    response = client.patch(path, json={"first_name": "Killed"}, headers=headers)

    assert died and response.status_code == 500 and response.get_json() == API_SERVER_ERROR
    assert _entry_values(world.waiting_id)["first_name"] == "Wanda"
    again = client.patch(path, json={"first_name": "Again"}, headers=headers)
    assert again.status_code == 200 and again.get_json()["fields"]["first_name"] == "Again"


def test_database_dying_during_sign_in_logs_neither_email_nor_password(app, monkeypatch, make_user, caplog):
    user = make_user(role="staff", email="private.person@example.com")
    client = app.test_client()
    credentials = {"email": user.email, "password": TEST_PASSWORD}
    died = _database_dies_during(monkeypatch, app, users, "verify_password")  # the user row was just read

    with caplog.at_level(logging.DEBUG):
        response = client.post("/auth/login", data=credentials)

    assert died and response.status_code == 500 and SERVER_ERROR in text_of(response)
    assert "Unhandled OperationalError" in caplog.text
    assert "private.person" not in caplog.text and TEST_PASSWORD not in caplog.text
    assert client.post("/auth/login", data=credentials).status_code == 302


def test_idle_pooled_connections_killed_between_requests_are_replaced_silently(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no server connections to kill")
    world = build_world()
    client = app.test_client()
    sign_in(client, world.users["staff"])
    assert client.get(f"/requests/{world.waiting_id}").status_code == 200
    db.session.remove()  # back to the pool, idle

    _kill_database_connections(app)

    assert client.get(f"/requests/{world.waiting_id}").status_code == 200  # pool_pre_ping reconnects
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


# --- code failing in the middle of a save ----------------------------------------------------------


class Boom(RuntimeError):
    pass


@pytest.fixture
def fail_after(app):
    """``fail_after("INSERT INTO manual_inputs")``: raise just after the first statement containing that
    text has run (the database did the write, nothing is committed). The seam is SQLAlchemy's public
    cursor event, not a private name of the code under test, and the returned list holds the statement
    the fault fired after, so each test proves its fault fired."""
    listeners = []

    def arm(text: str) -> list[str]:
        fired: list[str] = []

        def after(conn, cursor, statement, parameters, context, executemany):
            if not fired and text in statement:
                fired.append(statement)
                raise Boom(f"failed after {text}")

        sa.event.listen(db.engine, "after_cursor_execute", after)
        listeners.append(after)
        return fired

    yield arm
    for listener in listeners:
        sa.event.remove(db.engine, "after_cursor_execute", listener)


def test_exception_mid_request_creation_stores_nothing(app, fail_after):
    world = build_world()
    client = app.test_client()
    sign_in(client, world.users["staff"])
    before = _count(PrivacyRequest)
    fired = fail_after("INSERT INTO privacy_requests")

    response = client.post(
        "/requests/new", data={"email": "half@example.com", "policy": "default_access_policy"}
    )

    assert len(fired) == 1
    assert response.status_code == 500 and SERVER_ERROR in text_of(response)
    assert _count(PrivacyRequest) == before


def test_exception_mid_field_edit_keeps_the_old_version(app, fail_after):
    world = build_world()
    client = app.test_client()
    sign_in(client, world.users["admin"])
    db.session.expire_all()
    before = [(w.version, w.fields) for w in db.session.scalars(select(ManualWebhook))]
    fired = fail_after("UPDATE manual_webhooks")

    response = client.post(
        f"/admin/connections/{WEBHOOK_KEY}/fields",
        data={"fields-0-pii_field": "Only One", "save": "Save fields"},
    )

    assert len(fired) == 1
    assert response.status_code == 500 and SERVER_ERROR in text_of(response)
    db.session.expire_all()
    assert [(w.version, w.fields) for w in db.session.scalars(select(ManualWebhook))] == before


def test_exception_after_the_api_wrote_the_entry_stores_nothing(app, fail_after):
    world = build_world()
    client = app.test_client()
    events = _count(AuditEvent)
    fired = fail_after("INSERT INTO manual_inputs")

    response = client.patch(
        f"/api/v1/privacy-request/{world.empty_waiting_id}/access_manual_webhook/{WEBHOOK_KEY}",
        json={"first_name": "Half"},
        headers=world.headers("staff"),
    )

    assert len(fired) == 1
    assert response.status_code == 500 and response.get_json() == API_SERVER_ERROR
    assert _entry_values(world.empty_waiting_id) is None
    assert _count(AuditEvent) == events


def test_exception_after_the_form_wrote_the_entry_stores_nothing(app, fail_after):
    world = build_world()
    client = app.test_client()
    sign_in(client, world.users["staff"])
    events = _count(AuditEvent)
    fired = fail_after("INSERT INTO manual_inputs")

    response = client.post(
        f"/requests/{world.empty_waiting_id}/manual/{WEBHOOK_KEY}", data={"version": "1", "field_0": "Half"}
    )

    assert len(fired) == 1
    assert response.status_code == 500 and SERVER_ERROR in text_of(response)
    assert _entry_values(world.empty_waiting_id) is None
    assert _count(AuditEvent) == events
    assert client.get(f"/requests/{world.empty_waiting_id}").status_code == 200


# --- the encryption key at start -------------------------------------------------------------------


def _start(app_config, tmp_path, **overrides):
    config = {**app_config, **overrides}
    config = {key: value for key, value in config.items() if value is not None}
    started = create_app(config, instance_path=str(tmp_path / "other-instance"))
    with started.app_context():
        db.engine.dispose()
    return started


def _canary():
    db.session.expire_all()
    return db.session.get(EncryptionCanary, 1)


def test_the_canary_is_written_with_the_first_key_once_there_is_data(app, app_config, tmp_path):
    assert _canary() is None  # an empty database has nothing to protect yet
    build_world()

    _start(app_config, tmp_path)

    raw = db.session.execute(sa.text("SELECT value FROM encryption_canary WHERE id = 1")).scalar_one()
    assert Keyring.key_id_of(bytes(raw)) == Keyring(TEST_KEY).first_key_id
    assert _canary().value == CANARY_PLAINTEXT


@pytest.mark.parametrize("with_canary", [True, False], ids=["canary", "no-canary-yet"])
def test_a_wrong_key_refuses_to_start_with_a_clear_message(app, app_config, tmp_path, with_canary):
    build_world()
    if with_canary:
        _start(app_config, tmp_path)
        assert _canary() is not None

    with pytest.raises(ConfigurationError) as refused:
        _start(app_config, tmp_path, ENCRYPTION_KEY=generate_key())

    message = str(refused.value)
    assert message.startswith("Refusing to start: PORTAL_ENCRYPTION_KEY cannot decrypt this database")
    assert "Set PORTAL_ENCRYPTION_KEY to the key the data was encrypted with" in message


def test_a_missing_key_refuses_to_start_and_says_a_new_one_was_generated(app, app_config, tmp_path):
    build_world()
    _start(app_config, tmp_path)

    with pytest.raises(ConfigurationError) as refused:
        _start(app_config, tmp_path, ENCRYPTION_KEY=None)

    key_file = tmp_path / "other-instance" / "encryption.key"
    assert "PORTAL_ENCRYPTION_KEY cannot decrypt this database" in str(refused.value)
    assert f"a new one was just generated into {key_file}" in str(refused.value)


def test_a_rotation_keyring_with_the_old_key_after_the_new_one_starts(app, app_config, tmp_path):
    build_world()
    _start(app_config, tmp_path)

    started = _start(app_config, tmp_path, ENCRYPTION_KEY=f"{generate_key()},{TEST_KEY}")

    assert started.extensions["portal_keyring"].first_key_id != Keyring(TEST_KEY).first_key_id


def test_the_check_can_be_turned_off_and_then_undecryptable_data_is_an_error_never_a_blank(
    app, app_config, tmp_path
):
    world = build_world()
    _start(app_config, tmp_path)

    admin_id, complete_id = world.users["admin"].id, world.complete_id  # read here, not in the other app

    wrong = _start(app_config, tmp_path, ENCRYPTION_KEY=generate_key(), VERIFY_ENCRYPTION_KEY=False)
    client = wrong.test_client()
    with wrong.app_context():
        sign_in(client, db.session.get(User, admin_id))
        page = client.get(f"/requests/{complete_id}")
        package = client.get(f"/packages/{complete_id}")
        db.session.remove()
        db.engine.dispose()

    assert page.status_code == 200
    assert "The identity of this request cannot be decrypted." in text_of(page)
    assert package.status_code == 500 and UNDECRYPTABLE in text_of(package)


def test_an_unreachable_database_does_not_stop_the_start(app_config, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="portal.key_check"):
        started = _start(app_config, tmp_path, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/nothing")

    assert started is not None
    assert "Could not check PORTAL_ENCRYPTION_KEY against the database (OperationalError)" in caplog.text


# --- a corrupted value -----------------------------------------------------------------------------


def _corrupt(table: str, column: str, where: str, value: str) -> None:
    """Flip one byte of the stored ciphertext: AES-GCM's tag no longer matches."""
    stored = bytes(
        db.session.execute(
            sa.text(f'SELECT "{column}" FROM {table} WHERE {where} = :v'), {"v": value}
        ).scalar_one()
    )
    flipped = stored[:-1] + bytes([stored[-1] ^ 0x01])
    db.session.execute(
        sa.text(f'UPDATE {table} SET "{column}" = :b WHERE {where} = :v'), {"b": flipped, "v": value}
    )
    db.session.commit()
    db.session.expire_all()


def test_a_corrupted_identity_shows_an_error_on_that_request_only(app, client):
    world = build_world()
    sign_in(client, world.users["admin"])
    _corrupt("privacy_requests", "identity", "id", world.waiting_id)

    page = client.get(f"/requests/{world.waiting_id}")
    queue = client.get("/requests/?status=all")
    reveal = client.post(f"/requests/{world.waiting_id}/reveal")
    other = client.get(f"/requests/{world.complete_id}")
    other_reveal = client.post(f"/requests/{world.complete_id}/reveal")

    assert page.status_code == 200
    assert "The identity of this request cannot be decrypted." in text_of(page)
    assert queue.status_code == 200 and "Cannot be decrypted" in text_of(queue)
    assert "j•••@e•••.com" in text_of(queue)  # the other requests are listed as usual
    assert reveal.status_code == 500 and UNDECRYPTABLE in text_of(reveal)
    assert other.status_code == 200 and "cannot be decrypted" not in text_of(other)
    assert other_reveal.status_code == 200 and "jane.subject@example.com" in text_of(other_reveal)


def test_a_corrupted_external_id_or_denial_reason_shows_an_error_on_that_request_only(app, client):
    world = build_world()
    sign_in(client, world.users["admin"])
    for request_id, external_id in ((world.waiting_id, "CRM-BROKEN"), (world.empty_waiting_id, "CRM-FINE")):
        pr = db.session.get(PrivacyRequest, request_id)
        pr.external_id = external_id
        pr.external_id_index = identities.external_id_index(external_id)
    denied = db.session.get(PrivacyRequest, world.empty_waiting_id)
    denied.status, denied.denial_reason = "denied", "Not verified"
    db.session.commit()
    _corrupt("privacy_requests", "external_id", "id", world.waiting_id)
    _corrupt("privacy_requests", "denial_reason", "id", world.empty_waiting_id)

    queue = client.get("/requests/?status=all")
    page = client.get(f"/requests/{world.waiting_id}")
    denied_page = client.get(f"/requests/{world.empty_waiting_id}")
    api = client.get(f"/api/v1/privacy-request?request_id={world.waiting_id}", headers=world.headers("admin"))
    other = client.get(
        f"/api/v1/privacy-request?request_id={world.complete_id}", headers=world.headers("admin")
    )

    def words(response) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", text_of(response)).split())

    assert queue.status_code == 200
    assert "External: Cannot be decrypted" in words(queue) and "External: CRM-FINE" in words(queue)
    assert page.status_code == 200 and "External id Cannot be decrypted" in words(page)
    assert denied_page.status_code == 200 and "Denied. Reason: Cannot be decrypted" in words(denied_page)
    assert api.status_code == 500 and api.get_json() == {"detail": UNDECRYPTABLE}  # an error, never a null
    assert other.status_code == 200 and other.get_json()["items"][0]["id"] == world.complete_id


def test_a_corrupted_manual_entry_shows_an_error_on_that_request_only(app, client):
    world = build_world()
    sign_in(client, world.users["staff"])
    entry_id = db.session.scalar(
        select(ManualInput.id).where(ManualInput.privacy_request_id == world.waiting_id)
    )
    _corrupt("manual_inputs", "values", "id", entry_id)
    view = f"/api/v1/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"

    page = client.get(f"/requests/{world.waiting_id}")
    form = client.get(f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}")
    api = client.get(view, headers=world.headers("staff"))
    other = client.get(f"/requests/{world.empty_waiting_id}/manual/{WEBHOOK_KEY}")

    assert page.status_code == 200 and "Cannot be decrypted" in text_of(page)
    assert form.status_code == 500 and UNDECRYPTABLE in text_of(form)
    assert api.status_code == 500 and api.get_json() == {"detail": UNDECRYPTABLE}
    assert other.status_code == 200


def test_a_corrupted_package_shows_an_error_and_other_packages_open(app, client):
    world = build_world()
    sign_in(client, world.users["reviewer"])
    other_id = _second_complete_request()
    package_id = db.session.scalar(
        select(AccessPackage.id).where(AccessPackage.privacy_request_id == world.complete_id)
    )
    _corrupt("access_packages", "summary", "id", package_id)

    broken = client.get(f"/packages/{world.complete_id}")
    api = client.get(
        f"/api/v1/privacy-request/{world.complete_id}/package", headers=world.headers("reviewer")
    )
    listing = client.get("/packages/")
    other = client.get(f"/packages/{other_id}")

    assert broken.status_code == 500 and UNDECRYPTABLE in text_of(broken)
    assert api.status_code == 500 and api.get_json() == {"detail": UNDECRYPTABLE}
    assert listing.status_code == 200 and other.status_code == 200
    assert "Wendy" in text_of(other)


def _package_events() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("package.%"))))


def _chunk_id_of(request_id: str) -> int:
    return db.session.scalar(
        select(AccessPackageChunk.id)
        .join(AccessPackage, AccessPackage.id == AccessPackageChunk.package_id)
        .where(AccessPackage.privacy_request_id == request_id)
    )


def test_a_corrupted_package_chunk_shows_an_error_on_the_package_page_and_audits_nothing(app, client):
    world = build_world()
    sign_in(client, world.users["reviewer"])
    _corrupt("access_package_chunks", "data", "id", _chunk_id_of(world.complete_id))

    broken = client.get(f"/packages/{world.complete_id}")

    assert broken.status_code == 500 and UNDECRYPTABLE in text_of(broken)
    assert _package_events() == []


def test_a_chunk_under_a_key_that_is_not_configured_fails_every_download_before_the_first_byte(app, client):
    world = build_world()
    sign_in(client, world.users["reviewer"])
    chunk_id = _chunk_id_of(world.complete_id)
    foreign = Keyring(generate_key()).encrypt(b'{"first_name":"Jane"}')
    db.session.execute(
        sa.text("UPDATE access_package_chunks SET data = :b WHERE id = :id"), {"b": foreign, "id": chunk_id}
    )
    db.session.commit()

    json_download = client.get(f"/packages/{world.complete_id}/package.json")
    zip_download = client.get(f"/packages/{world.complete_id}/package.zip")
    api = client.get(
        f"/api/v1/privacy-request/{world.complete_id}/package", headers=world.headers("reviewer")
    )

    assert json_download.status_code == 500 and UNDECRYPTABLE in text_of(json_download)
    assert zip_download.status_code == 500 and UNDECRYPTABLE in text_of(zip_download)
    assert api.status_code == 500 and api.get_json() == {"detail": UNDECRYPTABLE}
    assert _package_events() == []


def _second_complete_request() -> str:
    from tests.hardening_helpers import complete_request

    return complete_request(email="second@example.com", values={"first_name": "Wendy"})
