"""Notifications (S10) against a real SMTP server: aiosmtpd on a free localhost port receives what the
portal sends, and the tests read the raw messages — who, subject, both parts, links, and that no identity or
entered value is anywhere in them."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal.execution import collection, dispatch
from portal.extensions import db
from portal.models import Notification, NotificationPreference, PrivacyRequest, User
from portal.notifications import delivery, digest, outbox, preferences
from portal.notifications.backends import CONSOLE_BANNER
from portal.services import manual_inputs, privacy_requests, users
from portal.services.audit import Actor
from tests.factories import make_user
from tests.hardening_helpers import sign_in, text_of
from tests.mail_helpers import SMTPServer, free_port, mail_config
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

SUBJECT_EMAIL = "zq.subject-4471@example.org"
SUBJECT_PHONE = "+4915112345678"
EXTERNAL_ID = "TICKET-SECRET-8812"
ENTERED = "Zyxwvut Entered-Value 5521"
ADMIN = Actor.system("test-admin")
# Anything of the data subject that must never reach a mail.
PERSONAL = (SUBJECT_EMAIL, SUBJECT_PHONE, EXTERNAL_ID, ENTERED, "Zyxwvut", "zq.subject", "4471", "8812")


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
        assert str(received.message["List-Unsubscribe"]).strip().startswith("<http://portal.test/notifications/unsubscribe/")
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
