"""Notifications (S10) against a real SMTP server: aiosmtpd on a free localhost port receives what the
portal sends, and the tests read the raw messages — who, subject, both parts, links, and that no identity or
entered value is anywhere in them."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update

from portal.execution import collection, dispatch
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ConnectionConfig,
    Notification,
    NotificationPreference,
    PrivacyRequest,
    Task,
    User,
    utcnow,
)
from portal.models.audit import Actor
from portal.notifications import delivery, digest, outbox, preferences
from portal.services import manual_inputs, privacy_requests, users
from tests.factories import make_user
from tests.hardening_helpers import sign_in, text_of
from tests.mail_helpers import SMTPServer, mail_config
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

SUBJECT_EMAIL = "zq.subject-4471@example.org"
SUBJECT_PHONE = "+4915112345678"
EXTERNAL_ID = "TICKET-SECRET-8812"
ENTERED = "Zyxwvut Entered-Value 5521"
ADMIN = Actor.system("test-admin")
# Anything of the data subject that must never reach a mail.
PERSONAL = (SUBJECT_EMAIL, SUBJECT_PHONE, EXTERNAL_ID, ENTERED, "Zyxwvut", "zq.subject", "TICKET-SECRET")


@pytest.fixture
def smtp():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, smtp):
    return {**app_config, **mail_config(smtp.port)}


def assert_no_personal_data(received) -> None:
    raw = received.raw.decode("utf-8", "replace")
    for text in (raw, received.text, received.html):
        for value in PERSONAL:
            assert value.lower() not in text.lower(), f"{value!r} found in a mail"


def waiting_request() -> str:
    """A request with a distinctive identity, external id and entered value, waiting to be resumed."""
    add_webhook("crm", [field("Notes")], name="CRM")
    request_id = new_request(
        email=SUBJECT_EMAIL, identity={"phone_number": SUBJECT_PHONE}, external_id=EXTERNAL_ID
    )
    manual_inputs.save_manual_input(request_id, "crm", {"notes": ENTERED}, STAFF)
    db.session.commit()
    return request_id


def complete(request_id: str) -> None:
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    assert db.session.get(PrivacyRequest, request_id).status == "complete"


def fail(request_id: str, monkeypatch) -> None:
    def broken(subject):
        raise RuntimeError(f"driver said: no row for {SUBJECT_EMAIL}")

    monkeypatch.setattr(collection, "collect", broken)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    monkeypatch.undo()
    assert db.session.get(PrivacyRequest, request_id).status == "error"


def rows(**where) -> list[Notification]:
    db.session.expire_all()
    return db.session.scalars(select(Notification).filter_by(**where).order_by(Notification.id)).all()


# --- package ready, request in error: who gets what -------------------------------------------------------


def test_a_completed_request_mails_each_reviewer_once_without_personal_data(app, client, smtp):
    reviewers = [make_user("reviewer"), make_user("reviewer")]
    staff, admin = make_user("staff"), make_user("admin")
    request_id = waiting_request()

    complete(request_id)
    assert smtp.received == []  # logged in the transaction, sent by a sender: nothing yet
    report = delivery.run()

    assert report.sent == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(u.email for u in reviewers)
    assert smtp.to(staff.email) == [] and smtp.to(admin.email) == []  # admins opt in; staff never
    for received in smtp.received:
        assert received.subject == f"Package ready for review: {request_id[:12]}…"
        assert received.mail_from == "portal@portal.test"
        assert f"The access package of request {request_id} is ready for review." in received.text
        assert f"/packages/{request_id}" in received.html
        assert (
            str(received.message["List-Unsubscribe"])
            .strip()
            .startswith("<http://portal.test/notifications/unsubscribe/")
        )
        assert_no_personal_data(received)
    assert [n.status for n in rows()] == ["sent", "sent"]
    assert delivery.run().sent == 0  # sent once


def test_the_links_in_a_mail_work(app, client, smtp):
    reviewer = make_user("reviewer")
    request_id = waiting_request()
    complete(request_id)
    delivery.run()
    (received,) = smtp.received
    package, settings, unsubscribe = received.links()

    assert urlsplit(package).netloc == "portal.test"
    sign_in(client, reviewer)
    assert client.get(urlsplit(package).path).status_code == 200
    page = client.get(urlsplit(settings).path)
    assert page.status_code == 200 and "Notification settings" in text_of(page)
    client.post("/auth/logout")

    confirm = client.get(urlsplit(unsubscribe).path)  # signed out: the link works without signing in
    assert confirm.status_code == 200
    assert "A package is ready for review" in text_of(confirm)
    assert db.session.scalar(select(func.count()).select_from(NotificationPreference)) == 0  # GET: no change
    done = client.post(urlsplit(unsubscribe).path)
    assert done.status_code == 200 and "These emails are now off" in text_of(done)
    assert preferences.modes_for(db.session.get(User, reviewer.id))["package_ready"] == "off"


def test_a_request_in_error_mails_the_admins(app, smtp, monkeypatch):
    admins = [make_user("admin"), make_user("admin")]
    reviewer = make_user("reviewer")
    request_id = waiting_request()

    fail(request_id, monkeypatch)
    delivery.run()

    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(a.email for a in admins)
    assert smtp.to(reviewer.email) == []
    for received in smtp.received:
        assert received.subject == f"Request in error: {request_id[:12]}…"
        assert "(RuntimeError)" in received.text
        assert f"http://portal.test/requests/{request_id}" in received.links()
        assert "driver said" not in received.text  # the exception's type only, never its message
        assert_no_personal_data(received)


# --- sent after the commit, never in the way --------------------------------------------------------------


def test_inline_the_resume_is_answered_first_and_the_mail_goes_after_the_response(app, client, smtp):
    reviewer = make_user("reviewer")
    request_id = waiting_request()
    sign_in(client, make_user("staff"))

    response = client.post(f"/requests/{request_id}/resume")
    assert response.status_code == 302
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    assert smtp.received == []  # the response is written before any mail is sent
    response.close()  # the WSGI server closes the response once it is sent: then the mail goes

    assert [r.rcpt_tos for r in smtp.received] == [[reviewer.email]]
    assert [n.status for n in rows()] == ["sent"]


def test_with_the_server_down_the_work_succeeds_and_the_mail_is_retried_with_backoff(app, client, smtp):
    reviewer = make_user("reviewer")
    request_id = waiting_request()
    sign_in(client, make_user("staff"))
    smtp.stop()  # connection refused from now on

    with client.post(f"/requests/{request_id}/resume") as response:
        assert response.status_code == 302
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    (row,) = rows()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "ConnectionRefusedError")
    first_retry = row.next_attempt_at
    assert first_retry - row.last_error_at == timedelta(seconds=60)

    assert delivery.run(now=first_retry - timedelta(seconds=1)).failed == 0  # not before its time
    assert delivery.run(now=first_retry).failed == 1
    (row,) = rows()
    assert row.attempts == 2 and row.next_attempt_at == first_retry + timedelta(seconds=120)  # doubled

    SMTPServer(smtp.port).start_with(smtp.handler)
    report = delivery.run(now=row.next_attempt_at)
    assert report.sent == 1
    assert [r.rcpt_tos for r in smtp.received] == [[reviewer.email]]  # nothing lost, sent once
    (row,) = rows()
    assert (row.status, row.attempts) == ("sent", 3)


def test_a_permanent_refusal_fails_at_once_and_admins_see_it_without_the_address(app, client, smtp):
    reviewer = make_user("reviewer", email="rev.iewer-7@example.com")
    request_id = waiting_request()
    smtp.handler.refuse_recipients = "550 5.1.1 <rev.iewer-7@example.com>: no such user"
    complete(request_id)

    report = delivery.run()

    assert report.failed == 1 and smtp.received == []
    (row,) = rows()
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "SMTPRecipientsRefused 550")
    sign_in(client, make_user("admin"))
    page = text_of(client.get("/"))
    assert "Email delivery problems" in page
    assert "SMTPRecipientsRefused 550" in page and "A package is ready for review" in page
    assert "gave up" in page
    assert reviewer.email not in page and "rev.iewer" not in page


def test_logging_the_mail_can_never_fail_the_transition(app, smtp, monkeypatch):
    make_user("reviewer")
    request_id = waiting_request()
    fired = []

    def broken(*args, **kwargs):
        fired.append(True)
        db.session.connection().exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(outbox, "enqueue_for_kind", broken)
    complete(request_id)  # asserts the request completed

    assert fired == [True]  # the fault fired inside the completing transaction
    assert rows() == []


def test_an_event_written_as_an_object_logs_its_mail_only_if_its_transaction_commits(app, smtp):
    make_user("reviewer")
    add_webhook("crm", [field("Notes")], name="CRM")
    request_id = new_request()  # waits for input: no mail yet
    from portal.models.audit import record

    record(STAFF, "request.completed", privacy_request_id=request_id)  # the ORM path: flushed at commit
    db.session.rollback()
    assert rows() == []
    db.session.get(PrivacyRequest, request_id).updated_at = utcnow()  # the outer transaction writes too
    savepoint = db.session.begin_nested()  # a savepoint that rolls back forgets its events
    record(STAFF, "request.completed", privacy_request_id=request_id)
    db.session.flush()
    savepoint.rollback()
    db.session.commit()
    assert rows() == []

    record(STAFF, "request.completed", privacy_request_id=request_id)
    db.session.commit()
    assert [(n.kind, n.subject_key) for n in rows()] == [("package_ready", request_id)]


# --- the daily digest -------------------------------------------------------------------------------------

MORNING = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # after DIGEST_HOUR (7 UTC)


def due_in(days: float, email: str = SUBJECT_EMAIL) -> str:
    """A request waiting for input (its tasks open, unassigned), due ``days`` after MORNING."""
    request_id = new_request(email=email, external_id=EXTERNAL_ID)
    due = MORNING + timedelta(days=days)
    db.session.get(PrivacyRequest, request_id).due_date = due
    db.session.execute(update(Task).where(Task.privacy_request_id == request_id).values(due_date=due))
    db.session.commit()
    return request_id


def give(request_id: str, key: str, user: User | None) -> None:
    """Hand the request's task for system ``key`` to ``user`` (None: nobody), as of long ago."""
    connection_id = db.session.scalar(select(ConnectionConfig.id).where(ConnectionConfig.key == key))
    db.session.execute(
        update(Task)
        .where(Task.privacy_request_id == request_id, Task.connection_config_id == connection_id)
        .values(assignee_id=user.id if user else None)
    )
    db.session.commit()


