"""Privacy-request bodies with fidesops' keys (PrivacyRequestResponse of fidesops 1.8.2), verbose results,
include_identities and the execution log at /privacy-request/{id}/log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, CollectionStep, PrivacyRequest, utcnow
from portal.models.audit import Actor
from portal.services import tokens
from tests.workflow_helpers import add_webhook, field, new_request

V1 = "/api/v1"
# fidesops 1.8.2, fidesops/ops/schemas/privacy_request.py: PrivacyRequestResponse's fields.
FIDESOPS_KEYS = {
    "id",
    "created_at",
    "started_processing_at",
    "reviewed_at",
    "reviewed_by",
    "reviewer",
    "finished_processing_at",
    "identity_verified_at",
    "paused_at",
    "status",
    "external_id",
    "identity",
    "policy",
    "action_required_details",
    "resume_endpoint",
    "days_left",
}
FIDESOPS_POLICY_KEYS = {"name", "key", "drp_action", "execution_timeframe", "rules"}
FIDESOPS_LOG_KEYS = {
    "collection_name",
    "fields_affected",
    "message",
    "action_type",
    "status",
    "updated_at",
    "connection_key",
    "dataset_name",
}


@pytest.fixture
def call(client, make_user):
    user = make_user(role="admin")
    _, secret = tokens.create_token(user, "test", Actor.system("test"))
    db.session.commit()

    def _call(method: str, path: str, **kwargs):
        return client.open(V1 + path, method=method, headers={"Authorization": f"Bearer {secret}"}, **kwargs)

    return _call


@pytest.fixture
def waiting():
    add_webhook("crm", [field("Email")])
    db.session.commit()
    request_id = new_request("jane@example.com")
    assert db.session.get(PrivacyRequest, request_id).status == "requires_input"
    return request_id


def listed(call, request_id: str, query: str = "") -> dict:
    response = call("GET", f"/privacy-request?request_id={request_id}{query}")
    assert response.status_code == 200
    (item,) = response.get_json()["items"]
    return item


def test_a_request_has_every_key_fidesops_answers_and_the_portals_own(call, waiting):
    item = listed(call, waiting)
    assert set(item) >= FIDESOPS_KEYS, FIDESOPS_KEYS - set(item)
    assert {"due_date", "denial_reason", "error_message"} <= set(item)
    assert set(item["policy"]) == FIDESOPS_POLICY_KEYS
    assert item["policy"]["key"] == "default_access_policy"
    assert item["policy"]["execution_timeframe"] == 30
    assert item["policy"]["rules"] == [] and item["policy"]["drp_action"] is None
    assert "results" not in item  # only with verbose


def test_a_waiting_request_says_where_to_resume_it_and_others_do_not(call, waiting):
    item = listed(call, waiting)
    assert item["resume_endpoint"] == f"/privacy-request/{waiting}/resume_from_requires_input"
    call("PATCH", f"/privacy-request/{waiting}/access_manual_webhook/crm", json={"email": "j@example.com"})
    response = call("POST", f"/privacy-request/{waiting}/resume_from_requires_input")
    assert response.status_code == 200
    assert response.get_json()["status"] == "complete"
    assert response.get_json()["resume_endpoint"] is None


def test_days_left_counts_to_the_due_date(call, waiting):
    pr = db.session.get(PrivacyRequest, waiting)
    pr.due_date = utcnow() + timedelta(days=12)
    db.session.commit()
    assert listed(call, waiting)["days_left"] == 12
    pr.due_date = utcnow() - timedelta(days=3)
    db.session.commit()
    assert listed(call, waiting)["days_left"] == -3


def test_identities_only_when_asked_and_every_one_handed_out_is_audited(call, waiting):
    def reveals() -> int:
        return len(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "request.identity_revealed")
            ).all()
        )

    assert listed(call, waiting)["identity"] is None
    assert reveals() == 0
    item = listed(call, waiting, "&include_identities=true")
    assert item["identity"]["email"] == "jane@example.com"
    assert reveals() == 1
    response = call(
        "POST", "/privacy-request/search", json={"request_id": waiting, "include_identities": True}
    )
    assert response.get_json()["items"][0]["identity"]["email"] == "jane@example.com"
    assert reveals() == 2


def test_a_reviewed_request_names_its_reviewer_as_fidesops_does(app, call, make_user):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request("ann@example.com")
    response = call("PATCH", "/privacy-request/administrate/approve", json={"request_ids": [request_id]})
    (approved,) = response.get_json()["succeeded"]
    assert approved["reviewer"]["username"] == approved["reviewed_by"]
    assert approved["reviewer"]["id"].isdigit()


def test_verbose_results_and_the_log_come_from_the_collection_steps_and_the_review(app, call):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request("ann@example.com")
    call("PATCH", "/privacy-request/administrate/approve", json={"request_ids": [request_id]})
    for step in [
        CollectionStep(
            privacy_request_id=request_id,
            run=1,
            connection_key="shop_db",
            connection_name="Shop",
            rows_found=3,
            row_counts={"shop:customer": 1, "shop:orders": 2},
        ),
        CollectionStep(
            privacy_request_id=request_id,
            run=1,
            connection_key="loyalty_db",
            connection_name="Loyalty",
            error="Could not connect to loyalty_db: connection refused",
        ),
    ]:
        db.session.add(step)
        db.session.flush()  # in this order
    db.session.commit()

    item = listed(call, request_id, "&verbose=True")
    results = item["results"]
    assert set(results) == {"Request approved", "shop", "loyalty_db"}  # (the JSON's keys come sorted)
    assert [e["collection_name"] for e in results["shop"]] == ["customer", "orders"]
    assert results["shop"][1]["message"] == "2 rows found"
    assert results["shop"][1]["status"] == "complete"
    assert results["loyalty_db"][0]["status"] == "error"
    assert results["Request approved"][0]["status"] == "approved"

    response = call("GET", f"/privacy-request/{request_id}/log")
    assert response.status_code == 200
    page = response.get_json()
    assert (page["total"], page["page"], page["size"]) == (4, 1, 50)
    assert all(set(entry) >= FIDESOPS_LOG_KEYS for entry in page["items"])
    assert [e["dataset_name"] for e in page["items"]] == ["Request approved", "shop", "shop", None]
    second = call("GET", f"/privacy-request/{request_id}/log/?page=2&size=3").get_json()
    assert [e["collection_name"] for e in second["items"]] == [None]


def test_the_log_of_an_unknown_request_is_fidesops_404(call):
    response = call("GET", "/privacy-request/pri_nope/log")
    assert response.status_code == 404
    assert response.get_json() == {"detail": "No privacy request found with id 'pri_nope'."}
