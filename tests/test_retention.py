"""Retention: `flask purge` deletes the personal data of requests closed more than
RETENTION_DAYS ago, keeps the PII-free request log and audit trail, audits itself, and says so on screen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from portal.config import DefaultConfig
from portal.extensions import db
from portal.models import AccessPackage, AuditEvent, ManualInput, PrivacyRequest, utcnow
from portal.services import identities, privacy_requests, request_lists
from tests.hardening_helpers import SUBJECT_EMAIL, TEST_ACTOR, build_world, complete_request, sign_in, text_of
from tests.workflow_helpers import new_request

README = Path(__file__).resolve().parent.parent / "README.md"


def _age(request_id: str, days: int, **columns) -> None:
    """Move a request's closing date ``days`` into the past (as if time had passed)."""
    when = utcnow() - timedelta(days=days)
    db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id)
        .values(**dict.fromkeys(columns or ("finished_processing_at",), when))
    )
    db.session.commit()


@pytest.fixture
def closed(app):
    """Requests closed long ago and recently, in every closed status, and one still open."""
    world = build_world()
    old = world.complete_id  # complete, with a manual entry and a package, 100 days ago
    _set_external_id(old, "CRM-OLD-1")
    _age(old, 100)
    recent = complete_request(email="recent@example.com")
    _set_external_id(recent, "CRM-RECENT-1")
    _age(recent, 10)
    denied = new_request(email="denied@example.com")
    db.session.execute(update(PrivacyRequest).where(PrivacyRequest.id == denied).values(status="pending"))
    privacy_requests.deny_request(denied, "Asked by mistake", TEST_ACTOR)
    db.session.commit()
    _age(denied, 120, reviewed_at=True)
    canceled = world.empty_waiting_id
    privacy_requests.cancel_request(canceled, TEST_ACTOR)
    db.session.commit()
    _age(canceled, 95, updated_at=True)
    open_but_old = world.waiting_id  # requires_input: never purged, however old
    _age(open_but_old, 400, created_at=True, updated_at=True)
    return {
        "world": world,
        "old": old,
        "recent": recent,
        "denied": denied,
        "canceled": canceled,
        "open": open_but_old,
    }


def _set_external_id(request_id: str, external_id: str) -> None:
    pr = db.session.get(PrivacyRequest, request_id)
    pr.external_id = external_id
    pr.external_id_index = identities.external_id_index(external_id)
    db.session.commit()


def _request(request_id: str) -> PrivacyRequest:
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id)


def _count(model, request_id: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(model).where(model.privacy_request_id == request_id)
    )


def test_retention_defaults_to_90_days():
    assert DefaultConfig.RETENTION_DAYS == 90


def test_purge_removes_personal_data_of_requests_closed_over_90_days_ago(runner, closed):
    old = _request(closed["old"])
    kept = {"status": old.status, "created_at": old.created_at, "finished": old.finished_processing_at}
    events_before = _count(AuditEvent, closed["old"])

    result = runner.invoke(args=["purge"])

    assert result.exit_code == 0, result.output
    purged_ids = {line.split()[0] for line in result.stdout.splitlines()}
    assert purged_ids == {closed["old"], closed["denied"], closed["canceled"]}
    assert "Purged 3 requests closed more than 90 days ago." in result.stderr
    old = _request(closed["old"])
    assert old.identity == {} and old.email_index is None and old.phone_index is None
    assert old.external_id is None and old.external_id_index is None
    assert old.purged_at is not None
    assert _count(ManualInput, closed["old"]) == 0 and _count(AccessPackage, closed["old"]) == 0
    assert {
        "status": old.status,
        "created_at": old.created_at,
        "finished": old.finished_processing_at,
    } == kept
    assert _count(AuditEvent, closed["old"]) == events_before + 1  # the trail stays, plus the purge
    denied = _request(closed["denied"])
    assert denied.status == "denied" and denied.denial_reason is None and denied.identity == {}


def test_recent_and_open_requests_are_kept(runner, closed):
    recent = _request(closed["recent"]).identity

    runner.invoke(args=["purge"])

    assert _request(closed["recent"]).identity == recent
    assert _request(closed["recent"]).external_id == "CRM-RECENT-1"
    assert _request(closed["recent"]).purged_at is None
    assert _count(AccessPackage, closed["recent"]) == 1
    waiting = _request(closed["open"])
    assert waiting.purged_at is None and waiting.identity == {"email": "waiting@example.com"}
    assert _count(ManualInput, closed["open"]) == 1


