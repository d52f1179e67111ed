"""Key rotation: `flask rotate-encryption-key` re-encrypts every encrypted column under a
new key, in batches, while the old key still reads; afterwards the new key alone reads everything."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal import ConfigurationError, create_app
from portal.crypto import Keyring, generate_key
from portal.extensions import db
from portal.models import ConnectionConfig, DeadlineExtension, ManualInput, PrivacyRequest, RequestNote
from portal.models.audit import Actor
from portal.models.canary import CANARY_PLAINTEXT
from portal.services import deadlines, identities, key_rotation, notes, privacy_requests, request_lists
from tests.conftest import TEST_KEY
from tests.hardening_helpers import SUBJECT_EMAIL, TEST_ACTOR, WEBHOOK_KEY, build_world
from tests.workflow_helpers import new_request

NEW_KEY = generate_key()
SECRETS = {"url": "postgresql://reader:s3cret@db.internal/customers"}
EXTERNAL_ID = "CRM-77"
DENIAL_REASON = "Asked on behalf of someone else"
NOTE = "Called Wanda on +44 20 7946 0000:\nshe confirms the CRM account"
CANCEL_REASON = "Withdrawn by Jane by phone"
EXTENSION_REASON = "Wanda's archive boxes are off site"


@pytest.fixture
def stored(app, app_config, tmp_path):
    """A portal with every kind of encrypted value, and its canary; returns what each should read as."""
    world = build_world()
    spare = db.session.scalar(sa.select(ConnectionConfig).where(ConnectionConfig.key == "spare"))
    spare.secrets = SECRETS
    complete = db.session.get(PrivacyRequest, world.complete_id)
    complete.external_id = EXTERNAL_ID
    complete.external_id_index = identities.external_id_index(EXTERNAL_ID)
    denied = new_request(email="denied@example.com")
    db.session.execute(sa.update(PrivacyRequest).where(PrivacyRequest.id == denied).values(status="pending"))
    privacy_requests.deny_request(denied, DENIAL_REASON, TEST_ACTOR)
    staff = Actor.for_user(world.users["staff"])
    note = notes.add_note(world.waiting_id, NOTE, staff)
    admin = Actor.for_user(world.users["admin"])
    deadlines.extend(world.waiting_id, admin, preset="ccpa", reason=EXTENSION_REASON)
    canceled = new_request(email="canceled@example.com")
    privacy_requests.cancel_request(canceled, staff, CANCEL_REASON)
    db.session.commit()
    _start(app_config, tmp_path)  # writes the canary with the current key
    entry = db.session.scalar(
        sa.select(ManualInput).where(ManualInput.privacy_request_id == world.waiting_id)
    )
    return {
        "world": world,
        "identity": (world.complete_id, {"email": SUBJECT_EMAIL}),
        "entry": (entry.id, {"first_name": "Wanda", "last_name": None, "notes": None}),
        "package": (
            world.complete_id,
            {WEBHOOK_KEY: [{"first_name": "Jane", "last_name": None, "notes": None}]},
        ),
        "denied": denied,
        "note": note.id,
        "canceled": canceled,
    }


def _start(app_config, tmp_path, **overrides):
    started = create_app({**app_config, **overrides}, instance_path=str(tmp_path / "rotation-instance"))
    with started.app_context():
        db.engine.dispose()
    return started


def _invoke(other_app, *args: str):
    """Run a command of ``other_app`` (its config, its keyring), not of the test's own app."""
    with other_app.app_context():
        result = other_app.test_cli_runner().invoke(args=list(args))
        db.session.remove()
        db.engine.dispose()
    return result


def _raw_values() -> list[tuple[str, object, bytes]]:
    """(table.column, id, stored bytes) of every encrypted value in the database."""
    found = []
    for table, pk, column in key_rotation.encrypted_columns():
        t = key_rotation.raw_table(table, pk, column)
        for row_id, value in db.session.execute(
            sa.select(t.c[pk], t.c[column]).where(t.c[column].is_not(None))
        ):
            found.append((f"{table}.{column}", row_id, bytes(value)))
    db.session.rollback()
    return sorted(found)  # a table scan's order may change when rows are rewritten


