"""The manual gate, uploads, resume, packages and retries through the service layer and the runner."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from portal.crypto import Keyring
from portal.execution import dispatch, runner
from portal.extensions import db
from portal.models import AccessPackage, AuditEvent, ManualInput, PrivacyRequest
from portal.models.audit import Actor
from portal.services import (
    InvalidState,
    NotFound,
    ValidationFailed,
    identities,
    manual_inputs,
    privacy_requests,
    request_lists,
)
from tests.conftest import TEST_KEY
from tests.workflow_helpers import STAFF, add_webhook, field, new_request, set_fields

ADMIN = Actor("user", "admin@example.com")


def status_of(request_id: str) -> str:
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id).status


def save(request_id, key, values, actor=STAFF):
    manual_inputs.save_manual_input(request_id, key, values, actor)
    db.session.commit()


def resume(request_id, actor=STAFF):
    privacy_requests.resume_request(request_id, actor)
    dispatch.commit_and_run()


def actions(request_id):
    return list(
        db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.privacy_request_id == request_id)
            .order_by(AuditEvent.id)
        )
    )


# --- the gate --------------------------------------------------------------------------------------


def test_no_webhooks_completes_at_once_with_empty_package(app):
    request_id = new_request()
    assert status_of(request_id) == "complete"
    package = db.session.get(PrivacyRequest, request_id).package
    assert package.data == {}
    assert actions(request_id) == ["request.created", "request.run_started", "request.completed"]


def test_disabled_and_fieldless_webhooks_are_ignored(app):
    add_webhook("off_system", [field("Name")], disabled=True)
    add_webhook("empty_system", [])
    request_id = new_request()
    assert status_of(request_id) == "complete"


def test_missing_input_pauses_in_requires_input(app):
    add_webhook("crm", [field("First Name"), field("Last Name")])
    request_id = new_request()
    assert status_of(request_id) == "requires_input"
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "request.requires_input")
    ).one()
    assert event.details == {"missing": ["crm"]}


def test_approval_required_waits_in_pending_then_runs_on_approve(app):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request()
    assert status_of(request_id) == "pending"
    privacy_requests.approve_request(request_id, ADMIN)
    dispatch.commit_and_run()
    assert status_of(request_id) == "complete"


def test_denied_request_never_runs_and_keeps_reason(app):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request()
    privacy_requests.deny_request(request_id, "Identity could not be verified", ADMIN)
    dispatch.commit_and_run()
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.status == "denied" and pr.denial_reason == "Identity could not be verified"
    with pytest.raises(InvalidState, match="Cannot approve privacy request .* status = denied"):
        privacy_requests.approve_request(request_id, ADMIN)


def test_due_date_follows_policy_days(app):
    request_id = new_request()
    pr = db.session.get(PrivacyRequest, request_id)
    assert (pr.due_date - pr.created_at).days == 30


# --- uploads ---------------------------------------------------------------------------------------


def test_save_replaces_the_entry_and_stores_every_label(app):
    add_webhook("crm", [field("First Name"), field("Last Name"), field("Phone Number")])
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane", "last_name": "Customer"})
    save(request_id, "crm", {"first_name": "Janet"})
    entries = db.session.scalars(sa.select(ManualInput)).all()
    assert len(entries) == 1
    assert entries[0].values == {"first_name": "Janet", "last_name": None, "phone_number": None}
    assert entries[0].version == 1 and entries[0].entered_by_label == "staff@example.com"


def test_empty_upload_means_nothing_found_and_counts_as_done(app):
    add_webhook("crm", [field("First Name", required=True)])
    request_id = new_request()
    save(request_id, "crm", {})
    view = manual_inputs.view_manual_input(request_id, "crm")
    assert view.checked is True and view.fields == {"first_name": None}
    resume(request_id)
    assert db.session.get(PrivacyRequest, request_id).package.data == {"crm": [{"first_name": None}]}


def test_unknown_labels_are_named_and_nothing_is_stored(app):
    add_webhook("crm", [field("First Name")])
    request_id = new_request()
    with pytest.raises(ValidationFailed, match="Unknown labels: 'nickname'"):
        manual_inputs.save_manual_input(request_id, "crm", {"first_name": "J", "nickname": "x"}, STAFF)
    db.session.rollback()
    assert db.session.scalars(sa.select(ManualInput)).all() == []


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "not-an-email", "must be an email address"),
        ("number", "twelve", "must be a number"),
        ("number", "nan", "must be a finite number"),
        ("date", "31/12/2020", "must be a date as YYYY-MM-DD"),
        ("boolean", "maybe", "must be true or false"),
    ],
)
def test_typed_fields_are_validated(app, kind, value, message):
    add_webhook("crm", [field("Value", type=kind)])
    request_id = new_request()
    with pytest.raises(ValidationFailed, match=f"value: {message}"):
        manual_inputs.save_manual_input(request_id, "crm", {"value": value}, STAFF)


def test_values_must_be_strings_or_null(app):
    add_webhook("crm", [field("Height")])
    request_id = new_request()
    with pytest.raises(ValidationFailed, match="height: must be a string or null"):
        manual_inputs.save_manual_input(request_id, "crm", {"height": 180}, STAFF)


def test_required_field_applies_to_partial_entries(app):
    add_webhook("crm", [field("Name", required=True), field("Note")])
    request_id = new_request()
    with pytest.raises(ValidationFailed, match="name: is required"):
        manual_inputs.save_manual_input(request_id, "crm", {"note": "hi"}, STAFF)


def test_upload_refused_unless_requires_input(app):
    request_id = new_request()  # no webhooks → complete
    add_webhook("crm", [field("Name")])
    with pytest.raises(InvalidState) as error:
        manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    assert str(error.value) == (
        f"Invalid access manual webhook upload request: privacy request '{request_id}' status = complete."
    )


def test_upload_refused_for_disabled_connection(app):
    conn = add_webhook("crm", [field("Name")])
    add_webhook("other", [field("Name")])
    request_id = new_request()
    conn.disabled = True
    db.session.commit()
    with pytest.raises(InvalidState, match="'crm' is disabled"):
        manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)


def test_unknown_request_and_connection_messages(app):
    add_webhook("crm", [field("Name")])
    with pytest.raises(NotFound, match="No privacy request found with id 'pri_nope'."):
        manual_inputs.save_manual_input("pri_nope", "crm", {}, STAFF)
    request_id = new_request()
    with pytest.raises(NotFound, match="No connection config with key 'nope'"):
        manual_inputs.save_manual_input(request_id, "nope", {}, STAFF)


# --- stale entries, resume -------------------------------------------------------------------------


def test_field_edit_makes_entry_stale_until_saved_again(app):
    conn = add_webhook("crm", [field("First Name"), field("Height")])
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane", "height": "170"})
    set_fields(conn, [field("First Name"), field("Eye Colour")])
    view = manual_inputs.view_manual_input(request_id, "crm")
    assert view.checked is False and view.stale
    assert view.fields == {"first_name": "Jane", "eye_colour": None}
    with pytest.raises(
        InvalidState, match="No data cached for privacy_request_id .* connection config 'crm'"
    ):
        privacy_requests.resume_request(request_id, STAFF)
    db.session.rollback()
    save(request_id, "crm", {"first_name": "Jane", "eye_colour": "green"})
    resume(request_id)
    assert db.session.get(PrivacyRequest, request_id).package.data == {
        "crm": [{"first_name": "Jane", "eye_colour": "green"}]
    }


def test_resume_names_first_missing_connection(app):
    add_webhook("a_system", [field("Name")], name="A system")
    add_webhook("b_system", [field("Name")], name="B system")
    request_id = new_request()
    save(request_id, "a_system", {"name": "x"})
    with pytest.raises(InvalidState) as error:
        privacy_requests.resume_request(request_id, STAFF)
    assert str(error.value) == (
        "Cannot resume privacy request. No data cached for privacy_request_id "
        f"'{request_id}' for connection config 'b_system'"
    )


def test_resume_refused_from_other_status(app):
    request_id = new_request()
    with pytest.raises(InvalidState) as error:
        privacy_requests.resume_request(request_id, STAFF)
    assert str(error.value) == (
        "Cannot resume privacy request from 'requires_input': "
        f"privacy request '{request_id}' status = complete."
    )


def test_package_has_fidesops_shape_with_nulls(app):
    add_webhook("manual_webhook_key", [field("First Name"), field("Last Name")], name="Manual")
    add_webhook("second", [field("Account ID", "account_id")], name="Second")
    request_id = new_request()
    save(request_id, "manual_webhook_key", {"first_name": "Jane", "last_name": ""})
    save(request_id, "second", {})
    resume(request_id)
    assert status_of(request_id) == "complete"
    assert db.session.get(PrivacyRequest, request_id).package.data == {
        "manual_webhook_key": [{"first_name": "Jane", "last_name": None}],
        "second": [{"account_id": None}],
    }
    assert actions(request_id)[-3:] == ["request.resumed", "request.run_started", "request.completed"]


def test_labels_that_look_like_attributes_work(app):
    add_webhook("odd", [field("Dict", "dict"), field("Under", "_private"), field("Class", "__class__")])
    request_id = new_request()
    save(request_id, "odd", {"dict": "a", "_private": "b", "__class__": "c"})
    resume(request_id)
    assert db.session.get(PrivacyRequest, request_id).package.data == {
        "odd": [{"dict": "a", "_private": "b", "__class__": "c"}]
    }


# --- never stuck -----------------------------------------------------------------------------------


def test_disabling_a_webhook_resumes_requests_whose_gate_now_passes(app):
    from portal.services.privacy_requests import reevaluate_waiting as webhooks_changed

    add_webhook("done_system", [field("Name")], name="Done")
    blocker = add_webhook("blocker", [field("Name")], name="Blocker")
    other = add_webhook("other", [field("Name")], name="Other")
    ready = new_request("a@example.com")
    waiting = new_request("b@example.com")
    save(ready, "done_system", {"name": "x"})
    save(ready, "other", {"name": "y"})
    save(waiting, "done_system", {"name": "x"})
    blocker.disabled = True
    resumed = webhooks_changed(ADMIN)
    dispatch.commit_and_run()
    assert resumed == [ready]
    assert status_of(ready) == "complete"
    assert status_of(waiting) == "requires_input"
    del other


# --- concurrency, errors, encryption ---------------------------------------------------------------


def test_concurrent_resume_runs_exactly_once(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    save(request_id, "crm", {"name": "x"})
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt():
        with app.app_context():
            barrier.wait()
            try:
                privacy_requests.resume_request(request_id, STAFF)
                dispatch.commit_and_run()
                outcomes.append("resumed")
            except InvalidState:
                db.session.rollback()
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "resumed"]
    assert actions(request_id).count("request.completed") == 1
    assert actions(request_id).count("request.run_started") == 2  # the first run, then the resumed one


def test_concurrent_first_saves_of_one_entry_all_succeed_and_one_entry_remains(app):
    """Four staff save the same system's first entry at once: no save fails on the unique entry, exactly
    one audit event says it created the entry, and the last save's values are what is stored."""
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt(n: int):
        with app.app_context():
            barrier.wait()
            try:
                manual_inputs.save_manual_input(request_id, "crm", {"name": f"value {n}"}, STAFF)
                db.session.commit()
                outcomes.append("saved")
            except Exception as exc:  # noqa: BLE001 - any failure is the bug this test is about
                db.session.rollback()
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["saved"] * 4
    db.session.expire_all()
    entries = db.session.scalars(
        sa.select(ManualInput).where(ManualInput.privacy_request_id == request_id)
    ).all()
    assert len(entries) == 1 and entries[0].values["name"] in {f"value {n}" for n in range(4)}
    events = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.privacy_request_id == request_id, AuditEvent.action == "manual_input.saved"
        )
    ).all()
    assert sorted(e.details["replaced"] for e in events) == [False, True, True, True]


