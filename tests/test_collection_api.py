"""/api/v1/connection/{key}/dataset (fidesops shapes), the secrets and the connection test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, DatasetConfig
from portal.models.audit import Actor
from portal.services import tokens
from tests.collection_helpers import LOYALTY_YAML, SHOP_YAML, sqlite_source

V1 = "/api/v1"
SHOP = yaml.safe_load(SHOP_YAML)["dataset"][0]
LOYALTY = yaml.safe_load(LOYALTY_YAML)["dataset"][0]


@pytest.fixture
def api(client, make_user):
    def _make(role: str = "admin"):
        user = make_user(role=role)
        _, secret = tokens.create_token(user, "test", Actor.system("test"))
        db.session.commit()

        def call(method: str, path: str, body=None, **kwargs):
            if body is not None:
                kwargs["json"] = body
            return client.open(
                V1 + path, method=method, headers={"Authorization": f"Bearer {secret}"}, **kwargs
            )

        return call

    return _make


@pytest.fixture
def admin(api):
    call = api("admin")
    r = call("PATCH", "/connection", [{"name": "Shop DB", "key": "shop_db", "connection_type": "sqlite"}])
    assert r.status_code == 200 and r.json["failed"] == [], r.json
    return call


def test_patch_datasets_succeeded_and_failed_like_fidesops(admin):
    broken = {
        **LOYALTY,
        "fides_key": "broken",
        "collections": [
            {
                "name": "x",
                "fields": [
                    {"name": "id", "fides_meta": {"references": [{"dataset": "nope", "field": "a.b"}]}}
                ],
            }
        ],
    }
    r = admin("PATCH", "/connection/shop_db/dataset", [LOYALTY, SHOP, broken, {"name": "no key"}])
    assert r.status_code == 200
    assert [d["fides_key"] for d in r.json["succeeded"]] == [
        "shop_loyalty",
        "shop",
    ]  # may reference each other
    phone = [f for f in r.json["succeeded"][1]["collections"][0]["fields"] if f["name"] == "phone"]
    meta = {"identity": "phone_number"}
    assert phone == [{"name": "phone", "fides_meta": meta, "fidesops_meta": meta}]  # sent as fidesops_meta
    assert [f["message"] for f in r.json["failed"]] == [
        "Dataset #4, fides_key: Field required; Dataset #4, collections: Field required",
        "Dataset 'broken', collection 'x', field 'id': references 'nope.a.b', but there is no dataset 'nope'.",
    ]
    assert r.json["failed"][1]["data"]["fides_key"] == "broken"

    page = admin("GET", "/connection/shop_db/dataset").json
    assert page["total"] == 2 and page["page"] == 1 and page["size"] == 50
    assert {d["fides_key"] for d in page["items"]} == {"shop", "shop_loyalty"}
    assert admin("GET", "/connection/shop_db/dataset/shop").json["name"] == "Shop"

    r = admin("DELETE", "/connection/shop_db/dataset/shop")
    assert r.status_code == 400
    assert r.json["detail"].startswith(
        "Dataset 'shop' cannot be deleted: dataset 'shop_loyalty' references it."
    )
    assert admin("DELETE", "/connection/shop_db/dataset/shop_loyalty").status_code == 204
    r = admin("GET", "/connection/shop_db/dataset/shop_loyalty")
    assert r.status_code == 404
    assert r.json == {"detail": "No dataset with fides_key 'shop_loyalty' and connection key 'shop_db'"}


def test_dataset_routes_need_a_database_connection(admin):
    assert admin("GET", "/connection/nope/dataset").json == {"detail": "No connection config with key 'nope'"}
    admin(
        "PATCH", "/connection", [{"name": "Zendesk", "key": "zendesk", "connection_type": "manual_webhook"}]
    )
    r = admin("PATCH", "/connection/zendesk/dataset", [SHOP])
    assert r.status_code == 400 and "only database connections" in r.json["detail"]
    r = admin("PATCH", "/connection/shop_db/dataset", {"not": "a list"})
    assert r.status_code == 422


def test_staff_may_read_datasets_but_not_change_them(admin, api):
    staff = api("staff")
    assert staff("GET", "/connection/shop_db/dataset").status_code == 200
    r = staff("PATCH", "/connection/shop_db/dataset", [SHOP])
    assert r.status_code == 403
    assert r.json == {"detail": "Not Authorized: the token lacks the scope 'dataset:create_or_update'."}
    assert staff("PUT", "/connection/shop_db/secret", {"path": "/x"}).status_code == 403
    assert api("reviewer")("GET", "/connection/shop_db/dataset").status_code == 403


def test_put_secrets_stores_them_encrypted_and_tests_them(admin, tmp_path):
    with sqlite_source(tmp_path) as secrets:
        r = admin("PUT", "/connection/shop_db/secret", secrets)
        assert r.json == {
            "msg": "Secrets updated for ConnectionConfig with key: shop_db.",
            "test_status": "succeeded",
            "failure_reason": None,
        }
        r = admin("PUT", "/connection/shop_db/secret?verify=false", {"path": secrets["path"] + ".gone"})
        assert r.json["test_status"] is None
        r = admin("GET", "/connection/shop_db/test")
        assert r.json["test_status"] == "failed"
        assert r.json["failure_reason"].endswith("unable to open database file")
    r = admin("PUT", "/connection/shop_db/secret", {"path": "relative.db"})
    assert r.status_code == 422
    assert (
        r.json["detail"][0]["msg"] == "The SQLite path must be an absolute path to an existing database file."
    )
    r = admin("PUT", "/connection/shop_db/secret", {"host": "db"})
    assert r.status_code == 422 and r.json["detail"][0]["loc"] == ["body", "host"]
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.connection_key == "shop_db")
    ).all()
    assert actions.count("connection.secrets_changed") == 2 and actions.count("connection.tested") == 2


def test_a_connection_says_when_it_was_last_tested_and_whether_it_worked(admin, tmp_path):
    """fidesops' last_test_timestamp and last_test_succeeded (null until a test ran), and saas_config."""
    before = admin("GET", "/connection/shop_db").json
    assert (before["last_test_timestamp"], before["last_test_succeeded"], before["saas_config"]) == (
        None,
        None,
        None,
    )
    with sqlite_source(tmp_path) as secrets:
        admin("PUT", "/connection/shop_db/secret", secrets)
        worked = admin("GET", "/connection/shop_db").json
        assert worked["last_test_succeeded"] is True and worked["last_test_timestamp"] is not None
        assert worked["updated_at"] == admin("GET", "/connection/shop_db").json["updated_at"]
        admin("PUT", "/connection/shop_db/secret?verify=false", {"path": secrets["path"] + ".gone"})
        admin("GET", "/connection/shop_db/test")
        failed = admin("GET", "/connection").json["items"]
    (item,) = [c for c in failed if c["key"] == "shop_db"]
    assert item["last_test_succeeded"] is False
    assert item["last_test_timestamp"] >= worked["last_test_timestamp"]


