"""Policies in the admin UI: list, create (with the GDPR and CCPA presets), edit; new requests choose
among them, and a policy's timeframe sets their due date."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, Policy, PrivacyRequest
from portal.models.audit import Actor
from portal.services import Conflict, ValidationFailed, policies

ADMIN = Actor.system("test")


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_create_with_a_preset_then_edit_and_new_requests_use_it(app, client, login_as):
    login_as("admin")
    assert "Default access policy" in text(client.get("/admin/policies"))

    response = client.post(
        "/admin/policies/new",
        data={"name": "CCPA access", "key": "ccpa_access", "preset": "ccpa"},
        follow_redirects=True,
    )
    assert "Policy “CCPA access” created: 45 days." in text(response)
    policy = db.session.scalar(sa.select(Policy).where(Policy.key == "ccpa_access"))
    assert policy.days_to_respond == 45

    response = client.post(
        f"/admin/policies/{policy.id}",
        data={"name": "CCPA (extended)", "days_to_respond": "40"},
        follow_redirects=True,
    )
    assert "40 days for new requests" in text(response)
    assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))][-2:] == [
        "policy.created",
        "policy.changed",
    ]

    login_as("staff")
    form = text(client.get("/requests/new"))
    assert "CCPA (extended) (40 days)" in form
    client.post("/requests/new", data={"email": "p@example.com", "policy": "ccpa_access"})
    made = db.session.scalar(sa.select(PrivacyRequest).order_by(PrivacyRequest.created_at.desc()))
    assert (made.due_date - made.created_at).days == 40


def test_the_form_needs_a_timeframe_and_a_unique_valid_key(app, client, login_as):
    login_as("admin")
    page = text(client.post("/admin/policies/new", data={"name": "X", "key": "x"}))
    assert "Choose a preset or type the timeframe." in page
    page = text(
        client.post(
            "/admin/policies/new", data={"name": "X", "key": "default_access_policy", "days_to_respond": "3"}
        )
    )
    assert "already exists" in page
    page = text(
        client.post("/admin/policies/new", data={"name": "X", "key": "bad key", "days_to_respond": "3"})
    )
    assert re.search(r"Letters, digits", page)


def test_service_rules(app):
    with pytest.raises(ValidationFailed):
        policies.create_policy(name="A", key="a", days_to_respond=0, actor=ADMIN)
    with pytest.raises(ValidationFailed):
        policies.create_policy(name=" ", key="a", days_to_respond=5, actor=ADMIN)
    policies.create_policy(name="A", key="a", days_to_respond=5, actor=ADMIN)
    with pytest.raises(Conflict):
        policies.create_policy(name="A", key="a", days_to_respond=5, actor=ADMIN)


def test_policies_are_for_admins_only(app, client, login_as):
    login_as("staff")
    assert client.get("/admin/policies").status_code == 403
    assert (
        client.post("/admin/policies/new", data={"name": "X", "key": "x", "preset": "gdpr"}).status_code
        == 403
    )


def test_a_policys_page_shows_its_rules_read_only(app, client, login_as, tmp_path):
    from portal.services import storage

    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path)
    (tmp_path / "exports").mkdir()
    storage.create_storage_config(name="Exports", key="exports", storage_type="local", actor=ADMIN)
    policy = policies.upsert_policy(
        name="Shop access", key="shop_access", drp_action=None, execution_timeframe=30, actor=ADMIN
    )
    rule = policies.upsert_rule(
        policy,
        name="Access rule",
        key="access_rule",
        action_type="access",
        storage_destination_key="exports",
        masking_strategy=None,
        actor=ADMIN,
    )
    policies.upsert_target(rule, name=None, key="email", data_category="user.contact.email", actor=ADMIN)
    db.session.commit()
    login_as("admin")
    page = text(client.get(f"/admin/policies/{policy.id}"))
    rules = page.split("<h2", 1)[1]
    assert "Access rule" in rules and "access_rule" in rules
    assert "Exports" in rules and "user.contact.email" in rules
    assert "<input" not in rules  # read-only: changed through the API
    default = db.session.scalar(sa.select(Policy.id).where(Policy.key == "default_access_policy"))
    assert "No rules" in text(client.get(f"/admin/policies/{default}"))