def test_runner_claim_is_exclusive(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request()
    save(request_id, "crm", {"name": "x"})
    privacy_requests.resume_request(request_id, STAFF)
    db.session.commit()  # resumed but not yet run
    token = runner.claim(request_id)
    assert token is not None
    assert runner.run_privacy_request(request_id) is None  # a duplicate delivery does nothing
    assert status_of(request_id) == "in_processing"


def test_failure_goes_to_error_and_retry_completes(app, monkeypatch):
    from portal.execution import collection

    add_webhook("crm", [field("Name")])
    request_id = new_request()
    save(request_id, "crm", {"name": "Jane"})

    def broken(privacy_request):
        raise RuntimeError("connection refused to secret-host for jane@example.com")

    monkeypatch.setattr(collection, "collect", broken)
    resume(request_id)
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.status == "error"
    assert pr.error_message.startswith("Unexpected error while processing (RuntimeError)")
    assert "jane@example.com" not in pr.error_message
    monkeypatch.undo()
    privacy_requests.retry_request(request_id, ADMIN)
    dispatch.commit_and_run()
    assert status_of(request_id) == "complete"
    assert db.session.get(PrivacyRequest, request_id).package.data == {"crm": [{"name": "Jane"}]}
    assert "request.errored" in actions(request_id) and "request.retried" in actions(request_id)


def test_personal_data_is_encrypted_at_rest(app):
    add_webhook("crm", [field("Secret")])
    request_id = new_request("unique-subject-7341@example.com")
    save(request_id, "crm", {"secret": "UNIQUE-VALUE-98213"})
    resume(request_id)
    dump = []
    with db.engine.connect() as conn:
        for table in ("privacy_requests", "manual_inputs", "access_packages", "audit_events"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                dump.append(repr(tuple(row)))
    text = "\n".join(dump)
    assert "unique-subject-7341" not in text
    assert "UNIQUE-VALUE-98213" not in text
    assert db.session.get(PrivacyRequest, request_id).identity == {"email": "unique-subject-7341@example.com"}


def test_external_id_and_denial_reason_are_encrypted_at_rest(app):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request("subject@example.com", external_id="  CRM-TICKET-5521 ")
    privacy_requests.deny_request(request_id, "Asked for Jane Roe's sister, DENIAL-TEXT-7", ADMIN)
    db.session.commit()
    with db.engine.connect() as conn:
        dump = "\n".join(repr(tuple(row)) for row in conn.execute(sa.text("SELECT * FROM privacy_requests")))
        external_id, reason, index = conn.execute(
            sa.text("SELECT external_id, denial_reason, external_id_index FROM privacy_requests")
        ).one()
    assert "CRM-TICKET-5521" not in dump and "DENIAL-TEXT-7" not in dump and "Jane Roe" not in dump
    ring = Keyring(TEST_KEY)
    assert ring.decrypt(bytes(external_id)) == b"CRM-TICKET-5521"
    assert ring.decrypt(bytes(reason)) == b"Asked for Jane Roe's sister, DENIAL-TEXT-7"
    assert index == ring.blind_index("crm-ticket-5521", purpose="external_id")
    db.session.expire_all()
    pr = db.session.get(PrivacyRequest, request_id)
    assert (pr.external_id, pr.denial_reason) == (
        "CRM-TICKET-5521",
        "Asked for Jane Roe's sister, DENIAL-TEXT-7",
    )


@pytest.mark.parametrize("typed", ["CRM-TICKET-5521", "crm-ticket-5521", "  Crm-Ticket-5521\t"])
def test_search_by_external_id_uses_its_blind_index_in_any_case(app, typed):
    first = new_request("a@example.com", external_id="CRM-TICKET-5521")
    new_request("b@example.com", external_id="CRM-TICKET-55210")
    new_request("c@example.com")
    assert [pr.id for pr in request_lists.list_requests(search=typed).items] == [first]
    assert identities.classify_search(typed) == {"external": identities.external_id_index(typed)}
    found = request_lists.list_requests(external_id_hash=identities.external_id_index(typed))
    assert [(pr.id, pr.external_id) for pr in found.items] == [(first, "CRM-TICKET-5521")]


def test_search_by_identity_uses_blind_index(app):
    first = new_request("findme@example.com")
    new_request("other@example.com")
    page = request_lists.list_requests(search="FindMe@Example.com")
    assert [pr.id for pr in page.items] == [first]
    by_phone = new_request(identity={"phone_number": "+1 (555) 010-1234"})
    assert [pr.id for pr in request_lists.list_requests(search="+15550101234").items] == [by_phone]


def test_audit_events_hold_no_values(app):
    add_webhook("crm", [field("Name")])
    request_id = new_request("audit-subject@example.com")
    save(request_id, "crm", {"name": "AUDIT-VALUE"})
    events = db.session.scalars(sa.select(AuditEvent)).all()
    text = repr([(e.action, e.actor_label, e.details) for e in events])
    assert "AUDIT-VALUE" not in text and "audit-subject" not in text
    saved = next(e for e in events if e.action == "manual_input.saved")
    assert saved.details["labels"] == ["name"] and saved.connection_key == "crm"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessPackage)) == 0
