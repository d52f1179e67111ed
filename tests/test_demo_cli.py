"""The workflow CLI: create-request and seed-demo."""

from pathlib import Path

import sqlalchemy as sa

from portal.demo import DEMO_DATABASE_FILE
from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualInput, ManualWebhook, PrivacyRequest, User
from portal.models.audit import Actor
from portal.services import connections, webhooks
from tests.workflow_helpers import new_request


def test_create_request_prints_only_the_id(runner):
    result = runner.invoke(args=["create-request", "--email", "cli-subject@example.com"])
    assert result.exit_code == 0, result.output
    request_id = result.stdout.strip()
    assert request_id.startswith("pri_") and "\n" not in request_id
    assert "Status: complete" in result.stderr
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.identity == {"email": "cli-subject@example.com"} and pr.policy.key == "default_access_policy"


def test_create_request_rejects_bad_input_with_exit_code_1(runner):
    result = runner.invoke(args=["create-request", "--email", "not-an-email"])
    assert result.exit_code == 1
    assert "Invalid email address" in result.stderr
    result = runner.invoke(args=["create-request"])
    assert result.exit_code == 1
    assert "Provide an email address or a phone number" in result.stderr
    result = runner.invoke(args=["create-request", "--email", "a@example.com", "--policy", "nope"])
    assert "Policy with key nope does not exist." in result.stderr
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PrivacyRequest)) == 0


# What the demo SQLite customer database (portal/demo_data) holds for customer-3@example.com.
DEMO_DATABASE_ROWS = {
    "sqlite_example:customer": [
        {
            "id": 1,
            "name": "Jane Customer",
            "email": "customer-3@example.com",
            "phone": "+15550103333",
            "address_id": 1,
            "created_at": "2024-03-01T10:00:00",
        }
    ],
    "sqlite_example:orders": [
        {
            "id": "ord_aaa-1",
            "customer_id": 1,
            "shipping_address_id": 1,
            "total_cents": 2599,
            "placed_at": "2024-03-02T09:12:00",
        },
        {
            "id": "ord_aaa-2",
            "customer_id": 1,
            "shipping_address_id": 2,
            "total_cents": 1250,
            "placed_at": "2024-04-11T18:40:00",
        },
    ],
    "sqlite_example:addresses": [
        {"id": 1, "street": "123 Example Street", "city": "New York", "zip": "10001"},
        {"id": 2, "street": "4 Example Lane", "city": "Brooklyn", "zip": "11201"},
    ],
}


def test_seed_demo_builds_the_whole_flow_once(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "staff@example.com  password:" in result.stdout
    statuses = sorted(db.session.scalars(sa.select(PrivacyRequest.status)))
    assert statuses == ["complete", "requires_input", "requires_input"]
    complete = db.session.scalars(sa.select(PrivacyRequest).where(PrivacyRequest.status == "complete")).one()
    assert complete.package.data == {
        "manual_webhook_key": [
            {
                "first_name": "Jane",
                "last_name": "Customer",
                "phone_number": "+1 555 010 3333",
                "height": 172,  # a number field: a JSON number
            }
        ],
        "zendesk_support_eu": [
            {"ticket_ids": None, "contact_email": None, "last_contact": None, "marketing_consent": None}
        ],
        **DEMO_DATABASE_ROWS,
    }
    keys = sorted(db.session.scalars(sa.select(ConnectionConfig.key)))
    assert keys == ["manual_webhook_key", "sqlite_example", "zendesk_support_eu"]
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0 and "already exists" in again.stdout
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 3


def test_seed_demo_on_a_fresh_database_prints_a_way_in(runner):
    """No admin yet: the seed creates one and prints how to sign in; ``ensure-admin`` then has nothing to do."""
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "   admin: admin@example.com  password:" in result.stdout
    admin = db.session.scalar(sa.select(User).where(User.email == "admin@example.com"))
    assert admin.role == "admin" and admin.active
    assert runner.invoke(args=["ensure-admin"]).stdout == ""


def test_seed_demo_keeps_an_existing_admin(runner, make_user):
    make_user(role="admin", email="boss@example.com")
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "admin@example.com" not in result.stdout
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User).where(User.role == "admin")) == 1


def _everything() -> dict[str, int]:
    db.session.expire_all()
    return {
        model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (User, ConnectionConfig, PrivacyRequest, AuditEvent, ManualInput, ManualWebhook)
    }


def test_seed_demo_refuses_a_portal_that_holds_data_and_changes_nothing(runner, make_user):
    make_user(role="admin", email="boss@example.com")
    conn = connections.create_connection(
        name="CRM", connection_type="manual_webhook", actor=Actor.system("test")
    )
    webhooks.create_webhook(conn, [{"pii_field": "Email"}], Actor.system("test"))
    db.session.commit()
    new_request("real@example.com")
    before = _everything()

    result = runner.invoke(args=["seed-demo"])

    assert result.exit_code == 1
    assert (
        "Error: This portal already holds 1 connection and 1 privacy request; seed-demo only fills an empty "
        "portal" in result.stderr
    )
    assert _everything() == before


def test_a_seed_that_fails_midway_leaves_nothing_behind_and_can_run_again(app, runner):
    before = _everything()
    inserted: list[str] = []

    def fail_on_the_third_request(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO privacy_requests"):
            inserted.append(statement)
            if len(inserted) == 3:  # two requests are committed and run by now
                raise RuntimeError("the disk filled up")

    sa.event.listen(db.engine, "before_cursor_execute", fail_on_the_third_request)
    try:
        result = runner.invoke(args=["seed-demo"])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", fail_on_the_third_request)

    assert len(inserted) == 3 and result.exit_code != 0
    assert _everything() == before
    assert not (Path(app.instance_path) / DEMO_DATABASE_FILE).exists()

    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert sorted(db.session.scalars(sa.select(PrivacyRequest.status))) == [
        "complete",
        "requires_input",
        "requires_input",
    ]