def digests(received: list) -> list:
    """The mails of ``received`` but the unassigned-task reminders."""
    return [r for r in received if not r.subject.strip().startswith("Unassigned task:")]


def test_each_persons_digest_lists_only_their_own_tasks_due_soon_or_overdue(app, smtp):
    add_webhook("crm", [field("Notes")], name="CRM")
    add_webhook("zendesk", [field("Tickets")], name="Zendesk")
    first, second, quiet, idle = (make_user("staff") for _ in range(4))
    reviewer = make_user("reviewer")
    preferences.set_modes(quiet, {"due_soon": "off"}, ADMIN)
    overdue, soon, later = due_in(-2), due_in(3), due_in(30)
    for request_id, key, user in [
        (overdue, "crm", first),
        (overdue, "zendesk", second),
        (soon, "crm", first),
        (soon, "zendesk", quiet),
        (later, "crm", first),
        (later, "zendesk", quiet),
    ]:
        give(request_id, key, user)
    manual_inputs.save_manual_input(soon, "crm", {"notes": ENTERED}, STAFF)  # its task is done
    db.session.commit()

    assert delivery.run(now=MORNING.replace(hour=6)).built == 0  # before DIGEST_HOUR
    report = delivery.run(now=MORNING)

    assert report.built == 2 and report.sent == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted([first.email, second.email])
    assert smtp.to(quiet.email) == [] and smtp.to(idle.email) == [] and smtp.to(reviewer.email) == []
    (mine,) = smtp.to(first.email)
    assert mine.subject == "1 task overdue"
    assert f"- {overdue}, due 2030-03-02, overdue, waiting on CRM" in mine.text
    assert "Zendesk" not in mine.text and soon not in mine.text and later not in mine.text
    assert "http://portal.test/tasks/" in mine.links()
    (theirs,) = smtp.to(second.email)
    assert theirs.subject == "1 task overdue"
    assert f"- {overdue}, due 2030-03-02, overdue, waiting on Zendesk" in theirs.text
    assert "CRM" not in theirs.text and "CRM" not in theirs.html
    for received in smtp.received:
        assert_no_personal_data(received)

    give(soon, "zendesk", second)
    assert delivery.run(now=MORNING + timedelta(hours=5)).built == 0  # once a day
    assert len(smtp.received) == 2
    assert delivery.run(now=MORNING + timedelta(days=1)).sent == 2  # and again the next day
    (again,) = smtp.to(second.email)[1:]
    assert again.subject == "1 task overdue, 1 task due this week"
    assert f"- {soon}, due 2030-03-07, waiting on Zendesk" in again.text


