"""The request lifecycle (``models.lifecycle``): the transition table is the only writer of a request's
status; a change is a compare-and-swap that records its event only when it happened."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, PrivacyRequest, RequestStatus, lifecycle
from portal.models.audit import SYSTEM
from tests.workflow_helpers import add_webhook, field, new_request

S = RequestStatus
_requests = PrivacyRequest.__table__


def _events(request_id: str) -> list[tuple[str, dict]]:
    return [
        (event.action, event.details)
        for event in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.privacy_request_id == request_id).order_by(AuditEvent.id)
        )
    ]


def _row(request_id: str):
    return db.session.execute(
        sa.select(_requests.c.status, _requests.c.runner_claim).where(_requests.c.id == request_id)
    ).one()


def _put(request_id: str, status: RequestStatus, claim: str | None = None) -> None:
    """Place a request in ``status`` directly (a test fixture, around the lifecycle)."""
    db.session.execute(
        sa.update(_requests)
        .where(_requests.c.id == request_id)
        .values(status=status.value, runner_claim=claim)
    )
    db.session.commit()


def _options(name: str) -> dict:
    if name == "claim":
        return {"claim": "new-claim", "unclaimed": True}
    if name in lifecycle.RUN_OWN:
        return {"claimed_by": "run-1"}
    return {}


MOVES = [(name, status) for name in lifecycle.TRANSITIONS for status in S]


@pytest.mark.parametrize(("name", "status"), MOVES, ids=[f"{n}-from-{s.value}" for n, s in MOVES])
def test_every_move_in_the_table_works_and_every_other_is_refused(app, name, status):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    transition = lifecycle.TRANSITIONS[name]
    claim = "run-1" if name in lifecycle.RUN_OWN else None
    _put(request_id, status, claim)
    before = _events(request_id)

    changed = lifecycle.change(request_id, name, SYSTEM, details={"why": "a test"}, **_options(name))
    db.session.commit()

    if status in transition.sources:
        assert changed is True
        target = transition.target or status
        assert _row(request_id) == (target.value, "new-claim" if name == "claim" else None)
        assert _events(request_id) == [*before, (transition.action, {"why": "a test"})]
    else:
        assert changed is False
        assert _row(request_id) == (status.value, claim)
        assert _events(request_id) == before


def test_a_runs_own_change_needs_the_claim_it_holds(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    _put(request_id, S.IN_PROCESSING, "run-1")
    with pytest.raises(ValueError, match="needs the run's claim"):
        lifecycle.change(request_id, "complete", SYSTEM)
    assert lifecycle.change(request_id, "complete", SYSTEM, claimed_by="someone-else") is False
    assert lifecycle.change(request_id, "complete", SYSTEM, claimed_by="run-1") is True
    db.session.commit()
    assert _row(request_id) == ("complete", None)


def test_a_claim_skips_a_request_another_run_holds(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    _put(request_id, S.IN_PROCESSING, "run-1")
    assert lifecycle.change(request_id, "claim", SYSTEM, claim="run-2", unclaimed=True) is False
    _put(request_id, S.IN_PROCESSING, None)
    assert lifecycle.change(request_id, "claim", SYSTEM, claim="run-2", unclaimed=True) is True


def test_sources_narrow_a_transition_and_never_widen_it(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    _put(request_id, S.PENDING)
    assert lifecycle.change(request_id, "claim", SYSTEM, claim="c", sources={S.APPROVED}) is False
    assert lifecycle.change(request_id, "approve", SYSTEM, sources={S.PENDING, S.COMPLETE}) is True
    _put(request_id, S.COMPLETE)
    assert lifecycle.change(request_id, "approve", SYSTEM, sources={S.COMPLETE}) is False


def test_only_the_lifecycle_writes_a_requests_status(app):
    """Every statement that sets a request's status, through a request's whole life (create, wait for
    input, save, resume, complete; fail and retry; cancel; approve and deny; the sweeper's requeue), is run
    by ``lifecycle.change``."""
    import inspect

    from portal import cache
    from portal.execution import collection, dispatch, sweeper
    from portal.services import manual_inputs, privacy_requests
    from portal.services.identities import external_id_index  # noqa: F401 - imported for the stack below

    writers: list[str] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE privacy_requests SET") and " status=" in statement.replace(
            " = ", "="
        ):
            frames = [frame.function for frame in inspect.stack()]
            writers.append(
                "lifecycle"
                if "change" in frames
                and any(frame.filename.endswith("models/lifecycle.py") for frame in inspect.stack())
                else statement
            )

    sa.event.listen(db.engine, "before_cursor_execute", spy)
    try:
        add_webhook("crm", [field("Name")])
        waiting = new_request()
        manual_inputs.save_manual_input(waiting, "crm", {"name": "Jane"}, SYSTEM)
        privacy_requests.resume_request(waiting, SYSTEM)
        dispatch.commit_and_run()
        failing = new_request("fail@example.com")
        manual_inputs.save_manual_input(failing, "crm", {}, SYSTEM)
        original, collection.collect = (
            collection.collect,
            lambda subject: (_ for _ in ()).throw(RuntimeError()),
        )
        try:
            privacy_requests.resume_request(failing, SYSTEM)
            dispatch.commit_and_run()
        finally:
            collection.collect = original
        privacy_requests.retry_request(failing, SYSTEM)
        privacy_requests.cancel_request(new_request("cancel@example.com"), SYSTEM)
        app.config["REQUIRE_APPROVAL"] = True
        privacy_requests.approve_request(new_request("approve@example.com"), SYSTEM)
        privacy_requests.deny_request(new_request("deny@example.com"), "no", SYSTEM)
        dispatch.commit_and_run()
        sweeper.sweep()
        cache.clear()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", spy)
    assert len(writers) >= 10 and all(writers)


def test_an_event_written_before_a_change_is_older_than_the_change(app):
    """A request created and run in one transaction: its creation event comes before the run's, by time
    as by id, so the timeline shows them in the order they happened."""
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    events = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.created_at)
        .where(AuditEvent.privacy_request_id == request_id)
        .order_by(AuditEvent.id)
    ).all()
    assert [action for action, _ in events][:2] == ["request.created", "request.run_started"]
    assert [at for _, at in events] == sorted(at for _, at in events)
