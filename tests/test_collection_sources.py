"""Automated collection (S5) end to end through the runner, against SQLite, PostgreSQL and MySQL sources.

Each source gets the same shop (tests/collection_helpers.py): a fresh file, PostgreSQL schema or MySQL
database per test, dropped afterwards.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.execution import dispatch
from portal.extensions import db
from portal.models import CollectionStep, ConnectionConfig, PrivacyRequest
from portal.services import datasets, db_connections, manual_inputs, privacy_requests
from tests.collection_helpers import ADMIN, JANE, LOYALTY_YAML, NASTY, SHOP_YAML, add_database, source
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

TYPES = {"sqlite": "sqlite", "postgres": "postgres", "mysql": "mysql"}


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def shop(request, app, tmp_path):
    """A database connection "shop_db" to a fresh shop on each kind of source, with both datasets."""
    with source(request.param, tmp_path) as secrets:
        conn = add_database("Shop DB", TYPES[request.param], secrets, SHOP_YAML, LOYALTY_YAML)
        yield conn


def run(email: str | None = None, **identity) -> PrivacyRequest:
    request_id = new_request(email, identity=identity) if email else _phone_request(**identity)
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id)


def _phone_request(phone_number: str) -> str:
    pr = privacy_requests.create_request(
        identity={"phone_number": phone_number}, policy_key="default_access_policy", actor=STAFF
    )
    request_id = pr.id
    dispatch.commit_and_run()
    return request_id


def steps(request_id: str) -> list[CollectionStep]:
    return datasets.collection_steps(request_id)


def test_email_identity_follows_references_across_collections_and_datasets(shop):
    pr = run("jane@example.com")
    assert pr.status == "complete", pr.error_message
    assert pr.package.data == JANE
    [step] = steps(pr.id)
    assert (step.connection_key, step.run, step.rows_found, step.error) == ("shop_db", 1, 4, None)
    assert step.row_counts == {"shop:customer": 1, "shop:orders": 2, "shop_loyalty:loyalty": 1}
    assert step.duration_ms >= 0


def test_phone_identity_and_collections_with_nothing_found(shop):
    pr = run(phone_number="+1 555 000 2222")
    assert pr.status == "complete", pr.error_message
    assert pr.package.data == {
        "shop:customer": [{"id": 2, "email": "JIM@Example.com", "phone": "+15550002222", "name": "Jim"}],
        "shop:orders": [{"id": 12, "customer_id": 2, "item": "Chair"}],
        "shop_loyalty:loyalty": [],
    }


def test_email_is_matched_case_insensitively(shop):
    assert run("jim@example.com").package.data["shop:customer"][0]["name"] == "Jim"


def test_identity_values_with_quotes_and_sql_are_matched_literally(shop):
    pr = run("x'or'1'='1@example.com")
    assert pr.package.data == {
        "shop:customer": [{"id": 3, "email": "x'or'1'='1@example.com", "phone": None, "name": "Tricky"}],
        "shop:orders": [],
        "shop_loyalty:loyalty": [],
    }
    # Bypass the email normaliser: the raw value goes to the database as a bound parameter.
    pr = run("someone@example.com")
    pr.identity = {"email": NASTY, "phone_number": f"1' OR '1'='1; {NASTY}"}
    pr.status = "pending"
    db.session.commit()
    dispatch.enqueue(pr.id)
    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, pr.id)
    assert pr.status == "complete" and pr.package.data == {"shop:customer": []}
    assert run("other@example.com").package.data["shop:customer"][0]["name"] == NASTY  # table intact


def test_the_manual_gate_comes_first_and_the_package_holds_both_kinds(shop):
    add_webhook("crm", [field("First Name"), field("Last Name")])
    pr = run("jane@example.com")
    assert pr.status == "requires_input"
    assert steps(pr.id) == []  # no database was queried yet
    manual_inputs.save_manual_input(pr.id, "crm", {"first_name": "Jane"}, STAFF)
    privacy_requests.resume_request(pr.id, STAFF)
    dispatch.commit_and_run()
    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, pr.id)
    assert pr.status == "complete"
    assert pr.package.data == {**JANE, "crm": [{"first_name": "Jane", "last_name": None}]}
    assert [s.run for s in steps(pr.id)] == [1]


def test_a_failing_connection_errors_the_request_by_name_and_retry_resumes(shop):
    good = dict(shop.secrets)
    if shop.connection_type == "sqlite":
        bad, secret = {"path": good["path"] + ".missing"}, "never-shown"
        expected = "unable to open database file"
    elif shop.connection_type == "postgres":
        bad = {
            "host": "127.0.0.1",
            "port": 1,
            "username": "postgres",
            "password": "pw-s3cret-42",
            "dbname": "x",
        }
        secret, expected = "pw-s3cret-42", "Connection refused"
    else:
        bad = {"host": "127.0.0.1", "port": 3306, "username": "nobody", "password": "pw-s3cret-42"}
        secret, expected = "pw-s3cret-42", "Access denied for user 'nobody'"
    db_connections.save_secrets(shop, bad, ADMIN, keep_password=False)
    db.session.commit()
    add_webhook("crm", [field("First Name")])
    pr = run("jane@example.com")
    manual_inputs.save_manual_input(pr.id, "crm", {"first_name": "Jane"}, STAFF)
    privacy_requests.resume_request(pr.id, STAFF)
    dispatch.commit_and_run()
    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, pr.id)
    assert pr.status == "error"
    assert pr.error_message.startswith("Collection from connection 'shop_db' failed: ")
    assert expected in pr.error_message
    assert secret not in pr.error_message and "jane@example.com" not in pr.error_message
    [step] = steps(pr.id)
    assert step.error == pr.error_message.removeprefix("Collection from connection 'shop_db' failed: ")
    assert step.rows_found == 0

    db_connections.save_secrets(shop, good, ADMIN, keep_password=False)
    privacy_requests.retry_request(pr.id, ADMIN)
    dispatch.commit_and_run()
    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, pr.id)
    assert pr.status == "complete"
    assert pr.package.data == {**JANE, "crm": [{"first_name": "Jane"}]}
    assert [(s.run, s.error is None) for s in steps(pr.id)] == [(2, True), (1, False)]


def test_test_connection_reports_success_and_missing_columns(shop):
    result = db_connections.test_connection(shop, ADMIN)
    assert result.succeeded, result.message
    assert result.message.startswith("Connected to ")
    broken = SHOP_YAML.replace("- name: item", "- name: colour")
    datasets.save_dataset_text(shop, broken, ADMIN)
    result = db_connections.test_connection(shop, ADMIN)
    assert not result.succeeded
    assert "but the dataset does not match the database: Collection 'shop:orders': " in result.message
    assert "colour" in result.message


def test_collection_stops_at_the_row_limit(shop, app):
    app.config["COLLECTION_MAX_ROWS"] = 1
    pr = run("jane@example.com")
    assert pr.status == "error"
    assert pr.error_message == (
        "Collection from connection 'shop_db' failed: collection 'shop:orders' matched more than 1 rows; "
        "check the dataset's references (a reference on a field shared by many rows pulls in the whole table)."
    )


def test_disabled_database_connections_are_not_searched(shop):
    shop.disabled = True
    db.session.commit()
    pr = run("jane@example.com")
    assert pr.status == "complete" and pr.package.data == {} and steps(pr.id) == []


def test_references_cross_connections(app, tmp_path):
    with source("sqlite", tmp_path / "a") as first, source("sqlite", tmp_path / "b") as second:
        add_database("Shop DB", "sqlite", first, SHOP_YAML)
        add_database("Loyalty DB", "sqlite", second, LOYALTY_YAML)
        pr = run("jane@example.com")
        assert pr.package.data == JANE
        assert [(s.connection_key, s.rows_found) for s in steps(pr.id)] == [("loyalty_db", 1), ("shop_db", 3)]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConnectionConfig)) == 2