def test_unassigned_tasks_due_soon_go_to_the_systems_owners_else_to_the_admins(app, smtp):
    from portal.services import tasks

    crm = add_webhook("crm", [field("Notes")], name="CRM")
    add_webhook("zendesk", [field("Tickets")], name="Zendesk")
    owner, other, admin = make_user("staff"), make_user("staff"), make_user("admin")
    request_id = due_in(2)  # both tasks unassigned: no owners yet
    tasks.set_owners(crm, [owner.id], ADMIN)
    db.session.commit()

    delivery.run(now=MORNING)

    (owned,) = digests(smtp.to(owner.email))
    assert owned.subject == "1 unassigned task to claim"
    assert f"- {request_id}, due 2030-03-06, unassigned, waiting on CRM" in owned.text
    assert "Zendesk" not in owned.text
    (ownerless,) = digests(smtp.to(admin.email))
    assert ownerless.subject == "1 unassigned task to claim"
    assert f"- {request_id}, due 2030-03-06, unassigned, waiting on Zendesk" in ownerless.text
    assert "CRM" not in ownerless.text
    assert smtp.to(other.email) == []
    for received in smtp.received:
        assert_no_personal_data(received)


# --- tasks nobody has taken ---------------------------------------------------------------------------------


OPENED = datetime(2030, 3, 3, 6, 0, tzinfo=UTC)  # when the tasks of ``unassigned_setup`` opened