def _key_ids() -> set[bytes]:
    return {Keyring.key_id_of(value) for _, _, value in _raw_values()}


def _read_everything(app_config, tmp_path, key: str, stored: dict) -> dict:
    """What an app started with ``key`` reads back (ids are looked up first, outside that app)."""
    (request_id, _), (entry_id, _), _ = stored["identity"], stored["entry"], stored["package"]
    reader = _start(app_config, tmp_path, ENCRYPTION_KEY=key)
    with reader.app_context():
        pr = db.session.get(PrivacyRequest, request_id)
        read = {
            "identity": pr.identity,
            "entry": db.session.get(ManualInput, entry_id).values,
            "package": pr.package.data,
            "secrets": db.session.scalar(
                sa.select(ConnectionConfig.secrets).where(ConnectionConfig.key == "spare")
            ),
            "found_by_email": [p.id for p in request_lists.list_requests(search=SUBJECT_EMAIL).items],
            "external_id": pr.external_id,
            "found_by_external_id": [p.id for p in request_lists.list_requests(search="crm-77").items],
            "denial_reason": db.session.get(PrivacyRequest, stored["denied"]).denial_reason,
            "note": db.session.get(RequestNote, stored["note"]).body,
            "cancel_reason": db.session.get(PrivacyRequest, stored["canceled"]).cancel_reason,
            "extension_reason": db.session.scalar(sa.select(DeadlineExtension.reason)),
        }
        db.session.remove()
        db.engine.dispose()
    return read


def _expected(stored: dict) -> dict:
    return {
        "identity": stored["identity"][1],
        "entry": stored["entry"][1],
        "package": stored["package"][1],
        "secrets": SECRETS,
        "found_by_email": [stored["identity"][0]],
        "external_id": EXTERNAL_ID,
        "found_by_external_id": [stored["identity"][0]],
        "denial_reason": DENIAL_REASON,
        "note": NOTE,
        "cancel_reason": CANCEL_REASON,
        "extension_reason": EXTENSION_REASON,
    }


def test_every_encrypted_column_is_covered():
    assert set(key_rotation.encrypted_columns()) >= {
        ("privacy_requests", "id", "identity"),
        ("privacy_requests", "id", "external_id"),
        ("privacy_requests", "id", "denial_reason"),
        ("privacy_requests", "id", "cancel_reason"),
        ("request_notes", "id", "body"),
        ("deadline_extensions", "id", "reason"),
        ("manual_inputs", "id", "values"),
        ("access_packages", "id", "summary"),
        ("access_package_chunks", "id", "data"),
        ("connection_configs", "id", "secrets"),
        ("encryption_canary", "id", "value"),
    }


def test_rotation_re_encrypts_everything_and_the_new_key_alone_reads_it(runner, app_config, tmp_path, stored):
    values = len(_raw_values())

    result = runner.invoke(args=["rotate-encryption-key", "--new-key", NEW_KEY, "--batch-size", "2"])

    assert result.exit_code == 0, result.output
    assert f"Re-encrypted {values} value(s); 0 already used the new key;" in result.stderr
    assert "Now set PORTAL_ENCRYPTION_KEY on every process to the new key" in result.stderr
    assert NEW_KEY not in result.output  # keys are never printed
    assert _key_ids() == {Keyring(NEW_KEY).first_key_id}
    assert _read_everything(app_config, tmp_path, NEW_KEY, stored) == _expected(stored)
    with pytest.raises(ConfigurationError, match="PORTAL_ENCRYPTION_KEY cannot decrypt this database"):
        _start(app_config, tmp_path)  # the old key alone no longer opens the database
    raw_canary = db.session.execute(sa.text("SELECT value FROM encryption_canary")).scalar_one()
    assert Keyring(NEW_KEY).decrypt(bytes(raw_canary)) == f'"{CANARY_PLAINTEXT}"'.encode()


