"""The per-role dashboard: what it counts (on both databases) and what each role is shown."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import PackageDelivery, PrivacyRequest, utcnow
from portal.services import dashboard
from tests.factories import make_connection, make_webhook
from tests.workflow_helpers import field, new_request


def _set(request_id: str, **values) -> None:
    privacy_request = db.session.get(PrivacyRequest, request_id)
    for name, value in values.items():
        setattr(privacy_request, name, value)
    db.session.commit()


def test_overdue_counts_open_requests_due_before_today(app):
    make_webhook("Customer CRM", [field("First name")])  # so that requests wait, open, for input
    now = utcnow()
    late = new_request("late@example.com")
    _set(late, due_date=now - timedelta(days=2))
    late_but_done = new_request("done@example.com")
    _set(late_but_done, due_date=now - timedelta(days=2), status="complete")
    late_but_denied = new_request("denied@example.com")
    _set(late_but_denied, due_date=now - timedelta(days=5), status="denied")
    due_today = new_request("today@example.com")
    _set(due_today, due_date=now)
    new_request("fresh@example.com")

    assert dashboard.overdue_count(now) == 1


def test_webhooks_missing_fields_lists_enabled_manual_webhooks_without_fields(app):
    make_connection("Warehouse")
    make_connection("Old archive", disabled=True)
    make_webhook("Customer CRM", [field("First name")])
    make_connection("Customer database", connection_type="sqlite")

    assert [conn.name for conn in dashboard.webhooks_missing_fields()] == ["Warehouse"]


def test_staff_see_their_queue_with_progress_and_the_overdue_count(client, login_as):
    make_webhook("Customer CRM", [field("First name")])
    make_webhook("Paper archive", [field("Box number")])
    request_id = new_request("late@example.com", external_id="TICKET-9")
    _set(request_id, due_date=utcnow() - timedelta(days=3))
    login_as("staff")

    page = client.get("/").get_data(as_text=True)

    assert "My queue: waiting for input" in page
    assert "0 of 2 systems done" in page
    assert "overdue by 3 days" in page
    assert "open request overdue" in page
    assert "past the due date" in page
    assert "late@example.com" not in page  # identities are masked
    assert "Manual webhooks without fields" not in page
    assert "Packages waiting for review" not in page and "Packages ready" not in page


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        (
            "staff",
            [
                "Nothing is waiting for input.",
                '0</span>\n        <span class="stat-label">open requests overdue',
            ],
            ["Requests in error", "Packages waiting for review", "Packages ready"],
        ),
        (
            "admin",
            [
                "Every enabled manual webhook has fields.",
                "No request is in error.",
                "Nothing is waiting for input.",
                "No package waits for review.",
            ],
            [],
        ),
        (
            "reviewer",
            ["No package waits for review.", '0</span>\n        <span class="stat-label">packages to review'],
            ["My queue"],
        ),
    ],
)
def test_each_role_sees_its_empty_states(client, login_as, role, shown, hidden):
    login_as(role)
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in shown:
        assert text in page
    for text in hidden:
        assert text not in page


def test_admins_see_webhooks_without_fields_and_requests_in_error(client, login_as):
    warehouse = make_connection("Warehouse")
    errored = new_request("broken@example.com")
    _set(errored, status="error", error_message="The customer database could not be reached.")
    login_as("admin")

    page = client.get("/").get_data(as_text=True)

    assert f'href="/admin/connections/{warehouse.key}/fields"' in page
    assert "The customer database could not be reached." in page
    assert f'href="/requests/{errored}"' in page
    assert "needs a retry" in page


def test_reviewers_see_the_packages_waiting_for_review_not_those_released(app, client, login_as):
    waiting, sent_back, approved = (new_request(f"{n}@example.com") for n in ("w", "s", "a"))
    for request_id in (waiting, sent_back, approved):
        _set(request_id, status="complete", finished_processing_at=utcnow())
    db.session.add_all(
        [
            PackageDelivery(privacy_request_id=sent_back, state="sent_back"),
            PackageDelivery(privacy_request_id=approved, state="delivered"),
        ]
    )
    db.session.commit()
    login_as("reviewer")

    page = client.get("/").get_data(as_text=True)

    assert "Packages waiting for review" in page
    assert '2</span>\n        <span class="stat-label">packages to review' in page
    assert f"/packages/{waiting}" in page and f"/packages/{sent_back}" in page
    assert f"/packages/{approved}" not in page

    app.config["REQUIRE_PACKAGE_REVIEW"] = False  # nothing to review: the tile counts every package
    page = client.get("/").get_data(as_text=True)
    assert "Packages ready" in page and f"/packages/{approved}" in page
    assert '3</span>\n        <span class="stat-label">packages ready' in page