def test_the_purge_is_audited_without_personal_data(runner, closed):
    runner.invoke(args=["purge"])

    event = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.privacy_request_id == closed["old"], AuditEvent.action == "request.purged"
        )
    )
    assert event.actor_label == "cli"
    assert event.details == {
        "retention_days": 90,
        "status": "complete",
        "manual_inputs_deleted": 1,
        "package_deleted": True,
        "delivery_deleted": False,  # never reviewed
        "notes_deleted": 0,
        "attachments_deleted": 0,
    }
    assert SUBJECT_EMAIL not in str(event.details) and "Jane" not in str(event.details)


def test_purge_twice_purges_nothing_the_second_time(runner, closed):
    runner.invoke(args=["purge"])

    again = runner.invoke(args=["purge"])

    assert again.exit_code == 0 and again.stdout == ""
    assert "Purged 0 requests" in again.stderr


def test_dry_run_lists_and_changes_nothing(runner, closed):
    result = runner.invoke(args=["purge", "--dry-run"])

    assert result.exit_code == 0
    assert "Would purge 3 requests closed more than 90 days ago." in result.stderr
    assert _request(closed["old"]).purged_at is None
    assert _count(AccessPackage, closed["old"]) == 1


def test_the_retention_period_is_a_setting(app, runner, closed):
    app.config["RETENTION_DAYS"] = 5

    result = runner.invoke(args=["purge"])

    assert "Purged 4 requests closed more than 5 days ago." in result.stderr
    assert _request(closed["recent"]).purged_at is not None


@pytest.mark.parametrize("days", [0, -1, "90", True])
def test_a_bad_retention_setting_is_refused(app, runner, closed, days):
    app.config["RETENTION_DAYS"] = days

    result = runner.invoke(args=["purge"])

    assert result.exit_code == 1
    assert "RETENTION_DAYS must be a whole number of days, at least 1" in result.stderr
    assert _request(closed["old"]).purged_at is None


def test_pages_say_the_data_was_purged_under_the_retention_policy(app, runner, closed):
    runner.invoke(args=["purge"])
    purged_on = _request(closed["old"]).purged_at.strftime("%Y-%m-%d")
    world = closed["world"]
    client = app.test_client()
    sign_in(client, world.users["admin"])

    page = text_of(client.get(f"/requests/{closed['old']}"))
    package = client.get(f"/packages/{closed['old']}")
    listing = text_of(client.get("/packages/"))
    api = client.get(f"/api/v1/privacy-request/{closed['old']}/package", headers=world.headers("admin"))
    reveal = client.post(f"/requests/{closed['old']}/reveal", follow_redirects=True)

    assert f"Personal data purged on {purged_on} under the retention policy." in page
    assert "Request created" in page  # the timeline is still there
    assert "CRM-OLD-1" not in page and "External id" not in page
    message = f"The access package of privacy request '{closed['old']}' was purged on {purged_on} under the retention policy."
    assert package.status_code == 404 and message in text_of(package)
    assert f"Purged on {purged_on} under the retention policy" in listing
    assert api.status_code == 404 and api.get_json() == {"detail": message}
    assert f"The identity of privacy request '{closed['old']}' was purged on {purged_on}" in text_of(reveal)
    assert SUBJECT_EMAIL not in text_of(reveal)


def test_a_purged_request_is_no_longer_found_by_email_or_external_id(app, runner, closed):
    assert request_lists.list_requests(search=SUBJECT_EMAIL).total == 1
    assert request_lists.list_requests(search="crm-old-1").total == 1

    runner.invoke(args=["purge"])

    assert request_lists.list_requests(search=SUBJECT_EMAIL).total == 0
    assert request_lists.list_requests(search="crm-old-1").total == 0
    assert request_lists.list_requests(search="crm-recent-1").total == 1
    assert request_lists.list_requests(search=closed["old"]).total == 1  # still there by its id


def test_the_readme_documents_retention():
    readme = README.read_text()

    assert "PORTAL_RETENTION_DAYS" in readme
    assert "flask --app app purge" in readme


def test_the_sweeper_purges_only_when_enabled(app, runner, closed):
    result = runner.invoke(args=["sweep"])
    assert result.exit_code == 0 and "Purged" not in result.stderr
    assert _request(closed["old"]).purged_at is None
    app.config["PURGE_ON_SWEEP"] = True
    result = runner.invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "Purged 3 requests under the retention policy." in result.stderr
    assert _request(closed["old"]).purged_at is not None
    assert _request(closed["recent"]).purged_at is None
    purge_events = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "request.purged")
    assert db.session.scalar(purge_events) == 3
    assert (
        db.session.scalar(
            select(AuditEvent.actor_label).where(AuditEvent.action == "request.purged").limit(1)
        )
        == "sweeper"
    )
