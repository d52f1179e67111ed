"""``audit.change_and_record``: a compare-and-swap UPDATE and its audit event, written together only when
the UPDATE changed a row (one statement on PostgreSQL, two on SQLite; the same rows either way)."""

from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, PrivacyRequest, utcnow
from portal.services.audit import SYSTEM, change_and_record
from tests.workflow_helpers import add_webhook, field, new_request

_requests = PrivacyRequest.__table__
TOUCH = (
    sa.update(_requests)
    .where(_requests.c.id == sa.bindparam("request_id"), _requests.c.status == sa.bindparam("expected"))
    .values(updated_at=sa.bindparam("now"), status=sa.bindparam("status"))
)


def _events(request_id: str) -> list[tuple[str, dict]]:
    return [
        (event.action, event.details)
        for event in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.privacy_request_id == request_id).order_by(AuditEvent.id)
        )
    ]


def _status(request_id: str) -> str:
    return db.session.scalar(sa.select(_requests.c.status).where(_requests.c.id == request_id))


def test_a_change_that_happens_is_recorded_with_its_details(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()  # waits in requires_input
    before = _events(request_id)
    params = {"request_id": request_id, "expected": "requires_input", "status": "paused", "now": utcnow()}

    changed = change_and_record(
        TOUCH, params, SYSTEM, "test.touched", privacy_request_id=request_id, why="a test"
    )
    db.session.commit()

    assert changed is True
    assert _status(request_id) == "paused"
    assert _events(request_id) == [*before, ("test.touched", {"why": "a test"})]


def test_a_change_that_finds_no_row_records_nothing(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    before = _events(request_id)
    params = {"request_id": request_id, "expected": "complete", "status": "paused", "now": utcnow()}

    changed = change_and_record(TOUCH, params, SYSTEM, "test.touched", privacy_request_id=request_id)
    db.session.commit()

    assert changed is False
    assert _status(request_id) == "requires_input"
    assert _events(request_id) == before


def test_an_event_still_pending_in_the_session_is_older_than_the_change(app):
    """A request created and run in one transaction: its creation event (added, not yet flushed) comes
    before the run's, by time as by id, so the timeline shows them in the order they happened."""
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    events = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.created_at)
        .where(AuditEvent.privacy_request_id == request_id)
        .order_by(AuditEvent.id)
    ).all()
    assert [action for action, _ in events][:2] == ["request.created", "request.run_started"]
    assert [at for _, at in events] == sorted(at for _, at in events)
