"""The demo seed: the fidesops example webhook, a second system, a SQLite customer database with its
dataset, users and requests in several states."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import ConnectionConfig, Role
from portal.models.audit import Actor
from portal.security import generate_password
from portal.services import (
    connections,
    datasets,
    db_connections,
    manual_inputs,
    privacy_requests,
    users,
    webhooks,
)

DEMO = Actor.system("seed-demo")
DEMO_WEBHOOK_KEY = "manual_webhook_key"
DEMO_DATABASE_KEY = "sqlite_example"
DEMO_DATA = Path(__file__).parent / "demo_data"
DEMO_DATABASE_FILE = "demo_customers.sqlite3"

MAIN_FIELDS = [
    {"pii_field": "First Name", "dsr_package_label": "first_name"},
    {"pii_field": "Last Name", "dsr_package_label": "last_name"},
    {"pii_field": "Phone Number", "dsr_package_label": "phone_number"},
    {"pii_field": "Height", "dsr_package_label": "height", "type": "number", "help_text": "In centimetres."},
]
SUPPORT_FIELDS = [
    {"pii_field": "Ticket IDs", "type": "textarea", "help_text": "One per line."},
    {"pii_field": "Contact email", "type": "email"},
    {"pii_field": "Last contact", "type": "date"},
    {"pii_field": "Marketing consent", "type": "boolean"},
]


def seed_demo() -> list[str]:
    """Create the demo data unless it exists; returns lines to print (including generated passwords)."""
    if db.session.scalar(select(ConnectionConfig).where(ConnectionConfig.key == DEMO_WEBHOOK_KEY)):
        return ["The demo data already exists; nothing changed."]
    lines = []
    for email, role in (("staff@example.com", Role.STAFF), ("reviewer@example.com", Role.REVIEWER)):
        if users.find_by_email(email) is None:
            password = generate_password()
            users.create_user(email, role, password, DEMO, name=f"Demo {role}")
            lines.append(f"{role:>8}: {email}  password: {password}")

    main = connections.create_connection(
        name="Manual Webhook ConnectionConfig",
        key=DEMO_WEBHOOK_KEY,
        connection_type="manual_webhook",
        description="The example system from the fidesops guide: looked up by hand.",
        actor=DEMO,
    )
    webhooks.create_webhook(main, MAIN_FIELDS, DEMO)
    support = connections.create_connection(
        name="Zendesk (Support) – EU",
        connection_type="manual_webhook",
        description="Support tickets; export by hand from the admin console.",
        actor=DEMO,
    )
    webhooks.create_webhook(support, SUPPORT_FIELDS, DEMO)
    database = add_demo_database()
    dispatch.commit_and_run()
    lines.append(f"Customer database (SQLite, searched automatically): {database.secrets['path']}")

    def new(email: str, external_id: str) -> str:
        pr = privacy_requests.create_request(
            identity={"email": email}, policy_key="default_access_policy", actor=DEMO, external_id=external_id
        )
        request_id = pr.id
        dispatch.commit_and_run()
        return request_id

    complete = new("customer-3@example.com", "DEMO-1")
    manual_inputs.save_manual_input(
        complete,
        DEMO_WEBHOOK_KEY,
        {"first_name": "Jane", "last_name": "Customer", "phone_number": "+1 555 010 3333", "height": "172"},
        DEMO,
    )
    manual_inputs.save_manual_input(complete, support.key, {}, DEMO)
    privacy_requests.resume_request(complete, DEMO)
    dispatch.commit_and_run()

    half = new("customer-4@example.com", "DEMO-2")
    manual_inputs.save_manual_input(half, DEMO_WEBHOOK_KEY, {"first_name": "Jim", "last_name": "Doe"}, DEMO)
    db.session.commit()
    waiting = new("customer-5@example.com", "DEMO-3")
    lines.append(f"Requests: {complete} (complete), {half} (1 of 2 systems done), {waiting} (waiting).")
    return lines


def create_demo_database(path: Path) -> Path:
    """(Re)create the demo customer database from the shipped SQL, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    connection = sqlite3.connect(partial)
    try:
        connection.executescript((DEMO_DATA / "customers.sql").read_text(encoding="utf-8"))
        connection.commit()
    finally:
        connection.close()
    os.replace(partial, path)
    return path


def add_demo_database() -> ConnectionConfig:
    """The SQLite demo database in the instance folder, as a connection with its dataset attached."""
    path = create_demo_database(Path(current_app.instance_path) / DEMO_DATABASE_FILE)
    conn = connections.create_connection(
        name="Customer database (SQLite demo)",
        key=DEMO_DATABASE_KEY,
        connection_type="sqlite",
        description="A small shop database: customers, their orders and addresses. Collected automatically.",
        actor=DEMO,
    )
    db_connections.save_secrets(conn, {"path": str(path.resolve())}, DEMO)
    datasets.save_dataset_text(conn, (DEMO_DATA / "sqlite_example.yml").read_text(encoding="utf-8"), DEMO)
    return conn