def unassigned_setup(app):
    """CRM owned by two staff (one turned these mails off), Zendesk by a deactivated user only, two admins
    (one reads these in the digest), and a request waiting on both with nobody on either task."""
    from portal.services import tasks

    app.config["DIGEST_HOUR"] = 24  # no digest in these runs: the reminders alone
    crm = add_webhook("crm", [field("Notes")], name="CRM")
    zendesk = add_webhook("zendesk", [field("Tickets")], name="Zendesk")
    people = {
        "owner": make_user("staff"),
        "quiet": make_user("staff"),
        "gone": make_user("staff"),
        "other": make_user("staff"),
        "admin": make_user("admin"),
        "reader": make_user("admin"),
        "reviewer": make_user("reviewer"),
    }
    preferences.set_modes(people["quiet"], {"unassigned_task": "off"}, ADMIN)
    preferences.set_modes(people["reader"], {"unassigned_task": "digest"}, ADMIN)
    request_id = new_request(
        email=SUBJECT_EMAIL, identity={"phone_number": SUBJECT_PHONE}, external_id=EXTERNAL_ID
    )
    tasks.set_owners(crm, [people["owner"].id, people["quiet"].id], ADMIN)
    tasks.set_owners(zendesk, [people["gone"].id], ADMIN)
    users.update_user(people["gone"], ADMIN, role="staff", name="", active=False)
    db.session.execute(update(Task).values(updated_at=OPENED))
    db.session.commit()
    return request_id, people


def test_an_unassigned_task_is_brought_to_its_owners_or_the_admins_once_a_day(app, smtp):
    request_id, people = unassigned_setup(app)

    assert delivery.run(now=OPENED + timedelta(hours=23)).reminded == 0  # not a day yet
    later = OPENED + timedelta(days=1, minutes=1)
    report = delivery.run(now=later)

    assert report.reminded == 2 and report.sent == 2
    (owned,) = smtp.to(people["owner"].email)
    assert owned.subject.strip() == f"Unassigned task: CRM — {request_id[:12]}…"
    assert "A task has waited unassigned for over a day: CRM for request" in owned.text
    assert f"http://portal.test/requests/{request_id}" in owned.links()
    (ownerless,) = smtp.to(people["admin"].email)  # Zendesk's only owner is deactivated
    assert ownerless.subject.strip() == f"Unassigned task: Zendesk — {request_id[:12]}…"
    for name in ("quiet", "gone", "other", "reader", "reviewer"):
        assert smtp.to(people[name].email) == [], name
    for received in smtp.received:
        assert_no_personal_data(received)

    assert delivery.run(now=later + timedelta(hours=3)).reminded == 0  # once a day
    assert len(smtp.received) == 2
    give(request_id, "crm", db.session.get(User, people["other"].id))
    assert delivery.run(now=later + timedelta(days=1)).sent == 1  # the next day, for what still waits
    assert [r.rcpt_tos for r in smtp.received[2:]] == [[people["admin"].email]]
    zendesk_task = db.session.scalar(
        select(Task.id).join(ConnectionConfig).where(ConnectionConfig.key == "zendesk")
    )
    assert [(n.subject_key, n.period) for n in rows(kind="unassigned_task", user_id=people["admin"].id)] == [
        (f"task-{zendesk_task}", "2030-03-04"),
        (f"task-{zendesk_task}", "2030-03-05"),
    ]


