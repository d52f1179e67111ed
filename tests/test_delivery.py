"""Review and delivery: a reviewer approves or sends back a package; the data subject opens it by a link
and a code mailed to them (real SMTP server), downloads it; expiry, revocation, brute force, faults."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.execution import dispatch
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ConnectionConfig,
    ManualInput,
    Notification,
    PackageDelivery,
    PrivacyRequest,
    StorageConfig,
    utcnow,
)
from portal.services import manual_inputs, policies, privacy_requests
from tests.factories import make_user
from tests.hardening_helpers import sign_in, text_of
from tests.mail_helpers import SMTPServer, mail_config
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

SUBJECT_EMAIL = "jane.delivery@example.com"
ENTERED = "Distinctive-Entered-Value"
NEUTRAL = "This link cannot be used"


@pytest.fixture
def smtp():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, smtp):
    return {**app_config, **mail_config(smtp.port)}


def completed(email: str | None = SUBJECT_EMAIL, phone: str | None = None) -> str:
    """A complete request with two manual systems: CRM (notes, age) and Shop (newsletter)."""
    if db.session.scalar(select(ConnectionConfig.id).where(ConnectionConfig.key == "shop")) is None:
        fields = [field("Customer notes", "notes"), field("Age", type="number")]
        add_webhook("crm_muller", fields, name="CRM Müller")
        add_webhook("shop", [field("Newsletter opt-in", "newsletter_opt_in", type="boolean")], name="Shop")
    identity = {"phone_number": phone} if phone else {}
    request_id = new_request(email=email, identity=identity) if email else _request_without_email(identity)
    manual_inputs.save_manual_input(request_id, "crm_muller", {"notes": ENTERED, "age": "42"}, STAFF)
    manual_inputs.save_manual_input(request_id, "shop", {}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    return request_id


def _request_without_email(identity: dict) -> str:
    pr = privacy_requests.create_request(identity=identity, policy_key="default_access_policy", actor=STAFF)
    request_id = pr.id
    dispatch.commit_and_run()
    return request_id


def actions(request_id: str, prefix: str = "") -> list[str]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.privacy_request_id == request_id, AuditEvent.action.like(f"{prefix}%"))
            .order_by(AuditEvent.id)
        )
    )


def delivery_row(request_id: str) -> PackageDelivery:
    db.session.expire_all()
    return db.session.scalar(select(PackageDelivery).where(PackageDelivery.privacy_request_id == request_id))


def approve(client, request_id: str):
    with client.post(f"/packages/{request_id}/approve") as response:
        return response


def subject_link(smtp) -> str:
    (mail,) = [r for r in smtp.to(SUBJECT_EMAIL) if "ready" in r.subject]
    (link,) = [link for link in mail.links() if "/delivery/" in link]
    return "/delivery/" + link.split("/delivery/", 1)[1]


def code_from(smtp) -> str:
    mails = [r for r in smtp.to(SUBJECT_EMAIL) if "code" in r.subject]
    return re.search(r"Your code: (\d{6})", mails[-1].text).group(1)


def ask_code(subject, link: str):
    with subject.post(f"{link}/code") as response:
        assert response.status_code == 200
        return response


@pytest.fixture
def reviewer_client(app, client):
    sign_in(client, make_user("reviewer"))
    return client


# --- review --------------------------------------------------------------------------------------------


def test_the_package_page_shows_names_typed_values_and_nothing_found(app, reviewer_client):
    request_id = completed()
    page = text_of(reviewer_client.get(f"/packages/{request_id}"))
    assert "CRM Müller" in page and "Customer notes" in page and "Newsletter opt-in" in page
    assert ">crm_muller<" not in page
    assert ">newsletter_opt_in<" not in page
    assert "Searched — nothing found" in page and "Ready for review" in page
    zip_bytes = reviewer_client.get(f"/packages/{request_id}/package.zip").data
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
    report = archive.read("report.html").decode()
    assert "CRM Müller" in report and "Newsletter opt-in" in report and ">newsletter_opt_in<" not in report
    assert json.loads(archive.read("package.json"))["crm_muller"] == [{"notes": ENTERED, "age": 42}]


def test_approving_mails_the_subject_a_link_and_keeps_the_request_complete(app, reviewer_client, smtp):
    request_id = completed()
    response = approve(reviewer_client, request_id)
    assert response.status_code == 302
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    row = delivery_row(request_id)
    assert row.state == "delivered" and len(row.token_hash) == 64
    (mail,) = smtp.to(SUBJECT_EMAIL)
    assert ENTERED not in mail.raw.decode() and "42" not in mail.text.split("/delivery/")[0]
    token = subject_link(smtp).rsplit("/", 1)[1]
    assert len(token) >= 43 and row.token_hash != token  # 256 bits, stored only hashed
    assert token not in json.dumps([n.context for n in db.session.scalars(select(Notification))])
    assert db.session.scalar(select(Notification).where(Notification.user_id.is_(None))).recipient is None
    assert actions(request_id, "package.approved") == ["package.approved"]
    assert actions(request_id, "delivery.") == ["delivery.link_sent"]
    assert approve(reviewer_client, request_id).status_code == 302  # a second approval is refused
    assert actions(request_id, "package.approved") == ["package.approved"]


def test_sending_back_reopens_only_the_named_systems(app, reviewer_client, client):
    request_id = completed()
    response = reviewer_client.post(
        f"/packages/{request_id}/send-back", data={"systems": ["crm_muller"], "reason": "Wrong customer"}
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(PrivacyRequest, request_id).status == "requires_input"
    entries = {e.connection_config.key: e for e in db.session.scalars(select(ManualInput))}
    assert entries["crm_muller"].sent_back_at is not None and entries["shop"].sent_back_at is None
    assert actions(request_id, "request.sent_back") == ["request.sent_back"]
    with pytest.raises(Exception, match="crm_muller"):
        privacy_requests.resume_request(request_id, STAFF)
    db.session.rollback()
    sign_in(client, make_user("staff"))
    form = text_of(client.get(f"/requests/{request_id}/manual/crm_muller"))
    assert "sent this system's entry back" in form and "Wrong customer" in form
    assert "Needs re-review: sent back by a reviewer" in text_of(client.get(f"/requests/{request_id}"))
    manual_inputs.save_manual_input(request_id, "crm_muller", {"notes": "Right", "age": "43"}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.status == "complete" and pr.package.data["crm_muller"] == [{"notes": "Right", "age": 43}]
    sign_in(client, make_user("reviewer"))
    assert "Ready for review" in text_of(client.get(f"/packages/{request_id}"))


def test_a_send_back_needs_systems_and_a_reason(app, reviewer_client):
    request_id = completed()
    response = reviewer_client.post(f"/packages/{request_id}/send-back", data={"reason": "x"})
    assert response.status_code == 400
    assert "Choose at least one system" in text_of(response)
    response = reviewer_client.post(f"/packages/{request_id}/send-back", data={"systems": ["shop"]})
    assert response.status_code == 400
    assert db.session.get(PrivacyRequest, request_id).status == "complete"


def test_without_review_delivery_follows_completion(app, smtp):
    app.config["REQUIRE_PACKAGE_REVIEW"] = False
    request_id = completed()
    row = delivery_row(request_id)
    assert row is not None and row.state == "delivered"
    assert actions(request_id, "package.approved") == ["package.approved"]
    assert db.session.scalar(select(Notification).where(Notification.user_id.is_(None))) is not None


# --- the subject -----------------------------------------------------------------------------------------


def test_the_subject_proves_the_address_then_reads_and_downloads(app, reviewer_client, smtp):
    request_id = completed()
    approve(reviewer_client, request_id)
    subject = app.test_client()
    link = subject_link(smtp)
    first = subject.get(link)
    assert first.status_code == 200 and ENTERED not in text_of(first)
    assert first.headers["Cache-Control"] == "no-store" and "noindex" in first.headers["X-Robots-Tag"]
    assert '<meta name="robots" content="noindex, nofollow">' in first.get_data(as_text=True)
    assert subject.get(f"{link}/package.zip").status_code == 302  # nothing before the code
    ask_code(subject, link)
    code = code_from(smtp)
    assert (
        subject.post(f"{link}/verify", data={"code": "000000" if code != "000000" else "111111"}).status_code
        == 400
    )
    assert subject.post(f"{link}/verify", data={"code": code}).status_code == 302
    page = text_of(subject.get(link))
    assert "CRM Müller" in page and ENTERED in page and "Customer notes" in page
    assert "Searched — nothing found" in page and ">newsletter_opt_in<" not in page
    archive = zipfile.ZipFile(io.BytesIO(subject.get(f"{link}/package.zip").data))
    assert json.loads(archive.read("package.json"))["crm_muller"] == [{"notes": ENTERED, "age": 42}]
    assert json.loads(subject.get(f"{link}/package.json").data)["shop"] == [{"newsletter_opt_in": None}]
    assert actions(request_id, "delivery.") == [
        "delivery.link_sent",
        "delivery.code_sent",
        "delivery.code_refused",
        "delivery.code_verified",
        "delivery.viewed",
        "delivery.downloaded",
        "delivery.downloaded",
    ]
    assert subject.post(f"{link}/verify", data={"code": code}).status_code == 400  # used once


def test_too_many_wrong_codes_lock_the_link(app, reviewer_client, smtp):
    request_id = completed()
    approve(reviewer_client, request_id)
    subject = app.test_client()
    link = subject_link(smtp)
    ask_code(subject, link)
    code = code_from(smtp)
    wrong = "123456" if code != "123456" else "654321"
    for left in (4, 3, 2, 1):
        response = subject.post(f"{link}/verify", data={"code": wrong})
        assert response.status_code == 400 and f"{left} more tr" in text_of(response)
    locked = subject.post(f"{link}/verify", data={"code": wrong})
    assert locked.status_code == 404 and NEUTRAL in text_of(locked)
    assert subject.post(f"{link}/verify", data={"code": code}).status_code == 404
    assert delivery_row(request_id).locked_at is not None
    assert "delivery.locked" in actions(request_id, "delivery.")


def _neutral(response) -> str:
    assert response.status_code == 404
    return re.sub(r"\s+", " ", text_of(response))


def test_expired_revoked_and_unknown_links_get_one_neutral_page(app, reviewer_client, smtp):
    request_id = completed()
    approve(reviewer_client, request_id)
    link = subject_link(smtp)
    subject = app.test_client()
    unknown = _neutral(subject.get("/delivery/" + "A" * 43))
    assert NEUTRAL in unknown and request_id not in unknown
    db.session.execute(update(PackageDelivery).values(token_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert _neutral(subject.get(link)) == unknown
    db.session.execute(update(PackageDelivery).values(token_expires_at=utcnow() + timedelta(days=1)))
    db.session.commit()
    assert subject.get(link).status_code == 200
    assert reviewer_client.post(f"/packages/{request_id}/delivery/revoke").status_code == 302
    assert _neutral(subject.get(link)) == unknown
    assert _neutral(subject.post(f"{link}/code")) == unknown
    assert "delivery.link_revoked" in actions(request_id, "delivery.")


def test_a_new_link_replaces_the_old_one(app, reviewer_client, smtp):
    request_id = completed()
    approve(reviewer_client, request_id)
    old = subject_link(smtp)
    with reviewer_client.post(f"/packages/{request_id}/delivery/resend") as response:
        assert response.status_code == 302
    links = [
        "/delivery/" + link.split("/delivery/", 1)[1]
        for r in smtp.to(SUBJECT_EMAIL)
        for link in r.links()
        if "/delivery/" in link
    ]
    assert len(links) == 2 and links[1] != old
    subject = app.test_client()
    assert subject.get(old).status_code == 404 and subject.get(links[1]).status_code == 200


def test_the_delivery_pages_are_rate_limited_per_address(app, reviewer_client, smtp):
    app.config["DELIVERY_RATE_LIMIT"] = "3 per minute"
    subject = app.test_client()
    statuses = [subject.get("/delivery/" + "B" * 43).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]


def test_a_request_with_only_a_phone_number_gives_staff_the_link_once(app, reviewer_client, smtp):
    request_id = completed(email=None, phone="+15555550123")
    response = reviewer_client.post(f"/packages/{request_id}/approve")
    assert response.status_code == 200
    page = text_of(response)
    assert "Hand this link to the data subject" in page
    link = "/delivery/" + re.search(r"/delivery/([A-Za-z0-9_-]+)", page).group(1)
    assert "Hand this link" not in text_of(reviewer_client.get(f"/packages/{request_id}"))
    assert smtp.received == []
    opened = app.test_client().get(link)
    assert opened.status_code == 200 and ENTERED in text_of(opened)
    assert actions(request_id, "delivery.") == ["delivery.link_issued", "delivery.viewed"]


# --- faults --------------------------------------------------------------------------------------------


def test_with_the_mail_server_down_the_approval_stands_and_the_mail_waits(app, reviewer_client, smtp):
    request_id = completed()
    smtp.stop()
    assert approve(reviewer_client, request_id).status_code == 302
    assert delivery_row(request_id).state == "delivered"
    row = db.session.scalar(select(Notification).where(Notification.user_id.is_(None)))
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "ConnectionRefusedError")
    assert row.recipient == SUBJECT_EMAIL  # kept, encrypted, until it is sent


def _local_destination(app, tmp_path, directory: str) -> None:
    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path)
    app.config["RELEASE_STORAGE_KEY"] = "released"
    db.session.add(
        StorageConfig(
            key="released", name="Released", type="local", format="json", details={"directory": directory}
        )
    )
    db.session.commit()


def test_a_release_destination_receives_the_package_and_a_failure_is_retryable(
    app, reviewer_client, smtp, tmp_path
):
    request_id = completed()
    _local_destination(app, tmp_path, "out")
    approve(reviewer_client, request_id)
    row = delivery_row(request_id)
    assert row.state == "delivery_failed" and "released" in row.storage_error
    assert smtp.to(SUBJECT_EMAIL)  # the subject's link went out all the same; the package is kept
    page = text_of(reviewer_client.get(f"/packages/{request_id}"))
    assert "Delivery failed" in page and "Retry writing to storage" in page
    (tmp_path / "out").mkdir()
    assert reviewer_client.post(f"/packages/{request_id}/delivery/retry").status_code == 302
    row = delivery_row(request_id)
    assert row.state == "delivered" and row.storage_error is None
    written = json.loads((tmp_path / "out" / f"{request_id}.json").read_text())
    assert written["crm_muller"] == [{"notes": ENTERED, "age": 42}]
    assert actions(request_id, "delivery.") == ["delivery.link_sent", "delivery.failed", "delivery.stored"]


def _completed_under_a_rule_destination(tmp_path) -> str:
    """A request completed under a policy whose access rule writes to the local destination "by_rule"."""
    (tmp_path / "by_rule").mkdir()
    db.session.add(
        StorageConfig(
            key="by_rule", name="By rule", type="local", format="json", details={"directory": "by_rule"}
        )
    )
    db.session.commit()
    policy = policies.upsert_policy(
        name="Shop access", key="shop_access", drp_action=None, execution_timeframe=30, actor=STAFF
    )
    policies.upsert_rule(
        policy,
        name="Access",
        key="access",
        action_type="access",
        storage_destination_key="by_rule",
        masking_strategy=None,
        actor=STAFF,
    )
    db.session.commit()
    add_webhook("crm", [field("Customer notes", "notes")])
    request_id = new_request(email=SUBJECT_EMAIL, policy_key="shop_access")
    manual_inputs.save_manual_input(request_id, "crm", {"notes": ENTERED}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    return request_id


def test_a_policys_access_rule_names_where_its_released_packages_are_written(
    app, reviewer_client, smtp, tmp_path
):
    """The rule's destination wins over the deployment's: each policy can send its packages elsewhere."""
    _local_destination(app, tmp_path, "deployment")
    (tmp_path / "deployment").mkdir()
    request_id = _completed_under_a_rule_destination(tmp_path)
    approve(reviewer_client, request_id)
    row = delivery_row(request_id)
    assert (row.state, row.storage_key) == ("delivered", "by_rule")
    written = json.loads((tmp_path / "by_rule" / f"{request_id}.json").read_text())
    assert written["crm"] == [{"notes": ENTERED}]
    assert not list((tmp_path / "deployment").iterdir())


def test_the_mails_to_the_subject_hold_no_entered_data(app, reviewer_client, smtp):
    request_id = completed()
    approve(reviewer_client, request_id)
    ask_code(app.test_client(), subject_link(smtp))
    for mail in smtp.to(SUBJECT_EMAIL):
        assert ENTERED not in mail.raw.decode("utf-8", "replace")
        assert "CRM" not in mail.text


def test_a_stalled_subject_mail_can_still_be_sent_later(app, reviewer_client, smtp):
    request_id = completed()
    smtp.stop()
    approve(reviewer_client, request_id)
    SMTPServer(smtp.port).start_with(smtp.handler)
    from portal.notifications import delivery as sender

    row = db.session.scalar(select(Notification).where(Notification.user_id.is_(None)))
    assert sender.run(now=row.next_attempt_at).sent == 2  # the reviewer's mail waited too
    assert subject_link(smtp).startswith("/delivery/")
    db.session.expire_all()
    row = db.session.get(Notification, row.id)
    assert row.status == "sent" and row.recipient is None and row.private_context is None


# --- purge and key rotation ----------------------------------------------------------------------------


def test_the_purge_removes_the_link_the_code_the_reason_and_the_waiting_mail(app, reviewer_client, smtp):
    from portal.models.audit import Actor
    from portal.services import retention

    request_id = completed()
    smtp.stop()  # the subject's mail waits in the outbox with their address and link
    approve(reviewer_client, request_id)
    link_row = db.session.scalar(select(Notification).where(Notification.user_id.is_(None)))
    assert link_row.recipient == SUBJECT_EMAIL
    old = utcnow() - timedelta(days=91)
    db.session.execute(update(PrivacyRequest).values(finished_processing_at=old))
    db.session.commit()

    purged = retention.purge_expired(Actor.system("test"))
    db.session.commit()

    assert [p.request_id for p in purged] == [request_id]
    assert delivery_row(request_id) is None
    row = db.session.get(Notification, link_row.id)
    assert (row.recipient, row.private_context, row.status) == (None, None, "skipped")
    (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "request.purged"))
    assert event.details["delivery_deleted"] is True


def test_key_rotation_covers_the_send_back_reason_and_the_subject_mails(app, reviewer_client, smtp):
    import sqlalchemy as sa

    from portal.crypto import Keyring, generate_key
    from portal.services import key_rotation
    from tests.conftest import TEST_KEY

    columns = set(key_rotation.encrypted_columns())
    assert {
        ("package_deliveries", "id", "send_back_reason"),
        ("notifications", "id", "recipient"),
        ("notifications", "id", "private_context"),
    } <= columns
    request_id = completed()
    reviewer_client.post(
        f"/packages/{request_id}/send-back", data={"systems": ["crm_muller"], "reason": "Wrong person"}
    )
    smtp.stop()
    other = completed(email="second.subject@example.com")
    approve(reviewer_client, other)
    new_key = generate_key()
    ring = Keyring(TEST_KEY).rotated(new_key)

    report = key_rotation.rotate(ring, after_batch=db.session.commit)
    db.session.commit()

    assert report.complete
    for table, column in (
        ("package_deliveries", "send_back_reason"),
        ("notifications", "recipient"),
        ("notifications", "private_context"),
    ):
        t = key_rotation.raw_table(table, "id", column)
        values = [
            bytes(v) for v in db.session.scalars(sa.select(t.c[column]).where(t.c[column].is_not(None)))
        ]
        assert values, f"{table}.{column} holds nothing to rotate"
        assert {Keyring.key_id_of(v) for v in values} == {Keyring(new_key).first_key_id}
        assert all(Keyring(new_key).decrypt(v) for v in values)


def test_request_logs_never_hold_a_subjects_link():
    import datetime
    import logging
    import runpy
    import types
    from pathlib import Path

    from gunicorn.config import Config

    from portal import _without_query_strings

    path = "/delivery/" + "T0ken_-" * 6
    conf = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    logger = conf["logger_class"](Config())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": ""}
    environ.update({"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.1"})
    response = types.SimpleNamespace(status="200 OK", headers=[], sent=0, response_length=0)
    request = types.SimpleNamespace(headers=[], method="GET", uri=path, path=path, query="", version=(1, 1))
    assert logger.atoms(response, request, environ, datetime.timedelta(seconds=1))["U"] == "/delivery/…"

    record = logging.LogRecord(
        "werkzeug", logging.INFO, "", 0, '"%s" %s', (f"GET {path} HTTP/1.1", "200"), None
    )
    _without_query_strings(record)
    assert record.args[0] == "GET /delivery/… HTTP/1.1"


def test_staff_hand_over_a_new_link_for_a_phone_only_request_and_can_revoke_it(app, reviewer_client, smtp):
    request_id = completed(email=None, phone="+15555550123")
    reviewer_client.post(f"/packages/{request_id}/approve")
    staff = app.test_client()
    sign_in(staff, make_user("staff"))
    page = text_of(staff.get(f"/requests/{request_id}"))
    assert "This request has no email address: staff deliver it" in page and "Hand this link" not in page
    issued = staff.post(f"/requests/{request_id}/delivery/link")
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    link = "/delivery/" + re.search(r"/delivery/([A-Za-z0-9_-]+)", text_of(issued)).group(1)
    assert app.test_client().get(link).status_code == 200
    assert "Hand this link" not in text_of(staff.get(f"/requests/{request_id}"))  # shown once
    assert staff.post(f"/requests/{request_id}/delivery/revoke").status_code == 302
    assert app.test_client().get(link).status_code == 404
    assert actions(request_id, "delivery.") == [
        "delivery.link_issued",
        "delivery.link_issued",
        "delivery.viewed",
        "delivery.link_revoked",
    ]


def test_staff_see_the_delivery_state_and_resend_a_mailed_link(app, reviewer_client, smtp):
    request_id = completed()
    staff = app.test_client()
    sign_in(staff, make_user("staff"))
    assert "Waiting for a reviewer to approve the package" in text_of(staff.get(f"/requests/{request_id}"))
    approve(reviewer_client, request_id)
    assert "Delivered" in text_of(staff.get(f"/requests/{request_id}"))
    with staff.post(f"/requests/{request_id}/delivery/link") as response:
        assert response.status_code == 302
    assert len([r for r in smtp.to(SUBJECT_EMAIL) if "ready" in r.subject]) == 2


def test_staff_are_mailed_the_systems_sent_back_without_the_reason(app, reviewer_client, smtp):
    staff = make_user("staff")
    request_id = completed()
    with reviewer_client.post(
        f"/packages/{request_id}/send-back", data={"systems": ["crm_muller"], "reason": "Jane Roe's address"}
    ) as response:
        assert response.status_code == 302
    (mail,) = smtp.to(staff.email)
    assert mail.subject == f"Sent back for re-review: {request_id[:12]}…"
    assert "CRM Müller" in mail.text and f"/requests/{request_id}" in mail.text
    raw = mail.raw.decode("utf-8", "replace")
    assert "Jane Roe" not in raw and SUBJECT_EMAIL not in raw and ENTERED not in raw


def test_the_package_list_shows_each_delivery_state(app, reviewer_client, smtp):
    waiting = completed()
    released = completed(email="second.subject@example.com")
    approve(reviewer_client, released)
    page = reviewer_client.get("/packages/").get_data(as_text=True)
    rows = {
        request_id: re.search(rf"{request_id}</code></a>\s*(.*?)</span>", page, re.S).group(1)
        for request_id in (waiting, released)
    }
    assert "Ready for review" in rows[waiting] and "Delivered" in rows[released]


def test_without_review_a_release_destination_waits_for_its_retry(app, reviewer_client, smtp, tmp_path):
    (tmp_path / "out").mkdir()
    _local_destination(app, tmp_path, "out")
    app.config["REQUIRE_PACKAGE_REVIEW"] = False
    request_id = completed()
    assert delivery_row(request_id).state == "approved"  # released; the copy is not written yet
    page = text_of(reviewer_client.get(f"/packages/{request_id}"))
    assert "not yet written to the release storage destination" in page and "Retry writing to storage" in page
    reviewer_client.post(f"/packages/{request_id}/delivery/retry")
    assert delivery_row(request_id).state == "delivered"
    assert (tmp_path / "out" / f"{request_id}.json").exists()


def test_without_review_the_sweep_writes_the_release_copy_after_its_grace_period(app, smtp, tmp_path):
    (tmp_path / "out").mkdir()
    _local_destination(app, tmp_path, "out")
    app.config["REQUIRE_PACKAGE_REVIEW"] = False
    request_id = completed()
    runner = app.test_cli_runner()
    assert "release storage" not in runner.invoke(args=["sweep"]).output  # within the grace period: left
    assert delivery_row(request_id).state == "approved"
    row = delivery_row(request_id)
    row.updated_at = utcnow() - timedelta(seconds=app.config["SWEEP_GRACE_SECONDS"] + 1)
    db.session.commit()
    result = runner.invoke(args=["sweep"])
    assert "Wrote 1 released package to the release storage destination." in result.output
    assert delivery_row(request_id).state == "delivered"
    written = json.loads((tmp_path / "out" / f"{request_id}.json").read_text())
    assert written["crm_muller"] == [{"notes": ENTERED, "age": 42}]
    assert actions(request_id, "delivery.")[-1] == "delivery.stored"
    assert "release storage" not in runner.invoke(args=["sweep"]).output  # written once


def test_two_reviewers_opening_a_first_review_at_once_get_one_approval_and_a_message(app, monkeypatch):
    """The second reviewer read "no delivery row yet" before the first one's row was committed: its insert
    breaks the unique key, it reads that row and is told the package was released (no 500)."""
    from portal.models.audit import Actor
    from portal.services import delivery

    request_id = completed()
    other = PackageDelivery(privacy_request_id=request_id, state="delivered", reviewed_by_label="first")
    with db.engine.begin() as connection:  # the first reviewer's committed approval
        connection.execute(
            PackageDelivery.__table__.insert().values(
                privacy_request_id=request_id,
                state=other.state,
                reviewed_by_label=other.reviewed_by_label,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    reads = []
    real = delivery.delivery_for

    def read_before_the_commit(rid):
        reads.append(rid)
        return None if len(reads) == 1 else real(rid)

    monkeypatch.setattr(delivery, "delivery_for", read_before_the_commit)
    with pytest.raises(delivery.InvalidState, match="was released already"):
        delivery.approve(request_id, Actor.system("second reviewer"))
    assert len(reads) == 2  # the stale read, then the row found after the refused insert
    db.session.rollback()
    assert delivery_row(request_id).reviewed_by_label == "first"


# --- the API ------------------------------------------------------------------------------------------


def api_as(client, role: str):
    from portal.models.audit import Actor
    from portal.services import tokens

    _, secret = tokens.create_token(make_user(role), "test", Actor.system("test"))
    db.session.commit()

    def call(method: str, path: str, body=None):
        kwargs = {"json": body} if body is not None else {}
        headers = {"Authorization": f"Bearer {secret}"}
        with client.open("/api/v1" + path, method=method, headers=headers, **kwargs) as response:
            return response  # closed: what runs after the response (the mail) has run

    return call


def test_the_api_approves_sends_back_reissues_and_revokes_as_the_pages_do(app, client, smtp):
    request_id = completed()
    reviewer, staff = api_as(client, "reviewer"), api_as(client, "staff")
    assert (
        reviewer("GET", f"/privacy-request/{request_id}/delivery").get_json()["state"] == "ready_for_review"
    )
    assert staff("POST", f"/privacy-request/{request_id}/package/approve").status_code == 403

    response = reviewer("POST", f"/privacy-request/{request_id}/package/approve/")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["state"], body["emailed"], body["handover_link"], body["link"]) == (
        "delivered",
        True,
        None,
        "active",
    )
    assert subject_link(smtp)  # the subject's mail arrived
    again = reviewer("POST", f"/privacy-request/{request_id}/package/approve")
    assert again.status_code == 400
    assert again.get_json() == {
        "detail": f"The package of privacy request '{request_id}' was released already."
    }

    revoked = staff("POST", f"/privacy-request/{request_id}/delivery/revoke")
    assert revoked.status_code == 200 and revoked.get_json()["link"] == "revoked"
    assert staff("POST", f"/privacy-request/{request_id}/delivery/revoke").status_code == 400
    reissued = staff("POST", f"/privacy-request/{request_id}/delivery/resend")
    assert reissued.status_code == 200 and reissued.get_json()["link"] == "active"
    assert actions(request_id, "delivery.link_") == [
        "delivery.link_sent",
        "delivery.link_revoked",
        "delivery.link_sent",
    ]


def test_the_api_sends_back_only_the_named_systems_and_refuses_a_bad_body(app, client, smtp):
    request_id = completed()
    reviewer = api_as(client, "reviewer")
    path = f"/privacy-request/{request_id}/package/send_back"
    assert reviewer("POST", path, {"systems": ["crm_muller"]}).status_code == 422  # no reason
    assert reviewer("POST", path, {"systems": [], "reason": "x"}).status_code == 422
    response = reviewer("POST", path, {"systems": ["crm_muller"], "reason": "Wrong customer"})
    assert response.status_code == 200
    assert response.get_json()["reopened"] == ["crm_muller"]
    db.session.expire_all()
    assert db.session.get(PrivacyRequest, request_id).status == "requires_input"


def test_the_api_hands_a_phone_only_requests_link_to_staff_once(app, client, smtp):
    request_id = completed(email=None, phone="+15555550123")
    body = api_as(client, "reviewer")("POST", f"/privacy-request/{request_id}/package/approve").get_json()
    assert body["emailed"] is False and "/delivery/" in body["handover_link"]
    token = body["handover_link"].rsplit("/", 1)[1]
    # Once: the link is not stored, so no later answer (nor the row) holds it.
    later = api_as(client, "staff")("GET", f"/privacy-request/{request_id}/delivery")
    assert later.status_code == 200 and token not in later.get_data(as_text=True)
    assert later.get_json()["link"] == "active" and "handover_link" not in later.get_json()
    assert delivery_row(request_id).token_hash == hashlib.sha256(token.encode()).hexdigest()


def test_without_review_the_sweep_writes_to_a_policys_rule_destination_with_no_deployment_key(
    app, smtp, tmp_path
):
    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path)
    app.config["REQUIRE_PACKAGE_REVIEW"] = False
    request_id = _completed_under_a_rule_destination(tmp_path)
    assert app.config.get("RELEASE_STORAGE_KEY") is None
    row = delivery_row(request_id)
    assert row.state == "approved"
    row.updated_at = utcnow() - timedelta(seconds=app.config["SWEEP_GRACE_SECONDS"] + 1)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert "Wrote 1 released package to the release storage destination." in result.output
    assert (delivery_row(request_id).state, delivery_row(request_id).storage_key) == ("delivered", "by_rule")
    assert json.loads((tmp_path / "by_rule" / f"{request_id}.json").read_text())["crm"] == [
        {"notes": ENTERED}
    ]
