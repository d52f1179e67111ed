"""The demo seed: the fidesops example webhook, a second system, a SQLite customer database with its
dataset, users and requests in several states."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, func, select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, PrivacyRequest, Role, User, utcnow
from portal.models.audit import Actor
from portal.security import generate_password
from portal.services import (
    InvalidState,
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


@dataclass
class Created:
    """What a seed has made so far, for undoing it if it fails."""

    started: datetime = field(default_factory=utcnow)
    user_ids: list[int] = field(default_factory=list)
    connection_ids: list[int] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _demo_complete() -> bool:
    return (
        db.session.scalar(select(ConnectionConfig.id).where(ConnectionConfig.key == DEMO_WEBHOOK_KEY))
        is not None
    )


def _refusal() -> str | None:
    """Why this portal cannot take the demo (None: it is empty). The demo's manual systems would join the
    gate of every real request, and real systems would hold the demo requests up, so it fills an empty
    portal only (users may exist)."""
    connections_count = db.session.scalar(select(func.count()).select_from(ConnectionConfig))
    requests_count = db.session.scalar(select(func.count()).select_from(PrivacyRequest))
    if not connections_count and not requests_count:
        return None
    held = [
        f"{count} {noun}{'s' if count != 1 else ''}"
        for count, noun in ((connections_count, "connection"), (requests_count, "privacy request"))
        if count
    ]
    return (
        f"This portal already holds {' and '.join(held)}; seed-demo only fills an empty portal, so that its "
        "demo systems never hold up real requests (every request waits for every manual system). Nothing "
        "changed. Use a fresh database for the demo, e.g. PORTAL_DATABASE_URL=sqlite:////tmp/demo.sqlite3."
    )


@contextmanager
def _runs_inline() -> Iterator[None]:
    """The demo's requests run in this process whatever the task backend, so that it can follow each one
    to its resting state (a worker would run them later)."""
    backend = current_app.config["TASK_BACKEND"]
    current_app.config["TASK_BACKEND"] = "inline"
    try:
        yield
    finally:
        current_app.config["TASK_BACKEND"] = backend


def seed_demo() -> list[str]:
    """Create the demo data in an empty portal; returns lines to print (including generated passwords).

    All or nothing: a second run changes nothing, a portal holding other data is refused before anything
    is written, and a seed that fails midway removes everything it had made (rows, their audit events and
    the demo database file) before the error is raised.
    """
    if _demo_complete():
        return ["The demo data already exists; nothing changed."]
    refusal = _refusal()
    if refusal:
        raise InvalidState(refusal)
    created = Created()
    try:
        with _runs_inline():
            return _seed(created)
    except BaseException:
        db.session.rollback()
        _undo(created)
        raise


def _seed(created: Created) -> list[str]:
    lines = []
    people = [("staff@example.com", Role.STAFF), ("reviewer@example.com", Role.REVIEWER)]
    if not users.active_admin_exists():
        people.insert(0, ("admin@example.com", Role.ADMIN))
    for email, role in people:
        if users.find_by_email(email) is None:
            password = generate_password()
            user = users.create_user(email, role, password, DEMO, name=f"Demo {role}")
            db.session.flush()
            created.user_ids.append(user.id)
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
    database = add_demo_database(created)
    db.session.flush()
    created.connection_ids.extend([main.id, support.id, database.id])
    dispatch.commit_and_run()
    lines.append(f"Customer database (SQLite, searched automatically): {database.secrets['path']}")

    def new(email: str, external_id: str) -> str:
        pr = privacy_requests.create_request(
            identity={"email": email}, policy_key="default_access_policy", actor=DEMO, external_id=external_id
        )
        created.request_ids.append(pr.id)
        dispatch.commit_and_run()
        return created.request_ids[-1]

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


def _undo(created: Created) -> None:
    """Remove what a failed seed made, in a transaction of its own (the failure's is rolled back)."""
    with db.engine.begin() as connection:
        if created.request_ids:
            connection.execute(delete(PrivacyRequest).where(PrivacyRequest.id.in_(created.request_ids)))
        if created.connection_ids:
            connection.execute(
                delete(ConnectionConfig).where(ConnectionConfig.id.in_(created.connection_ids))
            )
        if created.user_ids:
            connection.execute(delete(User).where(User.id.in_(created.user_ids)))
        # The seed's own events, and the runner's for its requests: the seed never happened.
        connection.execute(
            delete(AuditEvent).where(
                AuditEvent.created_at >= created.started,
                (AuditEvent.actor_label == DEMO.label)
                | AuditEvent.privacy_request_id.in_(created.request_ids),
            )
        )
    for path in created.files:
        path.unlink(missing_ok=True)


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


def add_demo_database(created: Created | None = None) -> ConnectionConfig:
    """The SQLite demo database in the instance folder, as a connection with its dataset attached."""
    path = create_demo_database(Path(current_app.instance_path) / DEMO_DATABASE_FILE)
    if created is not None:
        created.files.append(path)
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