def test_a_reminder_for_a_task_claimed_before_it_went_out_is_not_sent(app, smtp):
    from portal.notifications import reminders
    from portal.services import tasks

    _, people = unassigned_setup(app)
    later = OPENED + timedelta(days=1, minutes=1)
    assert reminders.enqueue_unassigned(later) == 2
    db.session.commit()
    crm_task = db.session.scalar(select(Task.id).join(ConnectionConfig).where(ConnectionConfig.key == "crm"))
    tasks.claim(crm_task, Actor.for_user(db.session.get(User, people["owner"].id)))
    db.session.commit()

    report = delivery.deliver_due(later)

    assert (report.sent, report.skipped) == (1, 1)
    assert [r.rcpt_tos for r in smtp.received] == [[people["admin"].email]]  # Zendesk still waits
    statuses = {n.subject_key: n.status for n in rows(kind="unassigned_task")}
    assert statuses.pop(f"task-{crm_task}") == "skipped" and list(statuses.values()) == ["sent"]


def test_two_senders_at_once_send_one_reminder_per_person_and_task(app, smtp):
    _, people = unassigned_setup(app)
    later = OPENED + timedelta(days=1, minutes=1)
    start = threading.Barrier(2)
    reports = []

    def sender():
        with app.app_context():
            start.wait()
            reports.append(delivery.run(now=later))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(reports) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(
        [people["owner"].email, people["admin"].email]
    )
    assert sum(r.sent for r in reports) == 2
    assert len(rows(kind="unassigned_task")) == 2


def test_digest_readers_find_the_unassigned_tasks_in_their_digest(app, smtp):
    request_id, people = unassigned_setup(app)
    app.config["DIGEST_HOUR"] = 0

    delivery.run(now=OPENED + timedelta(days=1, minutes=1))

    (mail,) = smtp.to(people["reader"].email)
    assert mail.subject.endswith("; 1 task waiting unassigned")  # after its due-soon section
    assert "Tasks nobody has taken for over a day (1)" in mail.text
    assert f"- {request_id}, due " in mail.text and "unassigned, waiting on Zendesk" in mail.text
    assert "CRM" not in mail.text  # CRM has an owner: it is theirs to take
    assert "http://portal.test/tasks/?view=unassigned" in mail.links()
    assert_no_personal_data(mail)


def test_the_unassigned_task_reminder_is_offered_on_the_settings_page(app, client):
    staff = make_user("staff")
    sign_in(client, staff)
    page = text_of(client.get("/notifications/settings"))
    assert "A task has waited unassigned for over a day" in page
    assert preferences.modes_for(db.session.get(User, staff.id))["unassigned_task"] == "immediate"


def test_two_senders_at_once_send_one_digest_per_person(app, smtp):
    add_webhook("crm", [field("Notes")], name="CRM")
    staff = [make_user("staff") for _ in range(3)]
    for user in staff:
        give(due_in(1), "crm", user)
    start = threading.Barrier(2)
    reports = []

    def sender():
        with app.app_context():
            start.wait()
            reports.append(delivery.run(now=MORNING))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(reports) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(u.email for u in staff)
    assert sum(r.sent for r in reports) == 3
    assert len(rows(kind="digest")) == 3


