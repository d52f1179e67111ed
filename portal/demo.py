"""The demo seed: the fidesops example webhook, a second system, users and requests in several states."""

from __future__ import annotations

from sqlalchemy import select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import ConnectionConfig, Role
from portal.security import generate_password
from portal.services import connections, manual_inputs, privacy_requests, users, webhooks
from portal.services.audit import Actor

DEMO = Actor.system("seed-demo")
DEMO_WEBHOOK_KEY = "manual_webhook_key"

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
    dispatch.commit_and_run()

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
