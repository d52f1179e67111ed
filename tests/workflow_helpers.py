"""Direct model helpers for workflow tests (independent of the admin services' validation)."""

from __future__ import annotations

import re

from flask import current_app

from portal.execution import dispatch
from portal.execution.package import PackageWriter
from portal.extensions import db
from portal.models import ConnectionConfig, ManualWebhook, ManualWebhookVersion
from portal.models.audit import Actor
from portal.services import privacy_requests, webhooks

STAFF = Actor("user", "staff@example.com")


def field(pii_field: str, label: str | None = None, **extra) -> dict:
    label = label or pii_field.lower().replace(" ", "_")
    return {"pii_field": pii_field, "dsr_package_label": label, "type": "text", "required": False, **extra}


def add_webhook(key: str, fields: list[dict], *, name: str | None = None, disabled: bool = False):
    connection = ConnectionConfig(
        key=key,
        name=name or key.replace("_", " ").title(),
        connection_type="manual_webhook",
        disabled=disabled,
    )
    # Ids by position unless given: a test's form posts ``field_0``, ``field_1``... as before.
    fields = [{"id": str(index), **definition} for index, definition in enumerate(fields)]
    connection.manual_webhook = ManualWebhook(fields=fields, version=1)
    db.session.add(connection)
    db.session.flush()
    db.session.add(ManualWebhookVersion(webhook_id=connection.manual_webhook.id, version=1, fields=fields))
    db.session.commit()
    return connection


def set_fields(connection: ConnectionConfig, fields: list[dict]) -> int:
    """Replace the webhook's fields as an admin would (the service: ids kept by label, next version)."""
    webhook = webhooks.replace_fields(connection, fields, STAFF)
    db.session.commit()
    return webhook.version


_VERSION = re.compile(r'name="version" type="hidden" value="(\d+)"')


def post_manual(client, url: str, data: dict):
    """POST a manual-input form as a browser would: the version comes from the form page itself."""
    page = client.get(url)
    found = _VERSION.search(page.get_data(as_text=True)) if page.status_code in (200, 400) else None
    return client.post(url, data={"version": found.group(1), **data} if found else data)


def new_request(email: str = "subject@example.com", **kwargs) -> str:
    pr = privacy_requests.create_request(
        identity={"email": email, **kwargs.pop("identity", {})},
        policy_key=kwargs.pop("policy_key", "default_access_policy"),
        actor=STAFF,
        **kwargs,
    )
    request_id = pr.id
    dispatch.commit_and_run()
    return request_id


def store_package(request_id: str, package: dict, chunk_bytes: int | None = None) -> None:
    """Replace a request's stored package with ``package`` (as a run would store it) and commit."""
    with PackageWriter(chunk_bytes or current_app.config["PACKAGE_CHUNK_BYTES"]) as writer:
        for key, rows in package.items():
            writer.add(key, rows)
        writer.save(request_id)
    db.session.commit()