def test_the_log_keeps_one_digest_per_person_and_day_however_often_it_is_built(app, smtp):
    add_webhook("crm", [field("Notes")], name="CRM")
    for _ in range(2):
        give(due_in(1), "crm", make_user("staff"))
    for _ in range(2):  # two builders that both found no digest yet for today
        outbox.enqueue(digest.digest_rows(MORNING))
        db.session.commit()

    assert len(rows(kind="digest")) == 2
    assert delivery.run(now=MORNING).sent == 2


def test_building_the_digest_costs_the_same_queries_for_3_or_30_users(app, smtp):
    from sqlalchemy import event

    from portal.services import tasks

    crm = add_webhook("crm", [field("Notes")], name="CRM")
    for days in (-1, 2, 5):
        due_in(days)
    make_user("admin"), make_user("reviewer")
    staff = []

    def statements_for(users: int) -> int:
        staff.extend(make_user("staff") for _ in range(users))
        tasks.set_owners(crm, [user.id for user in staff], ADMIN)  # all of them see its unassigned tasks
        db.session.commit()
        count = []
        listener = lambda *args: count.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            rows_offered = len(digest.digest_rows(MORNING))
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert rows_offered == db.session.scalar(
            select(func.count()).select_from(User).where(User.role == "staff")
        )
        return len(count)

    assert statements_for(3) == statements_for(27) <= 8


# --- preferences ------------------------------------------------------------------------------------------


def choose(client, user, **choices):
    """Post the settings form as a browser would: every kind of the role, changed where given."""
    sign_in(client, user)
    current = preferences.modes_for(db.session.get(User, user.id))
    return client.post("/notifications/settings", data={**current, **choices})


def test_each_user_chooses_immediately_digest_or_off(app, client, smtp):
    immediate, digested, off = (make_user("reviewer") for _ in range(3))
    admin = make_user("admin")
    assert choose(client, digested, package_ready="digest").status_code == 302
    assert choose(client, off, package_ready="off").status_code == 302
    assert choose(client, admin, package_ready="immediate", request_error="immediate").status_code == 302
    request_id = waiting_request()

    complete(request_id)
    delivery.deliver_due()  # what is due now, without the digest
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted([immediate.email, admin.email])

    smtp.received.clear()
    app.config["DIGEST_HOUR"] = 0  # whatever the hour this test runs at
    delivery.run()
    assert [r.rcpt_tos for r in smtp.received] == [[digested.email]]
    assert smtp.received[0].subject == "1 package ready for review"
    assert f"http://portal.test/packages/{request_id}" in smtp.received[0].links()


def test_the_settings_page_shows_the_kinds_of_the_role_with_their_current_choice(app, client):
    reviewer = make_user("reviewer")
    sign_in(client, reviewer)
    page = text_of(client.get("/notifications/settings"))
    assert "A package is ready for review" in page and "A request fell into error" not in page
    assert re.search(r'<input checked[^>]*value="immediate"', page)

    response = client.post("/notifications/settings", data={"package_ready": "digest"}, follow_redirects=True)
    assert "Notification settings saved." in text_of(response)
    assert re.search(r'<input checked[^>]*value="digest"', text_of(response))
    assert client.post("/notifications/settings", data={"package_ready": "sometimes"}).status_code == 200
    assert preferences.modes_for(db.session.get(User, reviewer.id)) == {"package_ready": "digest"}


def test_a_role_cannot_choose_a_kind_it_does_not_receive(app):
    reviewer = make_user("reviewer")
    with pytest.raises(preferences.ValidationFailed, match="cannot be set"):
        preferences.set_modes(reviewer, {"request_error": "immediate"}, ADMIN)
    with pytest.raises(preferences.ValidationFailed, match="cannot be set"):
        preferences.set_modes(reviewer, {"package_ready": "weekly"}, ADMIN)


def test_the_last_admin_receiving_error_mails_cannot_turn_them_off(app, client):
    first, second = make_user("admin"), make_user("admin")
    assert choose(client, first, request_error="digest").status_code == 302
    assert choose(client, second, request_error="off").status_code == 302  # the first still gets them

    response = choose(client, first, request_error="off")

    assert response.status_code == 400
    assert preferences.LAST_ERROR_RECIPIENT in text_of(response)
    db.session.expire_all()
    assert preferences.modes_for(db.session.get(User, first.id))["request_error"] == "digest"
    actions = [
        e.details
        for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "notification.preferences_changed")
        )
    ]
    assert {"target_user": second.email, "request_error": "off"} in actions


