"""The team workflow through the services: tasks and owners (fair assignment, claims racing, hand over,
give back, bulk), deactivation, cancel with a reason, notes and deadline extensions."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.execution import dispatch
from portal.extensions import db
from portal.models import AuditEvent, PrivacyRequest, Task, User
from portal.models.audit import Actor
from portal.services import (
    Conflict,
    Forbidden,
    InvalidState,
    ValidationFailed,
    deadlines,
    manual_inputs,
    notes,
    privacy_requests,
    tasks,
    users,
)
from tests.factories import make_user
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

SYSTEM = Actor.system("test")


def actor(user) -> Actor:
    return Actor.for_user(user)


def tasks_of(request_id: str) -> dict[str, tasks.TaskRow]:
    db.session.expire_all()
    return {row.connection_key: row for row in tasks.request_tasks(request_id)}


def actions(request_id: str) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.privacy_request_id == request_id)
            .order_by(AuditEvent.id)
        )
    )


@pytest.fixture
def team(app):
    crm = add_webhook("crm", [field("Name")], name="CRM")
    billing = add_webhook("billing", [field("Account")], name="Billing")
    people = {
        "admin": make_user(role="admin", name="Ada Admin"),
        "sam": make_user(role="staff", name="Sam Staff"),
        "tia": make_user(role="staff", name="Tia Staff"),
        "rex": make_user(role="reviewer", name="Rex Reviewer"),
    }
    return {"crm": crm, "billing": billing, **people}


# --- opening and assignment --------------------------------------------------------------------------


def test_a_waiting_request_has_one_open_task_per_missing_system_unassigned_without_owners(team):
    request_id = new_request()

    found = tasks_of(request_id)

    assert sorted(found) == ["billing", "crm"]
    assert {row.status for row in found.values()} == {"open"}
    assert {row.assignee_id for row in found.values()} == {None}
    assert actions(request_id).count("task.opened") == 2


def test_each_task_goes_to_the_owner_with_the_fewest_open_tasks_ties_to_the_lowest_id(team):
    sam, tia = team["sam"], team["tia"]
    tasks.set_owners(team["crm"], [tia.id, sam.id], actor(team["admin"]))
    db.session.commit()
    first_id = min(sam.id, tia.id)

    assigned = [tasks_of(new_request(email=f"s{n}@example.com"))["crm"].assignee_id for n in range(4)]

    other = max(sam.id, tia.id)
    assert assigned == [first_id, other, first_id, other]
    # billing has no owner: unassigned
    assert tasks.unassigned_count() == 4


def test_fairness_counts_open_tasks_only_and_skips_inactive_owners(team):
    sam, tia = team["sam"], team["tia"]
    tasks.set_owners(team["crm"], [sam.id, tia.id], actor(team["admin"]))
    db.session.commit()
    first = new_request(email="a@example.com")
    first_owner = tasks_of(first)["crm"].assignee_id
    manual_inputs.save_manual_input(first, "crm", {"name": "x"}, STAFF)  # done: no longer open
    db.session.commit()
    assert tasks_of(first)["crm"].status == "done"

    second = new_request(email="b@example.com")
    assert tasks_of(second)["crm"].assignee_id == first_owner  # both have 0 open; lowest id again

    users.update_user(tia, SYSTEM, role="staff", name=tia.name, active=False)
    db.session.commit()
    third = new_request(email="c@example.com")
    assert tasks_of(third)["crm"].assignee_id == sam.id


def test_only_active_staff_and_admins_can_own_a_system(team):
    with pytest.raises(ValidationFailed):
        tasks.set_owners(team["crm"], [team["rex"].id], actor(team["admin"]))


# --- claim, hand over, give back, bulk ---------------------------------------------------------------


def test_claim_then_a_second_claim_is_told_who_has_it(team):
    request_id = new_request()
    task_id = tasks_of(request_id)["crm"].id

    tasks.claim(task_id, actor(team["sam"]))
    db.session.commit()
    with pytest.raises(Conflict, match="already claimed by Sam Staff"):
        tasks.claim(task_id, actor(team["tia"]))
    assert "task.claimed" in actions(request_id)


def test_two_staff_claiming_one_task_at_once_one_wins_the_other_is_told(app, team):
    request_id = new_request()
    task_id = tasks_of(request_id)["crm"].id
    sam_id, tia_id = team["sam"].id, team["tia"].id
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def attempt(user_id: int):
        with app.app_context():
            user = db.session.get(User, user_id)
            who = Actor.for_user(user)
            barrier.wait()
            try:
                tasks.claim(task_id, who)
                db.session.commit()
                outcomes[user_id] = "won"
            except Conflict as exc:
                db.session.rollback()
                outcomes[user_id] = str(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(uid,)) for uid in (sam_id, tia_id)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes.values(), key=len)[0] == "won"
    winner = next(uid for uid, outcome in outcomes.items() if outcome == "won")
    loser_message = next(outcome for outcome in outcomes.values() if outcome != "won")
    assert "already claimed by" in loser_message
    assert tasks_of(request_id)["crm"].assignee_id == winner
    assert actions(request_id).count("task.claimed") == 1


def test_hand_over_and_give_back_follow_the_assignee_or_an_admin(team):
    request_id = new_request()
    task_id = tasks_of(request_id)["crm"].id
    sam, tia, admin = team["sam"], team["tia"], team["admin"]
    with pytest.raises(Forbidden):
        tasks.assign(task_id, tia.id, actor(sam))  # not his task (nobody's)
    tasks.claim(task_id, actor(sam))
    tasks.assign(task_id, tia.id, actor(sam))
    assert tasks_of(request_id)["crm"].assignee_id == tia.id
    with pytest.raises(Forbidden):
        tasks.release(task_id, actor(sam))
    tasks.release(task_id, actor(tia))
    assert tasks_of(request_id)["crm"].assignee_id is None
    tasks.assign(task_id, sam.id, actor(admin))
    assert tasks_of(request_id)["crm"].assignee_id == sam.id
    with pytest.raises(ValidationFailed):
        tasks.assign(task_id, team["rex"].id, actor(admin))
    with pytest.raises(Forbidden):
        tasks.claim(task_id, actor(team["rex"]))
    assert [a for a in actions(request_id) if a.startswith("task.") and a != "task.opened"] == [
        "task.claimed",
        "task.assigned",
        "task.released",
        "task.assigned",
    ]


def test_bulk_assign_is_for_admins_and_reports_what_it_could_not_do(team):
    ids = [new_request(email=f"b{n}@example.com") for n in range(3)]
    task_ids = [tasks_of(request_id)["crm"].id for request_id in ids]
    privacy_requests.cancel_request(ids[2], SYSTEM, "withdrawn")
    db.session.commit()
    with pytest.raises(Forbidden):
        tasks.bulk_assign(task_ids, team["sam"].id, actor(team["sam"]))

    changed, problems = tasks.bulk_assign(task_ids, team["tia"].id, actor(team["admin"]))
    db.session.commit()

    assert changed == 2
    assert len(problems) == 1 and "closed" in problems[0]
    assert [tasks_of(i)["crm"].assignee_id for i in ids[:2]] == [team["tia"].id] * 2


def test_deactivating_a_user_unassigns_their_open_tasks_and_says_how_many(team):
    request_id = new_request()
    for row in tasks_of(request_id).values():
        tasks.claim(row.id, actor(team["sam"]))
    db.session.commit()

    updated = users.update_user(team["sam"], actor(team["admin"]), role="staff", name="Sam", active=False)
    db.session.commit()

    assert updated.tasks_unassigned == 2
    assert {row.assignee_id for row in tasks_of(request_id).values()} == {None}
    assert tasks.unassigned_count() == 2


def test_tasks_are_done_on_a_current_save_and_stay_done_through_completion(team):
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    db.session.commit()
    assert tasks_of(request_id)["crm"].status == "done"
    manual_inputs.save_manual_input(request_id, "billing", {"account": "1"}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    assert {row.status for row in tasks_of(request_id).values()} == {"done"}


def test_cancel_keeps_the_reason_encrypted_closes_the_tasks_and_keeps_what_was_entered(team):
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    db.session.commit()

    privacy_requests.cancel_request(request_id, actor(team["sam"]), "Withdrawn by the subject by phone")
    db.session.commit()

    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.status == "canceled" and pr.cancel_reason == "Withdrawn by the subject by phone"
    raw = db.session.execute(
        sa.text("SELECT cancel_reason FROM privacy_requests WHERE id = :i"), {"i": request_id}
    )
    assert b"Withdrawn" not in bytes(raw.scalar())
    assert {row.status for row in tasks_of(request_id).values()} == {"done", "closed"}
    assert len(pr.manual_inputs) == 1
    with pytest.raises(InvalidState):
        privacy_requests.cancel_request(request_id, SYSTEM)


# --- lists -------------------------------------------------------------------------------------------


def test_my_tasks_soonest_due_first_with_due_filters_system_and_progress(team, app):
    now = datetime.now(UTC)
    ids = [new_request(email=f"l{n}@example.com") for n in range(3)]
    due = [now + timedelta(days=20), now - timedelta(days=2), now + timedelta(days=3)]
    for request_id, when in zip(ids, due, strict=True):
        db.session.execute(sa.update(Task).where(Task.privacy_request_id == request_id).values(due_date=when))
        for row in tasks_of(request_id).values():
            tasks.claim(row.id, actor(team["sam"]))
    db.session.commit()
    manual_inputs.save_manual_input(ids[2], "crm", {"name": "x"}, STAFF)
    db.session.commit()
    sam = team["sam"].id

    mine = tasks.list_tasks(view="mine", user_id=sam, size=10)
    assert [(row.privacy_request_id, row.connection_key) for row in mine.items] == [
        (ids[1], "billing"),
        (ids[1], "crm"),
        (ids[2], "billing"),
        (ids[0], "billing"),
        (ids[0], "crm"),
    ]
    assert mine.done[ids[2]] == 1 and mine.systems == 2
    assert {
        r.privacy_request_id for r in tasks.list_tasks(view="mine", user_id=sam, due="overdue").items
    } == {ids[1]}
    assert {r.privacy_request_id for r in tasks.list_tasks(view="mine", user_id=sam, due="soon").items} == {
        ids[2]
    }
    crm_only = tasks.list_tasks(view="all", connection_id=team["crm"].id)
    assert {r.connection_key for r in crm_only.items} == {"crm"} and crm_only.total == 2
    assert tasks.list_tasks(view="unassigned").total == 0
    paged = tasks.list_tasks(view="all", size=2, page=3)
    assert paged.total == 5 and len(paged.items) == 1 and paged.pages == 3

    load = {item.label: item for item in tasks.workload()}["Sam Staff"]
    assert (load.open, load.due_soon, load.overdue) == (5, 1, 2)
    behind = {item.label: item for item in tasks.systems_behind()}
    assert behind["Billing"].overdue == 1 and behind["CRM"].overdue == 1


def test_the_dashboard_summaries_are_reused_for_a_minute_only_when_large(team, app, monkeypatch):
    """Workload and systems behind read every open task: over ``EXACT_COUNT_LIMIT`` of them the answer
    may be a minute old (as large list totals are); a small one is always read afresh."""
    from cachetools import TTLCache

    from portal import cache
    from portal.services import request_lists

    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(cache, "task_summaries", TTLCache(maxsize=10, ttl=60, timer=clock))
    new_request(email="one@example.com")  # two open tasks, unassigned
    db.session.commit()
    assert [(load.label, load.open) for load in tasks.workload()] == [("Unassigned", 2)]
    new_request(email="two@example.com")
    db.session.commit()
    assert [(load.label, load.open) for load in tasks.workload()] == [("Unassigned", 4)]  # small: exact

    monkeypatch.setattr(request_lists, "EXACT_COUNT_LIMIT", 3)
    assert [(load.label, load.open) for load in tasks.workload()] == [("Unassigned", 4)]
    new_request(email="three@example.com")
    db.session.commit()
    assert [(load.label, load.open) for load in tasks.workload()] == [("Unassigned", 4)]  # large: kept
    clock.now = 61
    assert [(load.label, load.open) for load in tasks.workload()] == [("Unassigned", 6)]


# --- notes -------------------------------------------------------------------------------------------


def test_notes_are_encrypted_kept_with_line_breaks_and_deleted_by_author_or_admin(team):
    request_id = new_request()
    note = notes.add_note(request_id, "Called Jane Doe\r\nshe <b>agrees</b>", actor(team["sam"]))
    db.session.commit()

    assert notes.list_notes(request_id)[0].body == "Called Jane Doe\nshe <b>agrees</b>"
    raw = db.session.execute(sa.text("SELECT body FROM request_notes")).scalar()
    assert b"Jane" not in bytes(raw)
    assert "Jane" not in str([e.details for e in db.session.scalars(sa.select(AuditEvent))])
    with pytest.raises(Forbidden):
        notes.add_note(request_id, "x", actor(team["rex"]))
    with pytest.raises(ValidationFailed):
        notes.add_note(request_id, "x" * 5001, actor(team["sam"]))
    with pytest.raises(ValidationFailed):
        notes.add_note(request_id, "  \n ", actor(team["sam"]))
    with pytest.raises(Forbidden):
        notes.delete_note(request_id, note.id, actor(team["tia"]))

    notes.delete_note(request_id, note.id, actor(team["admin"]))
    db.session.commit()

    assert notes.list_notes(request_id) == []
    assert actions(request_id)[-1] == "note.deleted"


# --- deadline extensions -----------------------------------------------------------------------------


def _created(request_id: str, days_ago: int) -> None:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    db.session.execute(
        sa.update(PrivacyRequest)
        .where(PrivacyRequest.id == request_id)
        .values(created_at=when, due_date=when + timedelta(days=30))
    )
    db.session.commit()


def test_gdpr_extension_up_to_two_months_within_the_first_month_only(team):
    admin = actor(team["admin"])
    request_id = new_request()
    _created(request_id, 10)
    original = db.session.get(PrivacyRequest, request_id).due_date

    extension = deadlines.extend(
        request_id, admin, preset="gdpr", reason="Complex request", subject_told=True
    )
    db.session.commit()

    assert extension.new_due_date == deadlines.add_months(original, 2)
    assert extension.subject_told_at is not None
    db.session.expire_all()
    assert db.session.get(PrivacyRequest, request_id).due_date == extension.new_due_date
    assert {row.due_date for row in tasks_of(request_id).values()} == {extension.new_due_date}
    with pytest.raises(InvalidState, match="already extended"):
        deadlines.extend(request_id, admin, preset="gdpr", reason="again")

    late = new_request(email="late@example.com")
    _created(late, 40)
    with pytest.raises(InvalidState, match="within one month"):
        deadlines.extend(late, admin, preset="gdpr", reason="too late")
    too_far = original.date() + timedelta(days=70)
    other = new_request(email="far@example.com")
    _created(other, 1)
    with pytest.raises(InvalidState, match="allows a due date up to"):
        deadlines.extend(other, admin, preset="gdpr", reason="x", new_due=too_far + timedelta(days=40))


def test_ccpa_extension_once_up_to_45_days_and_a_custom_date_later(team):
    admin = actor(team["admin"])
    request_id = new_request()
    original = db.session.get(PrivacyRequest, request_id).due_date
    wanted = (original + timedelta(days=20)).date()

    extension = deadlines.extend(request_id, admin, preset="ccpa", reason="Volume", new_due=wanted)
    db.session.commit()
    assert extension.new_due_date.date() == wanted
    with pytest.raises(InvalidState, match="one extension only"):
        deadlines.extend(request_id, admin, preset="ccpa", reason="again")
    with pytest.raises(InvalidState, match="later than the current one"):
        deadlines.extend(request_id, admin, preset="custom", reason="x", new_due=date(2000, 1, 1))
    deadlines.extend(
        request_id, admin, preset="custom", reason="Agreed", new_due=wanted + timedelta(days=100)
    )
    db.session.commit()
    found = deadlines.extensions_of(request_id)
    assert [e.preset for e in found] == ["ccpa", "custom"]
    assert deadlines.original_due_date(db.session.get(PrivacyRequest, request_id), found) == original
    assert actions(request_id).count("request.deadline_extended") == 2


def test_only_an_admin_or_an_assignee_extends_and_a_reason_is_required(team):
    request_id = new_request()
    with pytest.raises(Forbidden):
        deadlines.extend(request_id, actor(team["sam"]), preset="ccpa", reason="x")
    tasks.claim(tasks_of(request_id)["crm"].id, actor(team["sam"]))
    with pytest.raises(ValidationFailed):
        deadlines.extend(request_id, actor(team["sam"]), preset="ccpa", reason="  ")
    deadlines.extend(request_id, actor(team["sam"]), preset="ccpa", reason="Need the archive")
    with pytest.raises(Forbidden):
        deadlines.extend(
            request_id, actor(team["rex"]), preset="custom", reason="x", new_due=date(2100, 1, 1)
        )


def test_retention_purges_notes_and_reasons_with_the_request_and_keeps_other_requests_notes(team):
    from portal.services import retention

    staff, admin = actor(team["sam"]), actor(team["admin"])
    old, kept = new_request(email="old@example.com"), new_request(email="kept@example.com")
    for request_id in (old, kept):
        notes.add_note(request_id, "Spoke to Jane", staff)
        deadlines.extend(request_id, admin, preset="ccpa", reason="Archive off site")
    privacy_requests.cancel_request(old, staff, "Withdrawn")
    db.session.commit()
    long_ago = datetime.now(UTC) - timedelta(days=400)
    db.session.execute(sa.update(PrivacyRequest).where(PrivacyRequest.id == old).values(updated_at=long_ago))
    db.session.commit()

    purged = retention.purge_expired(SYSTEM)
    db.session.commit()

    assert [item.request_id for item in purged] == [old]
    assert notes.list_notes(old) == [] and len(notes.list_notes(kept)) == 1
    assert [e.reason for e in deadlines.extensions_of(old)] == [None]
    assert [e.reason for e in deadlines.extensions_of(kept)] == ["Archive off site"]
    db.session.expire_all()
    assert db.session.get(PrivacyRequest, old).cancel_reason is None


def test_a_field_change_reopens_done_tasks_and_a_new_system_gets_tasks_for_waiting_requests(team):
    from tests.workflow_helpers import set_fields

    request_id = new_request()
    tasks.claim(tasks_of(request_id)["crm"].id, actor(team["sam"]))
    manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    db.session.commit()
    assert tasks_of(request_id)["crm"].status == "done"

    set_fields(team["crm"], [field("Name"), field("Email")])

    reopened = tasks_of(request_id)["crm"]
    assert reopened.status == "open" and reopened.assignee_id == team["sam"].id

    from tests.factories import make_webhook

    make_webhook("Archive", [field("Box")], key="archive")
    archive = tasks_of(request_id)["archive"]
    assert archive.status == "open" and archive.assignee_id is None
    assert archive.due_date == db.session.get(PrivacyRequest, request_id).due_date