def test_the_old_key_still_reads_while_the_rotation_runs(app, app_config, tmp_path, stored):
    ring = Keyring(TEST_KEY).rotated(NEW_KEY)
    during = Keyring(f"{NEW_KEY},{TEST_KEY}")  # what every process runs with meanwhile
    seen_key_ids: list[set[bytes]] = []

    def after_batch():
        db.session.commit()
        raw = _raw_values()
        seen_key_ids.append({Keyring.key_id_of(value) for _, _, value in raw})
        assert all(during.decrypt(value) for _, _, value in raw)  # every value readable at every step

    report = key_rotation.rotate(ring, after_batch=after_batch, batch_size=1)
    db.session.commit()

    assert report.complete and report.reencrypted == len(_raw_values())
    assert any(len(ids) == 2 for ids in seen_key_ids)  # there were moments with both keys in use
    assert _read_everything(app_config, tmp_path, f"{NEW_KEY},{TEST_KEY}", stored) == _expected(stored)


def test_with_the_new_key_already_first_in_the_config_no_option_is_needed(app, app_config, tmp_path, stored):
    rotating = _start(app_config, tmp_path, ENCRYPTION_KEY=f"{NEW_KEY},{TEST_KEY}")

    result = _invoke(rotating, "rotate-encryption-key")

    assert result.exit_code == 0, result.output
    assert _key_ids() == {Keyring(NEW_KEY).first_key_id}
    assert _read_everything(app_config, tmp_path, NEW_KEY, stored) == _expected(stored)


def test_running_it_again_changes_nothing(runner, stored):
    runner.invoke(args=["rotate-encryption-key", "--new-key", NEW_KEY])
    before = _raw_values()

    again = runner.invoke(args=["rotate-encryption-key", "--new-key", NEW_KEY])

    assert again.exit_code == 0
    assert "Re-encrypted 0 value(s);" in again.stderr
    assert _raw_values() == before


def test_a_key_kept_in_the_instance_file_is_updated(app_config, tmp_path, stored):
    instance = tmp_path / "rotation-instance"
    instance.mkdir(exist_ok=True)
    (instance / "encryption.key").write_text(TEST_KEY + "\n")
    from_file = _start(app_config, tmp_path, ENCRYPTION_KEY=None)

    result = _invoke(from_file, "rotate-encryption-key", "--new-key", NEW_KEY)

    assert result.exit_code == 0, result.output
    assert f"Updated {instance / 'encryption.key'}" in result.stderr
    assert (instance / "encryption.key").read_text() == f"{NEW_KEY},{TEST_KEY}\n"
    restarted = _start(app_config, tmp_path, ENCRYPTION_KEY=None)
    assert restarted.extensions["portal_keyring"].first_key_id == Keyring(NEW_KEY).first_key_id


def test_an_invalid_new_key_is_refused_before_anything_changes(runner, stored):
    before = _raw_values()

    result = runner.invoke(args=["rotate-encryption-key", "--new-key", "not-a-key"])

    assert result.exit_code == 1
    assert "Error: --new-key is not valid url-safe base64" in result.stderr
    assert _raw_values() == before


def test_a_value_no_key_can_read_is_reported_and_left_alone(runner, stored):
    entry_id = stored["entry"][0]
    broken = b"\x01" + b"\x00" * 40
    db.session.execute(
        sa.text('UPDATE manual_inputs SET "values" = :v WHERE id = :id'), {"v": broken, "id": entry_id}
    )
    db.session.commit()

    result = runner.invoke(args=["rotate-encryption-key", "--new-key", NEW_KEY])

    assert result.exit_code == 1
    assert (
        f"1 value(s) cannot be decrypted with any configured key and were left as they are: manual_inputs.values id {entry_id}."
        in result.stderr
    )
    raw = {(where, row_id): value for where, row_id, value in _raw_values()}
    assert raw.pop(("manual_inputs.values", entry_id)) == broken
    assert {Keyring.key_id_of(value) for value in raw.values()} == {Keyring(NEW_KEY).first_key_id}