def test_error_mails_reach_every_admin_when_nobody_else_would(app, smtp, monkeypatch):
    first, second = make_user("admin"), make_user("admin")
    preferences.set_modes(first, {"request_error": "off"}, ADMIN)
    db.session.commit()
    users.update_user(second, ADMIN, role="admin", name="", active=False)  # the one who received them
    db.session.commit()
    request_id = waiting_request()

    fail(request_id, monkeypatch)
    delivery.run()

    assert [r.rcpt_tos for r in smtp.received] == [[first.email]]


def test_a_deactivated_user_gets_nothing(app, smtp):
    gone, stays, leaves = make_user("reviewer"), make_user("reviewer"), make_user("reviewer")
    admin = make_user("admin")
    users.update_user(gone, ADMIN, role="reviewer", name="", active=False)
    db.session.commit()
    request_id = waiting_request()
    complete(request_id)
    assert sorted(n.user_id for n in rows()) == sorted([stays.id, leaves.id])  # none logged for them
    users.update_user(db.session.get(User, leaves.id), ADMIN, role="reviewer", name="", active=False)
    db.session.commit()  # deactivated after the mail was logged, before it was sent

    report = delivery.run()

    assert [r.rcpt_tos for r in smtp.received] == [[stays.email]]
    assert report.skipped == 1
    assert {n.user_id: n.status for n in rows()} == {stays.id: "sent", leaves.id: "skipped"}
    assert smtp.to(admin.email) == []


def test_a_choice_made_after_the_mail_was_logged_is_respected(app, smtp):
    reviewer = make_user("reviewer")
    complete(waiting_request())
    preferences.set_modes(reviewer, {"package_ready": "off"}, ADMIN)
    db.session.commit()

    assert delivery.run().skipped == 1
    assert smtp.received == []


def test_an_unsubscribe_link_cannot_be_forged_and_needs_its_form(app, client):
    from portal.notifications import mail

    reviewer = make_user("reviewer")
    token = mail.unsubscribe_token(reviewer.id, ["package_ready"])
    forged = mail.unsubscribe_token(reviewer.id + 1, ["package_ready"])[:-3] + "abc"

    for bad in (forged, token[:-1], "not-a-token"):
        response = client.get(f"/notifications/unsubscribe/{bad}")
        assert response.status_code == 404
        assert "This unsubscribe link is not valid" in text_of(response)
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post(f"/notifications/unsubscribe/{token}").status_code == 400  # no CSRF token
    assert preferences.modes_for(db.session.get(User, reviewer.id))["package_ready"] == "immediate"
    page = text_of(client.get(f"/notifications/unsubscribe/{token}"))
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    done = client.post(f"/notifications/unsubscribe/{token}", data={"csrf_token": csrf})
    assert done.status_code == 200 and "These emails are now off" in text_of(done)
    assert preferences.modes_for(db.session.get(User, reviewer.id))["package_ready"] == "off"


def test_an_unsubscribe_link_keeps_error_mails_of_the_last_admin(app, client):
    from portal.notifications import mail

    admin = make_user("admin")
    token = mail.unsubscribe_token(admin.id, ["request_error"])
    done = client.post(f"/notifications/unsubscribe/{token}")
    assert done.status_code == 200
    assert "Kept on: A request fell into error." in text_of(done)
    assert preferences.modes_for(db.session.get(User, admin.id))["request_error"] == "immediate"


def test_a_claimed_row_is_not_taken_again_unless_its_sender_died(app, smtp):
    make_user("reviewer")
    complete(waiting_request())
    now = utcnow() + timedelta(seconds=1)

    first, ids = outbox.claim_due(now, 10)
    assert len(ids) == 1
    assert outbox.claim_due(now, 10)[1] == []  # another sender finds nothing to take
    later = now + outbox.CLAIM_TIMEOUT + timedelta(seconds=1)
    second, taken = outbox.claim_due(later, 10)  # the first sender is presumed dead
    assert taken == ids

    assert outbox.mark_sent(ids[0], first, later) is False  # the first sender's outcome no longer counts
    assert outbox.mark_sent(ids[0], second, later) is True
    db.session.commit()
    assert [(n.status, n.attempts) for n in rows()] == [("sent", 1)]


