"""`flask db upgrade` builds the whole schema on a fresh database of each backend, downgrades cleanly,
and the models match the migrations (S8: schema changes are migrations, never ``create_all``)."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal import create_app
from portal.crypto import Keyring
from portal.extensions import db
from portal.models import AccessPackageChunk, Base, PrivacyRequest
from portal.services import request_lists
from tests.conftest import PG_URL, REQUIRE_ALL, TEST_KEY, _base_config, _postgres_unavailable_reason


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path):
    """An empty database nobody has migrated yet: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    reason = _postgres_unavailable_reason()
    if reason:
        if REQUIRE_ALL:
            pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(reason)
    name = f"portal_migration_test_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def fresh_app(fresh_database_url, tmp_path):
    config = {**_base_config(fresh_database_url, str(tmp_path)), "PACKAGE_CHUNK_BYTES": 64}
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    yield app
    with app.app_context():
        db.engine.dispose()


def _flask_db(app, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def _tables(app) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def _policies(app) -> list[tuple]:
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT key, action_type, days_to_respond FROM policies")).all()


def test_upgrade_creates_every_table_and_the_default_policy(fresh_app):
    assert _tables(fresh_app) == set()

    _flask_db(fresh_app, "upgrade")

    assert _tables(fresh_app) == set(Base.metadata.tables) | {"alembic_version"}
    assert _policies(fresh_app) == [("default_access_policy", "access", 30)]


def test_downgrade_to_base_then_upgrade_again(fresh_app):
    _flask_db(fresh_app, "upgrade")

    _flask_db(fresh_app, "downgrade", "base")
    assert _tables(fresh_app) <= {"alembic_version"}

    _flask_db(fresh_app, "upgrade")
    assert _tables(fresh_app) == set(Base.metadata.tables) | {"alembic_version"}
    assert _policies(fresh_app) == [("default_access_policy", "access", 30)]


def test_models_match_the_migrations(fresh_app):
    _flask_db(fresh_app, "upgrade")

    with fresh_app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == [], "the models and the migrations differ; add a migration:\n" + "\n".join(
        map(repr, differences)
    )


OLD_PACKAGE = {
    "shop:customer": [{"id": n, "name": f"Ann {n}", "note": "ü \n <b>"} for n in range(30)],
    "shop:nothing": [],
    "crm": [{"first_name": "Ann", "last_name": None}],
}


def _insert_old_package(app, blob: bytes) -> None:
    """A completed request with a package stored the 0004 way: one encrypted blob in ``data``."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO privacy_requests (id, policy_id, identity, status, created_at, updated_at, due_date) "
                "SELECT 'pri_old', id, :identity, 'complete', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP FROM policies"
            ),
            {"identity": Keyring(TEST_KEY).encrypt(b'{"email": "ann@example.com"}')},
        )
        conn.execute(
            sa.text(
                "INSERT INTO access_packages (privacy_request_id, data, created_at) "
                "VALUES ('pri_old', :data, CURRENT_TIMESTAMP)"
            ),
            {"data": blob},
        )


def test_0005_moves_a_blob_package_into_chunks_and_the_downgrade_puts_it_back(fresh_app):
    _flask_db(fresh_app, "upgrade", "0004")
    ring = Keyring(TEST_KEY)
    _insert_old_package(fresh_app, ring.encrypt(json.dumps(OLD_PACKAGE, ensure_ascii=False).encode()))

    _flask_db(fresh_app, "upgrade")

    with fresh_app.app_context():
        package = db.session.get(PrivacyRequest, "pri_old").package.data
        chunks = db.session.scalar(sa.select(sa.func.count()).select_from(AccessPackageChunk))
        db.session.remove()
    assert json.dumps(package, ensure_ascii=False) == json.dumps(OLD_PACKAGE, ensure_ascii=False)  # order too
    assert chunks > len(OLD_PACKAGE)

    _flask_db(fresh_app, "downgrade", "0004")

    assert "access_package_chunks" not in _tables(fresh_app)
    with fresh_app.app_context(), db.engine.connect() as conn:
        restored = conn.scalar(
            sa.text("SELECT data FROM access_packages WHERE privacy_request_id = 'pri_old'")
        )
    assert ring.decrypt(bytes(restored)) == json.dumps(OLD_PACKAGE, ensure_ascii=False).encode()


def test_0005_changes_nothing_while_a_package_cannot_be_decrypted(fresh_app):
    _flask_db(fresh_app, "upgrade", "0004")
    _insert_old_package(fresh_app, b"\x01" + b"\x00" * 40)

    result = fresh_app.test_cli_runner().invoke(args=["db", "upgrade"])

    assert result.exit_code != 0
    assert "Access package(s) with id 1 cannot be decrypted with PORTAL_ENCRYPTION_KEY" in result.output
    assert "access_package_chunks" not in _tables(fresh_app)


def test_0009_gives_every_field_an_id_and_keeps_the_current_list_as_a_version(fresh_app):
    _flask_db(fresh_app, "upgrade", "0008")
    fields = [{"pii_field": "First Name", "dsr_package_label": "first_name"}, {"pii_field": "Email"}]
    with fresh_app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO connection_configs (key, name, connection_type, access, disabled, created_at, "
                "updated_at) VALUES ('crm', 'CRM', 'manual_webhook', 'read', false, :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO manual_webhooks (connection_config_id, fields, version, created_at, updated_at) "
                "SELECT id, :fields, 3, :now, :now FROM connection_configs WHERE key = 'crm'"
            ),
            {"fields": json.dumps(fields), "now": "2026-01-01 00:00:00"},
        )

    _flask_db(fresh_app, "upgrade")

    with fresh_app.app_context(), db.engine.connect() as conn:
        stored = json.loads(conn.scalar(sa.text("SELECT CAST(fields AS TEXT) FROM manual_webhooks")))
        kept = conn.execute(
            sa.text("SELECT version, CAST(fields AS TEXT) FROM manual_webhook_versions")
        ).all()
    assert [{k: v for k, v in f.items() if k != "id"} for f in stored] == fields
    ids = [f["id"] for f in stored]
    assert len(set(ids)) == 2 and all(len(i) == 12 for i in ids)
    assert [(version, json.loads(text)) for version, text in kept] == [(3, stored)]

    _flask_db(fresh_app, "downgrade", "0008")

    assert "manual_webhook_versions" not in _tables(fresh_app)
    with fresh_app.app_context(), db.engine.connect() as conn:
        assert json.loads(conn.scalar(sa.text("SELECT CAST(fields AS TEXT) FROM manual_webhooks"))) == fields


def _insert_plain_requests(app, rows: list[tuple[str, str | None, str | None]]) -> None:
    """Requests stored the 0007 way: external id and denial reason in clear."""
    with app.app_context(), db.engine.begin() as conn:
        policy_id = conn.scalar(sa.text("SELECT id FROM policies"))
        identity = Keyring(TEST_KEY).encrypt(b'{"email": "ann@example.com"}')
        conn.execute(
            sa.text(
                "INSERT INTO privacy_requests (id, external_id, denial_reason, policy_id, identity, status, "
                "created_at, updated_at, due_date) VALUES (:id, :external_id, :reason, :policy_id, :identity, "
                "'denied', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            [
                {"id": i, "external_id": e, "reason": r, "policy_id": policy_id, "identity": identity}
                for i, e, r in rows
            ],
        )


def _stored_request_columns(app) -> dict[str, tuple]:
    with app.app_context(), db.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("privacy_requests")}
        index = "external_id_index" if "external_id_index" in columns else "NULL"
        rows = conn.execute(sa.text(f"SELECT id, external_id, denial_reason, {index} FROM privacy_requests"))
        return {row[0]: tuple(row[1:]) for row in rows}


def _request_indexes(app) -> set[str]:
    with app.app_context(), db.engine.connect() as conn:
        return {index["name"] for index in sa.inspect(conn).get_indexes("privacy_requests")}


# More rows than one batch of the migration (500), most of them with an external id or a reason.
PLAIN_REQUESTS = [
    ("pri_a", " Ticket-1 ", "Asked for sömeone else"),
    ("pri_b", None, "No reason"),
    ("pri_c", None, None),
]
PLAIN_REQUESTS += [
    (f"pri_n{n:04d}", f"T-{n}" if n % 3 else None, "r" if n % 2 else None) for n in range(1200)
]


def test_0008_encrypts_external_ids_and_denial_reasons_and_the_downgrade_decrypts_them(fresh_app):
    _flask_db(fresh_app, "upgrade", "0007")
    _insert_plain_requests(fresh_app, PLAIN_REQUESTS)
    ring = Keyring(TEST_KEY)

    _flask_db(fresh_app, "upgrade")

    stored = _stored_request_columns(fresh_app)
    for request_id, external_id, reason in PLAIN_REQUESTS:
        raw_external_id, raw_reason, index = stored[request_id]
        assert (
            None if raw_external_id is None else ring.decrypt(bytes(raw_external_id)).decode()
        ) == external_id
        assert (None if raw_reason is None else ring.decrypt(bytes(raw_reason)).decode()) == reason
        expected_index = (
            ring.blind_index(external_id.strip().casefold(), purpose="external_id") if external_id else None
        )
        assert index == expected_index
    assert "ix_privacy_requests_external_id_index" in _request_indexes(fresh_app)
    with fresh_app.app_context():
        pr = db.session.get(PrivacyRequest, "pri_a")
        assert (pr.external_id, pr.denial_reason) == (" Ticket-1 ", "Asked for sömeone else")
        assert [p.id for p in request_lists.list_requests(search="TICKET-1").items] == ["pri_a"]
        assert request_lists.list_requests(search="t-7").total == 1
        db.session.remove()

    _flask_db(fresh_app, "downgrade", "0007")

    restored = _stored_request_columns(fresh_app)
    assert {request_id: (e, r, None) for request_id, e, r in PLAIN_REQUESTS} == restored
    indexes = _request_indexes(fresh_app)
    assert (
        "ix_privacy_requests_external_id" in indexes
        and "ix_privacy_requests_external_id_index" not in indexes
    )


def test_0008_downgrade_changes_nothing_while_a_value_cannot_be_decrypted(fresh_app):
    _flask_db(fresh_app, "upgrade", "0007")
    _insert_plain_requests(fresh_app, PLAIN_REQUESTS[:3])
    _flask_db(fresh_app, "upgrade")
    with fresh_app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE privacy_requests SET denial_reason = :broken WHERE id = 'pri_b'"),
            {"broken": b"\x01" + b"\x00" * 40},
        )
    before = _stored_request_columns(fresh_app)

    result = fresh_app.test_cli_runner().invoke(args=["db", "downgrade", "0007"])

    assert result.exit_code != 0
    assert (
        "The external id or denial reason of privacy request(s) pri_b cannot be decrypted with "
        "PORTAL_ENCRYPTION_KEY" in result.output
    )
    assert _stored_request_columns(fresh_app) == before
