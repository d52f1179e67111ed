"""Connections: key rules (S2), the service, and the admin pages (list, create, edit, disable, delete)."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import event, func, select

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualWebhook
from portal.models.audit import Actor
from portal.services import Conflict, NotFound, ValidationFailed, keys, privacy_requests
from portal.services import connections as svc
from tests.factories import make_connection, make_webhook

ADMIN = Actor.system("test-admin")


def key_message(key: str) -> str:
    return (
        f"Key {key} already exists in ConnectionConfig. Keys will be snake-cased names if not provided. "
        "If you are seeing this error without providing a key, please provide a key or a different name."
    )


def actions(key: str | None = None) -> list[str]:
    query = select(AuditEvent.action).order_by(AuditEvent.id)
    if key is not None:
        query = query.where(AuditEvent.connection_key == key)
    return list(db.session.scalars(query))


@pytest.fixture
def gate_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(privacy_requests, "reevaluate_waiting", lambda actor: calls.append(actor))
    return calls


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


# --- key generation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Zendesk (Support) – EU", "zendesk_support_eu"),
        ("My Mongo DB", "my_mongo_db"),
        ("  Café Über-Système  ", "cafe_uber_systeme"),
        ("Paper archive - Berlin", "paper_archive_berlin"),
        ("already_snake_case", "already_snake_case"),
        ("dots.are.dropped", "dotsaredropped"),
        ("(Beta) CRM -", "beta_crm"),
        ("Ärzte 2024", "arzte_2024"),
        ("中文 CRM", "zhong_wen_crm"),
    ],
)
def test_generate_key_examples(name, key):
    assert keys.generate_key(name) == key


@pytest.mark.parametrize("name", ["!!!", "(—) ?", "   ", "🙂"])
def test_generate_key_from_punctuation_only_is_an_error_naming_the_name(name):
    with pytest.raises(ValidationFailed) as excinfo:
        keys.generate_key(name)
    assert f"Cannot generate a key from the name '{name}'" in str(excinfo.value)
    assert excinfo.value.errors[0][0] == ("name",)


# --- the service -----------------------------------------------------------------------------------


def test_create_generates_key_and_writes_an_audit_event(app):
    conn = svc.create_connection(
        name="Zendesk (Support) – EU", connection_type="manual_webhook", actor=ADMIN, description=" Tickets "
    )
    db.session.commit()
    assert (conn.key, conn.name, conn.description, conn.access, conn.disabled) == (
        "zendesk_support_eu",
        "Zendesk (Support) – EU",
        "Tickets",
        "read",
        False,
    )
    event_row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "connection.created"))
    assert event_row.connection_key == "zendesk_support_eu"
    assert event_row.details["name"] == "Zendesk (Support) – EU"
    # fidesops semantics: the webhook (with its fields) is created separately.
    assert db.session.scalar(select(func.count()).select_from(ManualWebhook)) == 0


def test_create_with_explicit_key_and_disabled(app):
    conn = svc.create_connection(
        name="Mongo", key="mongo.prod-1", connection_type="manual_webhook", actor=ADMIN, disabled=True
    )
    assert conn.key == "mongo.prod-1"
    assert conn.disabled and conn.disabled_at is not None


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"name": "", "key": "x"}, "name", "A name is required."),
        ({"name": "   "}, "name", "A name is required."),
        ({"name": "x" * 201}, "name", "The name must be at most 200 characters long."),
        ({"name": "Mongo", "key": "has space"}, "key", "Invalid key 'has space'"),
        ({"name": "Mongo", "key": "slash/key"}, "key", "Invalid key 'slash/key'"),
        ({"name": "Mongo", "key": "."}, "key", "Invalid key '.': a key cannot be only dots"),
        ({"name": "Mongo", "key": " .. "}, "key", "Invalid key '..': a key cannot be only dots"),
        ({"name": "Mongo", "key": "....."}, "key", "Invalid key '.....': a key cannot be only dots"),
        ({"name": "..."}, "name", "Cannot generate a key from the name '...'"),
        ({"name": "Mongo", "key": "k" * 201}, "key", "The key must be at most 200 characters long."),
        ({"name": "!!!"}, "name", "Cannot generate a key from the name '!!!'"),
        ({"name": "Mongo", "access": "admin"}, "access", "Unknown access 'admin'"),
        ({"name": "Mongo", "connection_type": "ftp"}, "connection_type", "Unknown connection type 'ftp'"),
    ],
)
def test_create_validation(app, kwargs, field, message):
    kwargs = {"connection_type": "manual_webhook", **kwargs}
    with pytest.raises(ValidationFailed) as excinfo:
        svc.create_connection(actor=ADMIN, **kwargs)
    assert str(excinfo.value).startswith(message)
    assert excinfo.value.errors[0][0] == (field,)


def test_duplicate_key_gives_the_fidesops_message(app):
    make_connection("My Mongo DB")
    with pytest.raises(Conflict) as excinfo:
        svc.create_connection(name="My  Mongo-DB", connection_type="manual_webhook", actor=ADMIN)
    assert str(excinfo.value) == key_message("my_mongo_db")
    with pytest.raises(Conflict, match="^Key my_mongo_db already exists"):
        svc.create_connection(name="Other", key="my_mongo_db", connection_type="manual_webhook", actor=ADMIN)


def test_duplicate_name_gives_the_fidesops_message(app):
    make_connection("My Mongo DB")
    with pytest.raises(Conflict) as excinfo:
        svc.create_connection(name="My Mongo DB", key="other", connection_type="manual_webhook", actor=ADMIN)
    assert str(excinfo.value) == "Name My Mongo DB already exists in ConnectionConfig."


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        ("Other name", "taken", key_message("taken")),
        ("Taken Name", "other_key", "Name Taken Name already exists in ConnectionConfig."),
    ],
)
def test_database_constraint_race_still_gives_the_message(app, monkeypatch, name, key, message):
    """The Python pre-check can lose a race; the unique constraint then answers with the same words."""
    make_connection("Taken Name", key="taken")
    monkeypatch.setattr(svc, "_key_taken", lambda key: False)
    monkeypatch.setattr(svc, "_name_taken", lambda name, except_id=None: False)
    with pytest.raises(Conflict) as excinfo:
        svc.create_connection(name=name, key=key, connection_type="manual_webhook", actor=ADMIN)
    assert str(excinfo.value) == message
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ConnectionConfig)) == 1


def test_get_connection_not_found_message(app):
    with pytest.raises(NotFound) as excinfo:
        svc.get_connection("nope")
    assert str(excinfo.value) == "No connection config with key 'nope'"


def test_update_changes_only_what_is_given_and_never_the_key(app):
    conn = make_connection("CRM", description="old")
    svc.update_connection(conn, actor=ADMIN, name="CRM (EU)")
    db.session.commit()
    assert (conn.key, conn.name, conn.description) == ("crm", "CRM (EU)", "old")
    svc.update_connection(conn, actor=ADMIN, description="")
    assert conn.description is None
    with pytest.raises(TypeError):
        svc.update_connection(conn, actor=ADMIN, key="new_key")
    changed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "connection.changed")).all()
    assert [e.details["changed"] for e in changed] == [["name"], ["description"]]


def test_update_to_a_taken_name_is_a_conflict(app):
    make_connection("CRM")
    other = make_connection("ERP")
    with pytest.raises(Conflict, match=r"^Name CRM already exists in ConnectionConfig\.$"):
        svc.update_connection(other, actor=ADMIN, name="CRM")


def test_update_without_changes_writes_no_audit_event(app):
    conn = make_connection("CRM")
    before = actions()
    svc.update_connection(conn, actor=ADMIN, name="CRM", description=None, access="read")
    assert actions() == before


def test_disable_and_enable(app, gate_calls):
    conn = make_connection("CRM")
    svc.set_disabled(conn, True, ADMIN)
    db.session.commit()
    assert conn.disabled and conn.disabled_at is not None
    assert gate_calls == [ADMIN]
    svc.set_disabled(conn, True, ADMIN)  # already disabled: nothing happens
    svc.update_connection(conn, actor=ADMIN, disabled=False)
    db.session.commit()
    assert not conn.disabled and conn.disabled_at is None
    assert actions("crm") == ["connection.created", "connection.disabled", "connection.enabled"]
    assert len(gate_calls) == 1


def test_disabling_a_database_connection_does_not_call_the_gate(app, gate_calls):
    conn = make_connection("Customers DB", connection_type="postgres")
    svc.set_disabled(conn, True, ADMIN)
    assert gate_calls == []


def test_delete_removes_connection_and_webhook(app, gate_calls):
    webhook = make_webhook("CRM", [{"pii_field": "Email"}])
    svc.delete_connection(webhook.connection_config, ADMIN)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(ConnectionConfig)) == 0
    assert db.session.scalar(select(func.count()).select_from(ManualWebhook)) == 0
    deleted = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "connection.deleted"))
    assert deleted.connection_key == "crm"
    assert deleted.details["had_webhook"] is True
    assert gate_calls == [ADMIN]


def test_list_connections_pages_in_sql_with_field_counts_without_n_plus_1(app):
    for index in range(5):
        make_webhook(f"System {index}", [{"pii_field": f"Field {n}"} for n in range(index + 1)])
    make_connection("Customers DB", connection_type="postgres")
    db.session.expire_all()
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        items, total = svc.list_connections(page=1, size=4)
        counts = [len(c.manual_webhook.fields) if c.manual_webhook else 0 for c in items]
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert total == 6
    assert [c.name for c in items] == ["Customers DB", "System 0", "System 1", "System 2"]
    assert counts == [0, 1, 2, 3]
    assert len(statements) == 3  # count, page, webhooks of the page
    items, _ = svc.list_connections(page=2, size=4)
    assert [c.name for c in items] == ["System 3", "System 4"]


# --- the admin pages -------------------------------------------------------------------------------


def test_pages_need_sign_in(client):
    assert client.get("/admin/connections").status_code == 302
    assert client.get("/admin/connections/x/fields").status_code == 302


def test_pages_are_admin_only(client, login_as):
    login_as("staff")
    assert client.get("/admin/connections").status_code == 403
    assert client.post("/admin/connections/new", data={"name": "X"}).status_code == 403


def test_empty_state(client, login_as):
    login_as("admin")
    response = client.get("/admin/connections")
    assert response.status_code == 200
    assert "No connections yet — create the first manual webhook" in page_text(response)


def test_list_shows_each_connection(client, login_as):
    login_as("admin")
    make_webhook("Zendesk (Support) – EU", [{"pii_field": "Email"}, {"pii_field": "Ticket"}])
    make_connection("Archive <script>", disabled=True)
    text = page_text(client.get("/admin/connections"))
    assert "Zendesk (Support) – EU" in text
    assert "zendesk_support_eu" in text
    assert "Manual webhook" in text
    assert "Enabled" in text and "Disabled" in text
    assert 'title="Version 1">2</a>' in text
    assert "just now" in text
    raw = client.get("/admin/connections").get_data(as_text=True)
    assert "Archive <script>" not in raw and "Archive &lt;script&gt;" in raw


def test_list_is_paginated(client, login_as, app):
    app.config["PAGE_SIZE"] = 2
    login_as("admin")
    for name in ("Alpha", "Bravo", "Charlie"):
        make_connection(name)
    first = page_text(client.get("/admin/connections"))
    assert "Alpha" in first and "Bravo" in first and "Charlie" not in first
    second = page_text(client.get("/admin/connections?page=2"))
    assert "Charlie" in second and "Alpha" not in second
    assert client.get("/admin/connections?page=9").headers["Location"].endswith("/admin/connections?page=2")
    huge = client.get("/admin/connections?page=99999999999999999999999")
    assert huge.headers["Location"].endswith("/admin/connections?page=2")
    assert svc.list_connections(page=10**30, size=2) == ([], 3)


def test_create_through_the_form_goes_to_the_field_editor(client, login_as):
    login_as("admin")
    response = client.post(
        "/admin/connections/new", data={"name": "Zendesk (Support) – EU", "description": "Tickets"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/connections/zendesk_support_eu/fields")
    conn = svc.get_connection("zendesk_support_eu")
    assert (conn.name, conn.connection_type, conn.description) == (
        "Zendesk (Support) – EU",
        "manual_webhook",
        "Tickets",
    )
    assert "connection.created" in actions("zendesk_support_eu")
    editor = page_text(client.get(response.headers["Location"]))
    assert "Created “Zendesk (Support) – EU” (key zendesk_support_eu)" in editor
    assert "No fields are saved yet" in editor


KEY_TAKEN = "A connection with the key my_mongo_db already exists: choose another key."


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "!!!"}, "Cannot generate a key from the name '!!!'"),
        ({"name": ""}, "A name is required."),
        ({"name": "Mongo", "key": "has space"}, "Invalid key 'has space'"),
        ({"name": "Mongo", "key": ".."}, "Invalid key '..': a key cannot be only dots"),
        # In words here; the API keeps fidesops' "Key my_mongo_db already exists in ConnectionConfig. ..."
        ({"name": "Other", "key": "my_mongo_db"}, KEY_TAKEN),
        ({"name": "My Mongo DB!"}, KEY_TAKEN),
        ({"name": "My Mongo DB", "key": "mongo2"}, "A connection named “My Mongo DB” already exists"),
    ],
)
def test_create_form_shows_errors_and_saves_nothing(client, login_as, data, message):
    login_as("admin")
    make_connection("My Mongo DB")
    response = client.post("/admin/connections/new", data=data)
    assert response.status_code == 200
    assert message in page_text(response)
    assert db.session.scalar(select(func.count()).select_from(ConnectionConfig)) == 1


def test_edit_through_the_form(client, login_as):
    login_as("admin")
    make_connection("CRM")
    page = page_text(client.get("/admin/connections/crm/edit"))
    assert "Edit CRM" in page and "crm" in page
    response = client.post("/admin/connections/crm/edit", data={"name": "CRM (EU)", "description": "Ask Bo"})
    assert response.status_code == 302
    conn = svc.get_connection("crm")
    assert (conn.name, conn.description) == ("CRM (EU)", "Ask Bo")
    assert client.get("/admin/connections/nope/edit").status_code == 404


def test_edit_to_a_taken_name_shows_the_message(client, login_as):
    login_as("admin")
    make_connection("CRM")
    make_connection("ERP")
    response = client.post("/admin/connections/erp/edit", data={"name": "CRM"})
    assert response.status_code == 200
    text = page_text(response)
    assert "A connection named “CRM” already exists: choose another name." in text
    assert "ConnectionConfig" not in text
    assert svc.get_connection("erp").name == "ERP"


def test_disable_and_enable_through_the_page(client, login_as, gate_calls):
    login_as("admin")
    make_connection("CRM")
    response = client.post(
        "/admin/connections/crm/toggle", data={"action": "disable", "next": "/admin/connections"}
    )
    assert response.status_code == 302
    assert svc.get_connection("crm").disabled
    assert len(gate_calls) == 1
    assert "Disabled “CRM”" in page_text(client.get("/admin/connections"))
    # The same click twice keeps it disabled: the form says which state is wanted.
    client.post("/admin/connections/crm/toggle", data={"action": "disable"})
    assert svc.get_connection("crm").disabled
    client.post("/admin/connections/crm/toggle", data={"action": "enable"})
    assert not svc.get_connection("crm").disabled
    assert actions("crm") == ["connection.created", "connection.disabled", "connection.enabled"]
    assert client.post("/admin/connections/crm/toggle", data={"action": "explode"}).status_code == 400


def test_toggle_never_redirects_off_site(client, login_as):
    login_as("admin")
    make_connection("CRM")
    response = client.post(
        "/admin/connections/crm/toggle", data={"action": "disable", "next": "//evil.test/"}
    )
    assert response.headers["Location"].endswith("/admin/connections")


def test_delete_asks_first_then_deletes(client, login_as, gate_calls):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Email"}, {"pii_field": "Order number"}])
    page = page_text(client.get("/admin/connections/crm/delete"))
    assert "Delete the connection “CRM”?" in page
    assert "email" in page and "order_number" in page
    assert "entries staff saved for privacy requests" in page
    assert svc.get_connection("crm")  # the GET deleted nothing
    response = client.post("/admin/connections/crm/delete")
    assert response.status_code == 302
    with pytest.raises(NotFound):
        svc.get_connection("crm")
    assert actions("crm")[-1] == "connection.deleted"
    assert gate_calls
    assert client.get("/admin/connections/crm/delete").status_code == 404


def test_state_changes_need_the_csrf_token(app, client, login_as):
    app.config["WTF_CSRF_ENABLED"] = True
    login_as("admin")
    make_connection("CRM")
    assert client.post("/admin/connections/new", data={"name": "Other"}).status_code == 400
    assert client.post("/admin/connections/crm/toggle", data={"action": "disable"}).status_code == 400
    assert client.post("/admin/connections/crm/delete").status_code == 400
    assert client.post("/admin/connections/crm/fields", data={"save": "y"}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(ConnectionConfig)) == 1
    assert not svc.get_connection("crm").disabled


def test_the_service_refuses_to_change_a_connection_type(app):
    from portal.models.audit import Actor
    from portal.services import ValidationFailed
    from portal.services import connections as service

    conn = service.create_connection(name="Shop DB", connection_type="postgres", actor=Actor.system("t"))
    with pytest.raises(ValidationFailed, match="Cannot change the connection_type of 'shop_db'"):
        service.update_connection(conn, actor=Actor.system("t"), connection_type="manual_webhook")
    assert conn.connection_type == "postgres"