def test_a_server_that_cannot_be_reached_is_tried_once_per_run_not_once_per_batch(app, smtp, monkeypatch):
    make_user("reviewer")
    for _ in range(3):
        complete(waiting_request_for_another())
    monkeypatch.setattr(delivery, "BATCH", 2)
    smtp.stop()
    connects = []
    original = delivery.mail.get_connection

    def counting(*args, **kwargs):
        connects.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(delivery.mail, "get_connection", counting)
    report = delivery.run()

    assert report.unreachable and len(connects) == 1
    assert sorted(n.attempts for n in rows()) == [0, 1, 1]  # the third waits for the next run, untried


_webhooks = iter(range(10_000))


def waiting_request_for_another() -> str:
    """Another request waiting for input (``waiting_request`` defines the webhook once)."""
    if not db.session.scalar(select(func.count()).select_from(ConnectionConfig)):
        return waiting_request()
    request_id = new_request(email=f"other{next(_webhooks)}@example.org")
    manual_inputs.save_manual_input(request_id, "crm", {"notes": "x"}, STAFF)
    db.session.commit()
    return request_id


def test_a_mail_for_named_users_goes_to_those_who_take_it_immediately(app, smtp):
    from portal.notifications.kinds import PACKAGE_READY, TASK_ASSIGNED

    chosen, quiet, reviewer, other = (
        make_user("staff"),
        make_user("staff"),
        make_user("reviewer"),
        make_user("staff"),
    )
    db.session.add(NotificationPreference(user_id=quiet.id, kind="task_assigned", mode="off"))
    db.session.commit()
    request_id = waiting_request()

    logged = outbox.enqueue_for_users(
        TASK_ASSIGNED,
        [chosen.id, quiet.id, reviewer.id],
        request_id,
        "once",
        {"request_id": request_id, "system": "CRM"},
    )
    db.session.commit()
    delivery.deliver_due()

    assert logged == 1
    assert [r.rcpt_tos for r in smtp.received] == [[chosen.email]]
    assert smtp.received[0].subject == f"Task assigned: CRM — {request_id[:12]}…"
    assert "A task was assigned to you: CRM for request" in smtp.received[0].text
    assert smtp.to(other.email) == []
    # The same mail logged again (same subject and period) is left out, for these users and for a kind.
    again = {"request_id": request_id, "system": "CRM"}
    assert outbox.enqueue_for_users(TASK_ASSIGNED, [chosen.id], request_id, "once", again) == 0
    make_user("reviewer")
    assert outbox.enqueue_for_kind(PACKAGE_READY, request_id, "once", {"request_id": request_id}) == 2
    assert outbox.enqueue_for_kind(PACKAGE_READY, request_id, "once", {"request_id": request_id}) == 0
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 3


def test_a_task_opened_for_an_owner_or_handed_to_someone_mails_them_once(app, smtp):
    """The owner a waiting request's task goes to is mailed, and so is whoever it is handed to; a task one
    claims oneself, or one that stays unassigned, mails nobody. No personal data in any of them."""
    from portal.services import tasks

    owner, colleague, admin = make_user("staff"), make_user("staff"), make_user("admin")
    crm = add_webhook("crm", [field("Notes")], name="CRM")
    tasks.set_owners(crm, [owner.id], ADMIN)
    db.session.commit()
    request_id = new_request(
        email=SUBJECT_EMAIL, identity={"phone_number": SUBJECT_PHONE}, external_id=EXTERNAL_ID
    )
    delivery.deliver_due()
    (mail,) = smtp.to(owner.email)
    assert mail.subject == f"Task assigned: CRM — {request_id[:12]}…"
    assert "A task was assigned to you: CRM for request" in mail.text
    assert_no_personal_data(mail)

    (task,) = tasks.list_tasks(view="all").items
    tasks.assign(task.id, colleague.id, Actor.for_user(admin))
    db.session.commit()
    delivery.deliver_due()
    assert [m.subject for m in smtp.to(colleague.email)] == [f"Task assigned: CRM — {request_id[:12]}…"]
    tasks.release(task.id, Actor.for_user(admin))
    tasks.claim(task.id, Actor.for_user(owner))
    db.session.commit()
    delivery.deliver_due()
    assert len(smtp.to(owner.email)) == 1  # claiming one's own task mails nobody
    assert len(rows(kind="task_assigned")) == 2