def test_postgres_secrets_never_come_back_and_are_masked_in_messages(api):
    admin = api("admin")
    admin("PATCH", "/connection", [{"name": "PG", "key": "pg", "connection_type": "postgres"}])
    body = {"host": "127.0.0.1", "port": 1, "dbname": "shop", "username": "app", "password": "pw-s3cret-42"}
    r = admin("PUT", "/connection/pg/secret", body)
    assert r.json["test_status"] == "failed"
    assert r.json["failure_reason"].startswith("Could not connect to postgresql://app:***@127.0.0.1:1/shop: ")
    assert "pw-s3cret-42" not in r.get_data(as_text=True)
    conn = db.session.scalars(sa.select(ConnectionConfig).where(ConnectionConfig.key == "pg")).one()
    assert conn.secrets["password"] == "pw-s3cret-42"
    raw = db.session.execute(sa.text("SELECT secrets FROM connection_configs WHERE key = 'pg'")).scalar_one()
    assert b"pw-s3cret-42" not in bytes(raw) and b"127.0.0.1" not in bytes(raw)
    for path in ("/connection/pg", "/connection"):
        assert "pw-s3cret-42" not in admin("GET", path).get_data(as_text=True)
    r = admin("PUT", "/connection/pg/secret", {"url": "mysql://app@db/shop"})
    assert r.status_code == 422
    assert r.json["detail"][0]["msg"].startswith("The connection URL is for 'mysql', but this is a postgres")


def test_datasets_echo_fidesops_meta_only_to_a_client_that_wrote_it(admin):
    """fidesops clients read back the key they wrote; the stored document stays fideslang's."""
    legacy = {
        "fides_key": "legacy",
        "fidesops_meta": {"namespace": {"schema": "main"}},
        "collections": [
            {
                "name": "customers",
                "fields": [
                    {"name": "email", "fidesops_meta": {"identity": "email", "data_type": "string"}},
                    {
                        "name": "address",
                        "fields": [{"name": "city", "fidesops_meta": {"data_type": "string"}}],
                    },
                ],
            }
        ],
    }
    current = {
        "fides_key": "current",
        "collections": [
            {"name": "orders", "fields": [{"name": "email", "fides_meta": {"identity": "email"}}]}
        ],
    }
    r = admin("PATCH", "/connection/shop_db/dataset/", [legacy, current])
    assert r.json["failed"] == [], r.json
    for answer in (
        r.json["succeeded"][0],
        admin("GET", "/connection/shop_db/dataset/legacy").json,
        next(
            d for d in admin("GET", "/connection/shop_db/dataset").json["items"] if d["fides_key"] == "legacy"
        ),
    ):
        assert answer["fidesops_meta"] == answer["fides_meta"] == {"namespace": {"schema": "main"}}
        address, email = answer["collections"][0]["fields"]  # fideslang keeps fields sorted by name
        assert email["fidesops_meta"] == email["fides_meta"] == {"identity": "email", "data_type": "string"}
        city = address["fields"][0]
        assert city["fidesops_meta"] == city["fides_meta"] == {"data_type": "string"}
    written = admin("GET", "/connection/shop_db/dataset/current").json
    assert "fidesops_meta" not in str(written) and written["collections"][0]["fields"][0]["fides_meta"]
    stored = db.session.scalar(sa.select(DatasetConfig.dataset).where(DatasetConfig.fides_key == "legacy"))
    assert "fidesops_meta" not in str(stored)
