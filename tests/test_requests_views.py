"""The browser side of the manual-input workflow: queue, request page, creation, manual-input forms."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from portal.execution import collection, dispatch
from portal.extensions import db
from portal.models import (
    AuditEvent,
    ConnectionConfig,
    ManualInput,
    ManualWebhook,
    PrivacyRequest,
    Task,
    utcnow,
)
from portal.models.audit import Actor
from portal.services import identities, manual_inputs, privacy_requests
from tests.workflow_helpers import STAFF, add_webhook, field, new_request, post_manual, set_fields

SCRIPT = "<script>alert(1)</script>"


def text_of(response) -> str:
    """The page as a person reads it: entities decoded, tags and runs of white space collapsed."""
    raw = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html.unescape(raw))


def page_html(response) -> str:
    return response.get_data(as_text=True)


def get_request(request_id: str) -> PrivacyRequest:
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id)


def stored_input(request_id: str) -> ManualInput | None:
    db.session.expire_all()
    return db.session.scalar(sa.select(ManualInput).where(ManualInput.privacy_request_id == request_id))


def set_due(request_id: str, due) -> None:
    db.session.get(PrivacyRequest, request_id).due_date = due
    db.session.commit()


def save(request_id: str, key: str, values: dict) -> None:
    manual_inputs.save_manual_input(request_id, key, values, STAFF)
    db.session.commit()


def actions(request_id: str) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.privacy_request_id == request_id)
            .order_by(AuditEvent.id)
        )
    )


def input_name(page: str, label: str) -> str:
    """The name of the form input labelled ``label`` (inputs are named after each field's id)."""
    return re.search(rf'<label class="form-label" for="(field_\w+)">{re.escape(label)}\b', page).group(1)


def manual_url(request_id: str, key: str) -> str:
    return f"/requests/{request_id}/manual/{key}"


@pytest.fixture
def staff(login_as):
    return login_as("staff")


@pytest.fixture
def crm():
    return add_webhook("crm", [field("First Name"), field("Last Name")], name="CRM")


# --- roles -----------------------------------------------------------------------------------------


def test_signed_out_users_are_sent_to_login(client):
    response = client.get("/requests/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize("role", ["admin", "staff", "reviewer"])
def test_every_role_sees_queue_and_request_page(client, login_as, crm, role):
    request_id = new_request()
    login_as(role)
    assert client.get("/requests/").status_code == 200
    assert client.get(f"/requests/{request_id}").status_code == 200


def test_reviewer_is_refused_every_write_route(client, login_as, crm):
    request_id = new_request()
    login_as("reviewer")
    refused = [
        ("get", "/requests/new", None),
        ("post", "/requests/new", {"email": "x@example.com", "policy": "default_access_policy"}),
        ("get", manual_url(request_id, "crm"), None),
        ("post", manual_url(request_id, "crm"), {"field_0": "Jane", "save": "Save"}),
        ("post", manual_url(request_id, "crm"), {"nothing_found": "x"}),
        ("post", f"/requests/{request_id}/resume", {}),
        ("post", f"/requests/{request_id}/approve", {}),
        ("post", f"/requests/{request_id}/deny", {"reason": "no"}),
        ("post", f"/requests/{request_id}/retry", {}),
    ]
    for method, url, data in refused:
        response = getattr(client, method)(url, data=data)
        assert response.status_code == 403, (method, url)
    assert stored_input(request_id) is None
    assert get_request(request_id).status == "requires_input"


def test_reviewer_sees_no_enter_data_resume_or_create(client, login_as, crm):
    request_id = new_request()
    login_as("reviewer")
    detail = page_html(client.get(f"/requests/{request_id}"))
    assert "Enter data" not in detail and "Resume" not in detail
    assert "Not started" in detail  # the state is visible, only the actions are not
    assert "New request" not in page_html(client.get("/requests/"))


@pytest.mark.parametrize("route", ["approve", "deny", "retry"])
def test_staff_may_not_approve_deny_or_retry(client, staff, app, route):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = new_request()
    assert client.post(f"/requests/{request_id}/{route}", data={"reason": "x"}).status_code == 403
    assert get_request(request_id).status == "pending"


def test_unknown_request_is_404(client, staff):
    response = client.get("/requests/pri_missing")
    assert response.status_code == 404
    assert "No privacy request found with id &#39;pri_missing&#39;." in page_html(response)
    assert client.post("/requests/pri_missing/resume").status_code == 404
    assert client.get(manual_url("pri_missing", "crm")).status_code == 404


def test_csrf_token_is_required_on_manual_input(client, staff, crm, app):
    request_id = new_request()
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(manual_url(request_id, "crm"), data={"nothing_found": "x"})
    assert response.status_code == 400
    assert "The form expired" in text_of(response)
    assert stored_input(request_id) is None
    response = client.post(manual_url(request_id, "crm"), data={"field_0": "Jane", "save": "Save"})
    assert response.status_code == 400 and "The form expired" in text_of(response)
    assert stored_input(request_id) is None
    form_page = page_html(client.get(manual_url(request_id, "crm")))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form_page).group(1)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', form_page).group(1)
    data = {"nothing_found": "x", "csrf_token": token, "version": version}
    response = client.post(manual_url(request_id, "crm"), data=data)
    assert response.status_code == 302
    assert stored_input(request_id).values == {"first_name": None, "last_name": None}


# --- creating requests -----------------------------------------------------------------------------


def test_new_request_form_lists_policies(client, staff):
    response = client.get("/requests/new")
    assert response.status_code == 200
    page = page_html(response)
    assert '<option selected value="default_access_policy">' in page
    assert 'type="email"' in page and 'type="tel"' in page


def test_create_completes_at_once_without_manual_systems(client, login_as):
    login_as("admin")
    response = client.post(
        "/requests/new",
        data={"email": "Jane@Example.com", "policy": "default_access_policy", "external_id": "TICKET-9"},
    )
    request = db.session.scalars(sa.select(PrivacyRequest)).one()
    assert response.headers["Location"] == f"/requests/{request.id}"
    assert request.status == "complete" and request.external_id == "TICKET-9"
    assert request.identity == {"email": "jane@example.com"}
    page = text_of(client.get(response.headers["Location"]))
    assert "Request created: the request completed at once and its access package is ready." in page


def test_create_waits_for_input_and_names_the_systems(client, staff, crm):
    response = client.post(
        "/requests/new", data={"phone_number": "+1 (555) 010-1234", "policy": "default_access_policy"}
    )
    request = db.session.scalars(sa.select(PrivacyRequest)).one()
    assert request.status == "requires_input"
    assert request.identity == {"phone_number": "+15550101234"}
    page = text_of(client.get(response.headers["Location"]))
    assert "Request created: the request is waiting for input from CRM." in page


def test_create_pending_when_approval_required(client, staff, app):
    app.config["REQUIRE_APPROVAL"] = True
    response = client.post(
        "/requests/new", data={"email": "a@example.com", "policy": "default_access_policy"}
    )
    assert "Request created: the request is pending approval by an admin." in text_of(
        client.get(response.headers["Location"])
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Provide an email address or a phone number for the data subject."),
        ({"email": "not-an-email"}, "Invalid email address:"),
        ({"phone_number": "call me"}, "Invalid phone number: use digits, optionally starting with +"),
        ({"email": "a@example.com", "external_id": "x" * 201}, "Field cannot be longer than 200 characters."),
    ],
)
def test_create_shows_errors_and_stores_nothing(client, staff, data, message):
    response = client.post("/requests/new", data={"policy": "default_access_policy", **data})
    assert response.status_code == 200
    assert message in text_of(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PrivacyRequest)) == 0


def test_create_with_unknown_policy_is_a_form_error(client, staff):
    response = client.post("/requests/new", data={"email": "a@example.com", "policy": "nope"})
    assert "Not a valid choice." in text_of(response)


# --- the queue -------------------------------------------------------------------------------------


def test_queue_shows_requires_input_by_default_with_masked_identity(client, staff, crm):
    add_webhook("zendesk", [field("Ticket")], name="Zendesk")
    waiting = new_request("jane.customer@example.com")
    finished = new_request("other.person@example.com")
    save(waiting, "crm", {"first_name": "Jane"})
    save(finished, "crm", {})
    save(finished, "zendesk", {})
    client.post(f"/requests/{finished}/resume")
    assert get_request(finished).status == "complete"

    response = client.get("/requests/")
    page = page_html(response)
    assert waiting in page and finished not in page
    assert "jane.customer@example.com" not in page and "j•••@e•••.com" in page
    assert "1 of 2 systems done" in text_of(response)
    assert '<span class="badge text-bg-warning">Requires input</span>' in page
    assert finished in page_html(client.get("/requests/?status=all"))
    assert finished in page_html(client.get("/requests/?status=complete"))
    assert waiting not in page_html(client.get("/requests/?status=complete"))
    assert '<option selected value="complete">Complete</option>' in page_html(
        client.get("/requests/?status=complete")
    )


def test_queue_empty_state(client, staff):
    new_request()  # completes at once: nothing waits
    page = text_of(client.get("/requests/"))
    assert "No requests waiting for input" in page
    assert "No requests with status Canceled" in text_of(client.get("/requests/?status=canceled"))


def test_queue_sorts_by_due_date_with_badges(client, staff, crm):
    later, today, overdue = (
        new_request("a@example.com"),
        new_request("b@example.com"),
        new_request("c@example.com"),
    )
    now = utcnow()
    for request_id, due in (
        (later, now + timedelta(days=10)),
        (today, now),
        (overdue, now - timedelta(days=3)),
    ):
        set_due(request_id, due)
    page = page_html(client.get("/requests/"))
    assert page.index(overdue) < page.index(today) < page.index(later)
    text = text_of(client.get("/requests/"))
    assert "overdue by 3 days" in text and "due today" in text and "10 days left" in text
    assert now.strftime("%Y-%m-%d") in text and "UTC" in text


@pytest.mark.parametrize(
    ("term", "match"),
    [("Jane.Customer@EXAMPLE.com", "email"), ("+1 555 010 1234", "phone")],
)
def test_search_by_identity_keeps_it_out_of_the_url(client, staff, crm, term, match):
    by_email = new_request("jane.customer@example.com")
    by_phone = new_request(identity={"phone_number": "+15550101234"}, email="")
    new_request("someone.else@example.com")
    response = client.post("/requests/", data={"status": "requires_input", "search": term})
    assert response.status_code == 302
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert set(query) == {"status", "identity"} and query["status"] == ["requires_input"]
    assert "example" not in location.lower() and "555" not in location and "@" not in location
    assert re.fullmatch(r"[0-9a-f]{64}", query["identity"][0])
    page = page_html(client.get(location))
    expected, other = (by_email, by_phone) if match == "email" else (by_phone, by_email)
    assert expected in page and other not in page
    assert "someone" not in page and "Clear search" in page
    assert term not in page  # the search box is not refilled with the identity


def test_search_by_request_id_uses_q(client, staff, crm):
    first = new_request("a@example.com", external_id="TICKET-42")
    second = new_request("b@example.com")
    response = client.post("/requests/", data={"status": "all", "search": second})
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"status": ["all"], "q": [second]}
    page = page_html(client.get(response.headers["Location"]))
    assert second in page and first not in page
    assert f'value="{second}"' in page  # request ids (not personal data) stay in the box


@pytest.mark.parametrize("typed", ["TICKET-42", " ticket-42 ", "Ticket-42"])
def test_search_by_external_id_is_case_insensitive_and_keeps_it_out_of_the_url(client, staff, crm, typed):
    first = new_request("a@example.com", external_id="TICKET-42")
    second = new_request("b@example.com", external_id="TICKET-420")
    response = client.post("/requests/", data={"status": "all", "search": typed})
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert set(query) == {"status", "external"} and re.fullmatch(r"[0-9a-f]{64}", query["external"][0])
    assert "ticket" not in location.lower()
    page = page_html(client.get(location))
    assert first in page and second not in page
    assert "External: TICKET-42</div>" in page
    assert "Showing requests with the external id you searched for." in text_of(client.get(location))
    assert 'value="TICKET-42"' not in page  # not refilled into the box either
    changed = client.post(
        "/requests/", data={"status": "complete", "search": "", "external": query["external"]}
    )
    assert parse_qs(urlsplit(changed.headers["Location"]).query) == {
        "status": ["complete"],
        "external": query["external"],
    }


def test_a_search_that_finds_nothing_shows_an_empty_result_with_the_term_kept(client, staff, crm):
    """Not a redirect to the whole list (it would read like results), and the term never in a URL."""
    request_id = new_request()
    response = client.post("/requests/", data={"status": "all", "search": "Jane Customer"})
    assert response.status_code == 200 and "Location" not in response.headers
    page = text_of(response)
    assert "No requests match “Jane Customer”" in page
    assert (
        "No request has that request id (or one starting with it) or external id, and it is not an email "
        "address or phone number." in page
    )
    assert 'value="Jane Customer"' in page_html(response)
    assert request_id not in page_html(response)


def test_a_request_is_found_by_the_start_of_its_id_and_an_ambiguous_start_lists_each(client, staff, crm):
    for n, wanted in enumerate(["pri_abcd1111-x", "pri_abcd2222-y", "pri_ffff0000-z"]):
        made = new_request(f"s{n}@example.com")  # waiting for CRM: only its task refers to its id yet
        db.session.execute(sa.delete(Task).where(Task.privacy_request_id == made))
        db.session.execute(sa.update(PrivacyRequest).where(PrivacyRequest.id == made).values(id=wanted))
    db.session.commit()
    response = client.post("/requests/", data={"status": "all", "search": "pri_abcd"})
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"status": ["all"], "q": ["pri_abcd"]}
    listed = page_html(client.get(response.headers["Location"]))
    assert "pri_abcd1111-x" in listed and "pri_abcd2222-y" in listed and "pri_ffff0000-z" not in listed
    unique = client.post("/requests/", data={"status": "all", "search": "pri_abcd2"})
    assert parse_qs(urlsplit(unique.headers["Location"]).query) == {
        "status": ["all"],
        "q": ["pri_abcd2222-y"],
    }
    typed = client.get("/requests/", query_string={"status": "all", "q": "pri_abcd"})
    assert typed.status_code == 200 and "pri_abcd1111-x" in page_html(typed)
    too_short = client.post("/requests/", data={"status": "all", "search": "pri_"})
    assert "No requests match “pri_”" in text_of(too_short)


URL_SEARCH_REFUSED = (
    "Only a request id or external id is searched from the address bar. Search for an email address, a "
    "phone number or anything else with the search box, which keeps them out of addresses and logs."
)


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ({"status": "all", "q": "jane@example.com"}, {"status": ["all"]}),
        ({"status": "all", "q": "+1 555 010 1234"}, {"status": ["all"]}),
        ({"status": "all", "q": "Jane Customer"}, {"status": ["all"]}),
        ({"status": "all", "identity": "jane@example.com"}, {"status": ["all"]}),
        (
            {"status": "all", "q": "TICKET-42", "identity": "+15550101234"},
            {"status": ["all"], "external": ["EXTERNAL-HASH"]},
        ),
    ],
)
def test_an_identity_typed_into_the_address_bar_is_neither_searched_nor_shown(
    client, staff, crm, query, kept
):
    """Only what the search box itself puts in a URL is used: an existing id, or an identity's keyed hash."""
    new_request("jane@example.com", identity={"phone_number": "+15550101234"}, external_id="TICKET-42")
    if "external" in kept:  # an external id in the address is replaced by its keyed hash
        kept = {**kept, "external": [identities.external_id_index("TICKET-42")]}
    response = client.get("/requests/", query_string=query)

    assert response.status_code == 302
    location = response.headers["Location"]
    assert parse_qs(urlsplit(location).query) == kept
    page = client.get(location)
    assert URL_SEARCH_REFUSED in text_of(page)
    for name, value in query.items():
        found_by_it = name == "q" and "external" in kept  # the request found shows its external id
        if name not in kept and not found_by_it:
            assert value not in page_html(page)  # not in the search box, the links or the text


def test_an_email_that_is_also_an_external_id_is_searched_by_its_hash(client, staff, crm):
    request_id = new_request("jane@example.com", external_id="jane@example.com")
    response = client.post("/requests/", data={"status": "all", "search": "jane@example.com"})
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert set(query) == {"status", "identity"}
    assert request_id in page_html(client.get(response.headers["Location"]))
    refused = client.get("/requests/", query_string={"status": "all", "q": "jane@example.com"})
    assert refused.headers["Location"] == "/requests/?status=all"


def test_a_numeric_external_id_still_works_from_the_address_bar(client, staff, crm):
    """A ticket number can look like a phone number; an existing external id is not an identity."""
    request_id = new_request("jane@example.com", external_id="20240815")
    response = client.post("/requests/", data={"status": "all", "search": "20240815"})
    external = identities.external_id_index("20240815")
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {
        "status": ["all"],
        "external": [external],
    }
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and request_id in page_html(page)
    assert URL_SEARCH_REFUSED not in text_of(page)
    # An old link with the external id itself is searched too, and the id taken out of the address.
    old_link = client.get("/requests/", query_string={"status": "all", "q": "20240815"})
    assert parse_qs(urlsplit(old_link.headers["Location"]).query) == {
        "status": ["all"],
        "external": [external],
    }
    assert URL_SEARCH_REFUSED not in text_of(client.get(old_link.headers["Location"]))


def test_changing_status_keeps_an_identity_search(client, staff, crm):
    request_id = new_request("jane@example.com")
    first = client.post("/requests/", data={"status": "requires_input", "search": "jane@example.com"})
    identity = parse_qs(urlsplit(first.headers["Location"]).query)["identity"][0]
    response = client.post("/requests/", data={"status": "all", "search": "", "identity": identity})
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {
        "status": ["all"],
        "identity": [identity],
    }
    assert request_id in page_html(client.get(response.headers["Location"]))


def test_queue_is_paginated_and_keeps_filters(client, staff, crm, app):
    app.config["PAGE_SIZE"] = 2
    ids = [new_request(f"p{i}@example.com") for i in range(5)]
    now = utcnow()
    for offset, request_id in enumerate(ids):
        set_due(request_id, now + timedelta(days=offset + 1))
    first = page_html(client.get("/requests/"))
    assert ids[0] in first and ids[1] in first and ids[2] not in first
    assert 'href="/requests/?page=2&amp;status=requires_input"' in first
    third = page_html(client.get("/requests/?page=3&status=requires_input"))
    assert ids[4] in third and ids[3] not in third
    assert "5 requests." in text_of(client.get("/requests/"))
    too_far = client.get("/requests/?page=9&status=requires_input")
    assert too_far.status_code == 302 and "page=3" in too_far.headers["Location"]


# --- the request page ------------------------------------------------------------------------------


def test_request_page_shows_details_masked_and_timeline(client, staff, crm):
    request_id = new_request("jane.customer@example.com", external_id="TICKET-1")
    response = client.get(f"/requests/{request_id}")
    page, text = page_html(response), text_of(response)
    assert "jane.customer@example.com" not in page and "j•••@e•••.com" in text
    assert "TICKET-1" in text and "Default access policy (30 days)" in text
    assert "Requires input" in text and "30 days left" in text
    assert "UTC" in text
    timeline = text[text.index("Timeline") :]
    assert timeline.index("Paused: waiting for manual input (crm)") < timeline.index("Request created")
    assert "by staff@example.com" in timeline and "by system" in timeline


def test_request_page_shows_the_latest_events_and_links_the_whole_timeline(client, staff, crm, monkeypatch):
    from portal.requests import views

    monkeypatch.setattr(views, "TIMELINE_EVENTS", 4)
    monkeypatch.setattr(views, "TIMELINE_ALL", 6)
    request_id = new_request()  # created, run started, paused, task opened: 4 events
    timeline = text_of(client.get(f"/requests/{request_id}"))
    timeline = timeline[timeline.index("Timeline") :]
    assert "Request created" in timeline and "Show the whole timeline" not in timeline

    save(request_id, "crm", {"first_name": "Jane"})  # a 5th event: only the latest 4 are shown
    response = client.get(f"/requests/{request_id}")
    timeline = text_of(response)[text_of(response).index("Timeline") :]
    assert timeline.startswith("Timeline Manual data saved — crm")
    assert "Request created" not in timeline and "Show the whole timeline" in timeline
    assert f'href="/requests/{request_id}?timeline=all#timeline-heading"' in page_html(response)

    whole = text_of(client.get(f"/requests/{request_id}?timeline=all"))
    whole = whole[whole.index("Timeline") :]
    assert "Request created" in whole and "Show the whole timeline" not in whole
    assert "Only the latest" not in whole

    save(request_id, "crm", {"first_name": "Janet"})
    save(request_id, "crm", {"first_name": "Janine"})  # 7 events, more than TIMELINE_ALL
    whole = text_of(client.get(f"/requests/{request_id}?timeline=all"))
    assert "Only the latest 6 events are shown." in whole and "Request created" not in whole


def test_reveal_shows_identity_once_and_is_audited(client, staff, crm):
    request_id = new_request("jane.customer@example.com")
    response = client.post(f"/requests/{request_id}/reveal")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "jane.customer@example.com" in page_html(response)
    assert actions(request_id)[-1] == "request.identity_revealed"
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "request.identity_revealed")
    ).one()
    assert event.actor_label == staff.email and "jane" not in repr(event.details)
    assert "jane.customer@example.com" not in page_html(client.get(f"/requests/{request_id}"))


def test_cards_show_each_state_and_the_missing_systems(client, staff):
    add_webhook("a_sys", [field("Name")], name="Alpha")
    add_webhook("b_sys", [field("Name")], name="Bravo")
    stale = add_webhook("c_sys", [field("Name"), field("Height")], name="Charlie")
    add_webhook("d_sys", [field("Name")], name="Delta")
    request_id = new_request()
    save(request_id, "a_sys", {"name": "Jane"})
    save(request_id, "b_sys", {})
    save(request_id, "c_sys", {"name": "Jane"})
    set_fields(stale, [field("Name"), field("Eye Colour")])

    response = client.get(f"/requests/{request_id}")
    text = text_of(response)
    assert f"Entered by {STAFF.label} at" in text
    assert f"Nothing found — confirmed by {STAFF.label} at" in text
    assert "Needs re-review: fields changed" in text
    assert "Not started" in text
    assert "Still missing: Charlie, Delta ." in text
    page = page_html(response)
    assert page.count(">Enter data<") == 1 and page.count(">Review<") == 3
    assert f'action="/requests/{request_id}/resume"' not in page  # only a disabled button
    assert "Available once every system is done." in text


def test_resume_appears_when_all_done_and_completes_the_request(client, staff, crm):
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane"})
    page = page_html(client.get(f"/requests/{request_id}"))
    assert f'action="/requests/{request_id}/resume"' in page
    assert "Every manual system is done." in text_of(client.get(f"/requests/{request_id}"))
    response = client.post(f"/requests/{request_id}/resume")
    assert response.headers["Location"] == f"/requests/{request_id}"
    assert get_request(request_id).status == "complete"
    page = text_of(client.get(f"/requests/{request_id}"))
    assert "Resumed: the request completed at once and its access package is ready." in page
    assert "Enter data" not in page and "Review" not in page  # not requires_input any more


def test_resume_refusal_is_flashed_not_500(client, staff, crm):
    request_id = new_request()
    response = client.post(f"/requests/{request_id}/resume", follow_redirects=True)
    assert response.status_code == 200
    assert (
        "Cannot resume privacy request. No data cached for privacy_request_id "
        f"'{request_id}' for connection config 'crm'" in text_of(response)
    )
    assert get_request(request_id).status == "requires_input"


def test_admin_approves_and_denies_pending_requests(client, login_as, app):
    app.config["REQUIRE_APPROVAL"] = True
    login_as("admin")
    approved, denied = new_request("a@example.com"), new_request("b@example.com")
    page = page_html(client.get(f"/requests/{approved}"))
    assert f'action="/requests/{approved}/approve"' in page and f'action="/requests/{approved}/deny"' in page
    response = client.post(f"/requests/{approved}/approve", follow_redirects=True)
    assert "Approved: the request completed at once and its access package is ready." in text_of(response)
    assert get_request(approved).status == "complete"
    response = client.post(
        f"/requests/{denied}/deny", data={"reason": "Identity " + SCRIPT}, follow_redirects=True
    )
    assert "Denied: the request will not be processed." in text_of(response)
    assert (
        get_request(denied).status == "denied" and get_request(denied).denial_reason == "Identity " + SCRIPT
    )
    assert "&lt;script&gt;" in page_html(response) and SCRIPT not in page_html(response)
    again = client.post(f"/requests/{denied}/approve", follow_redirects=True)
    assert f"Cannot approve privacy request '{denied}': status = denied." in text_of(again)


def test_admin_retries_a_failed_request(client, login_as, crm, monkeypatch):
    login_as("admin")
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane"})

    def broken(privacy_request):
        raise collection.CollectionError("The CRM mirror did not answer.")

    monkeypatch.setattr(collection, "collect", broken)
    client.post(f"/requests/{request_id}/resume")
    page = client.get(f"/requests/{request_id}")
    assert "The last run failed. The CRM mirror did not answer." in text_of(page)
    assert f'action="/requests/{request_id}/retry"' in page_html(page)
    monkeypatch.undo()
    response = client.post(f"/requests/{request_id}/retry", follow_redirects=True)
    assert "Retried: the request completed at once" in text_of(response)
    assert get_request(request_id).status == "complete"


# --- manual input ----------------------------------------------------------------------------------


def test_form_renders_the_fields_with_types_and_help(client, staff):
    add_webhook(
        "crm",
        [
            field("Full Name", required=True, help_text="As written on the account"),
            field("Notes", type="textarea"),
            field("Contact Email", type="email"),
            field("Balance", type="number"),
            field("Signed Up", type="date"),
            field("Subscribed", type="boolean"),
        ],
    )
    request_id = new_request()
    response = client.get(manual_url(request_id, "crm"))
    assert response.status_code == 200
    page = page_html(response)
    assert '<label class="form-label" for="field_0">Full Name <span class="text-danger"' in page
    assert "As written on the account" in page
    assert re.search(r'<textarea[^>]*name="field_1"', page)
    assert re.search(r'<input[^>]*name="field_2"[^>]*type="email"', page)
    assert re.search(r'<input[^>]*inputmode="decimal"[^>]*name="field_3"', page)
    assert re.search(r'<input[^>]*name="field_4"[^>]*type="date"', page)
    assert re.search(r'<select[^>]*name="field_5"', page)
    assert ">Yes</option>" in page and ">No</option>" in page and ">(blank)</option>" in page
    assert 'maxlength="10000"' in page
    assert "Nothing found in this system" in page and "js/manual_input.js" in page


def test_save_stores_values_and_returns_to_request(client, staff, crm):
    request_id = new_request()
    response = post_manual(
        client, manual_url(request_id, "crm"), {"field_0": "Jane", "field_1": "", "save": "Save"}
    )
    assert response.headers["Location"] == f"/requests/{request_id}?saved=crm"
    entry = stored_input(request_id)
    assert entry.values == {"first_name": "Jane", "last_name": None}
    assert entry.entered_by_label == staff.email
    page = text_of(client.get(response.headers["Location"]))
    assert "Saved “CRM”: data entered. Every manual system is done: you can resume the request now." in page
    assert "Saved “CRM”" not in text_of(client.get(f"/requests/{request_id}"))  # said once, not kept


def test_a_save_leaves_the_session_cookie_alone(client, staff, crm):
    """The save's message travels in the redirect: the session (and its cookie) is not written."""
    request_id = new_request()
    client.get(f"/requests/{request_id}")
    before = client.get_cookie("session").value
    response = post_manual(client, manual_url(request_id, "crm"), {"field_0": "Jane", "save": "Save"})
    assert response.status_code == 302 and "Set-Cookie" not in response.headers
    assert client.get_cookie("session").value == before


def test_the_saved_notice_says_only_what_is_stored(client, staff, crm):
    add_webhook("erp", [field("Account")], name="ERP")
    request_id = new_request()
    assert "Saved “" not in text_of(client.get(f"/requests/{request_id}?saved=crm"))  # nothing stored yet
    assert "Saved “" not in text_of(client.get(f"/requests/{request_id}?saved=nope"))  # no such system
    post_manual(client, manual_url(request_id, "crm"), {"field_0": "Jane", "save": "Save"})
    page = text_of(client.get(f"/requests/{request_id}?saved=crm"))
    assert "Saved “CRM”: data entered." in page and "you can resume" not in page
    hostile = "<b>CRM</b>"
    db.session.execute(sa.update(ConnectionConfig).where(ConnectionConfig.key == "crm").values(name=hostile))
    db.session.commit()
    html = page_html(client.get(f"/requests/{request_id}?saved=crm"))
    assert "Saved “&lt;b&gt;CRM&lt;/b&gt;”" in html and "<b>CRM</b>" not in html


def test_save_says_every_system_is_done_only_after_the_last_one(client, staff, crm):
    add_webhook("erp", [field("Account")], name="ERP")
    request_id = new_request()
    response = post_manual(client, manual_url(request_id, "crm"), {"field_0": "Jane", "save": "Save"})
    page = text_of(client.get(response.headers["Location"]))
    assert "Saved “CRM”: data entered." in page and "you can resume the request now" not in page
    response = post_manual(client, manual_url(request_id, "erp"), {"field_0": "A-1", "save": "Save"})
    page = text_of(client.get(response.headers["Location"]))
    assert "Saved “ERP”: data entered. Every manual system is done: you can resume the request now." in page
    # The admin changed ERP's fields since: its entry is stale, and the same link says no more than that.
    erp = db.session.scalar(sa.select(ConnectionConfig.id).where(ConnectionConfig.key == "erp"))
    db.session.execute(
        sa.update(ManualWebhook)
        .where(ManualWebhook.connection_config_id == erp)
        .values(version=ManualWebhook.version + 1)
    )
    db.session.commit()
    page = text_of(client.get(response.headers["Location"]))
    assert "Saved “ERP”: data entered." in page and "you can resume the request now" not in page


def test_saving_again_replaces_the_entry_and_prefills(client, staff, crm):
    request_id = new_request()
    post_manual(
        client, manual_url(request_id, "crm"), {"field_0": "Jane", "field_1": "Customer", "save": "Save"}
    )
    assert 'value="Customer"' in page_html(client.get(manual_url(request_id, "crm")))
    post_manual(client, manual_url(request_id, "crm"), {"field_0": "Janet", "field_1": "", "save": "Save"})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ManualInput)) == 1
    assert stored_input(request_id).values == {"first_name": "Janet", "last_name": None}
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "manual_input.saved").order_by(AuditEvent.id.desc())
    ).first()
    assert event.details["replaced"] is True
    assert "Manual data replaced" in text_of(client.get(f"/requests/{request_id}"))


def test_nothing_found_works_with_required_fields_blank(client, staff):
    add_webhook("crm", [field("Name", required=True), field("Note")], name="CRM")
    request_id = new_request()
    response = post_manual(client, manual_url(request_id, "crm"), {"field_0": "", "nothing_found": "x"})
    assert response.status_code == 302
    assert stored_input(request_id).values == {"name": None, "note": None}
    page = text_of(client.get(response.headers["Location"]))
    assert "Saved “CRM”: nothing found in this system." in page
    assert "Nothing found — confirmed by" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"field_0": "", "field_1": "a note"}, "This field is required."),
        (
            {"field_0": "", "field_1": ""},
            "Fill in at least one field, or press “Nothing found in this system”",
        ),
        ({"field_0": "Jane", "field_2": "twelve"}, "Enter a number, e.g. 42 or 3.5."),
        ({"field_0": "Jane", "field_2": "inf"}, "Enter a finite number"),
        ({"field_0": "Jane", "field_3": "31/12/2020"}, "Enter a date as YYYY-MM-DD."),
        ({"field_0": "Jane", "field_4": "jane-at-example"}, "Enter an email address, e.g. name@example.com."),
        ({"field_0": "Jane", "field_5": "maybe"}, "Not a valid choice."),
        ({"field_0": "J" * 10_001}, "Enter at most 10000 characters."),
    ],
)
def test_invalid_input_is_shown_next_to_the_field_and_kept(client, staff, data, message):
    add_webhook(
        "crm",
        [
            field("Name", required=True),
            field("Note"),
            field("Balance", type="number"),
            field("Born", type="date"),
            field("Mail", type="email"),
            field("Opted In", type="boolean"),
        ],
    )
    request_id = new_request()
    response = post_manual(client, manual_url(request_id, "crm"), {**data, "save": "Save"})
    assert response.status_code == 200
    assert message in text_of(response)
    assert stored_input(request_id) is None
    page = page_html(response)
    for name, value in data.items():
        if value and len(value) < 100 and name != "field_5":
            assert f'value="{value}"' in page or f">{value}</textarea>" in page or value in page
    if "field_2" in data:
        assert 'aria-invalid="true"' in page


def test_the_forms_own_message_is_shown_not_the_services_as_well(client, staff):
    """A bad value is refused by the service too; the page shows the form's message for it, once."""
    add_webhook("crm", [field("Name"), field("Balance", type="number"), field("Mail", type="email")])
    request_id = new_request()
    response = post_manual(
        client,
        manual_url(request_id, "crm"),
        {"field_0": "Jane", "field_1": "twelve", "field_2": "jane-at-example", "save": "Save"},
    )
    page = text_of(response)
    assert response.status_code == 200
    assert "Enter a number, e.g. 42 or 3.5." in page
    assert "Enter an email address, e.g. name@example.com." in page
    assert "must be a number" not in page.lower() and "must be an email" not in page.lower()
    assert stored_input(request_id) is None


def test_a_valid_save_stores_exactly_what_was_typed(client, staff):
    """Saved without building the form: values as typed, blanks as null, unknown inputs ignored."""
    add_webhook("crm", [field("Name"), field("Note", type="textarea"), field("Opted In", type="boolean")])
    request_id = new_request()
    response = post_manual(
        client,
        manual_url(request_id, "crm"),
        {"field_0": "  Jane  ", "field_1": "   ", "field_2": "false", "field_9": "x", "save": "Save"},
    )
    assert response.status_code == 302
    assert stored_input(request_id).values == {"name": "  Jane  ", "note": None, "opted_in": False}


def test_service_validation_errors_land_next_to_their_inputs(client, staff, monkeypatch):
    """The service re-validates; what only it catches is shown beside the input of that label."""
    from portal.services import ValidationFailed

    add_webhook("crm", [field("Name"), field("Note")])
    request_id = new_request()

    def refuse(fields, values, *files):
        raise ValidationFailed("note: must be shorter", [(("note",), "note: must be shorter")])

    monkeypatch.setattr(manual_inputs, "validate_values", refuse)
    response = post_manual(
        client, manual_url(request_id, "crm"), {"field_0": "Jane", "field_1": "x", "save": "Save"}
    )
    assert response.status_code == 200
    assert '<div id="field_1-error" class="invalid-feedback d-block" role="alert">Must be shorter.</div>' in (
        page_html(response)
    )
    assert stored_input(request_id) is None


def test_typed_values_are_stored_normalised(client, staff):
    add_webhook(
        "crm",
        [field("Opted In", type="boolean"), field("Born", type="date"), field("Balance", type="number")],
    )
    request_id = new_request()
    post_manual(
        client,
        manual_url(request_id, "crm"),
        {"field_0": "true", "field_1": "2020-12-31", "field_2": "12.5", "save": "Save"},
    )
    assert stored_input(request_id).values == {"opted_in": True, "born": "2020-12-31", "balance": 12.5}
    page = page_html(client.get(manual_url(request_id, "crm")))
    assert '<option selected value="true">Yes</option>' in page
    assert 'value="2020-12-31"' in page


def test_stale_entry_prefills_overlapping_labels_with_a_warning(client, staff):
    conn = add_webhook("crm", [field("First Name"), field("Height")], name="CRM")
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane", "height": "170"})
    assert set_fields(conn, [field("Eye Colour"), field("First Name")]) == 2
    response = client.get(manual_url(request_id, "crm"))
    page = page_html(response)
    assert "The fields of this system changed since this entry was saved; review and save again." in text_of(
        response
    )
    # First Name kept its id (and so its input) through the reorder; Eye Colour is a new field.
    assert re.search(r'name="field_0"[^>]*value="Jane"', page) or re.search(
        r'value="Jane"[^>]*name="field_0"', page
    )
    assert "170" not in page  # a removed field is named (below), its value no longer shown
    assert "Removed: Height (their values are no longer asked for" in text_of(response)
    eye = input_name(page, "Eye Colour")
    post_manual(client, manual_url(request_id, "crm"), {eye: "green", "field_0": "Jane", "save": "Save"})
    entry = stored_input(request_id)
    assert entry.values == {"eye_colour": "green", "first_name": "Jane"} and entry.version == 2


def test_saving_refused_after_request_left_requires_input(client, staff, crm):
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane"})
    privacy_requests.cancel_request(request_id, Actor.system())
    db.session.commit()
    response = post_manual(client, manual_url(request_id, "crm"), {"field_0": "Changed", "save": "Save"})
    assert response.status_code == 400
    text = text_of(response)
    assert (
        f"Nothing was saved. Invalid access manual webhook upload request: privacy request '{request_id}' "
        "status = canceled." in text
    )
    assert 'value="Changed"' in page_html(response)  # what was typed is still on screen
    assert stored_input(request_id).values == {"first_name": "Jane", "last_name": None}
    nothing = post_manual(client, manual_url(request_id, "crm"), {"nothing_found": "x"})
    assert nothing.status_code == 400
    assert stored_input(request_id).values == {"first_name": "Jane", "last_name": None}
    form_page = page_html(client.get(manual_url(request_id, "crm")))
    assert "<fieldset disabled>" in form_page and "status = canceled" in form_page


def test_saving_refused_when_connection_was_disabled_meanwhile(client, staff, crm):
    add_webhook("other", [field("Name")])
    request_id = new_request()
    crm.disabled = True
    db.session.commit()
    response = post_manual(client, manual_url(request_id, "crm"), {"field_0": "Jane", "save": "Save"})
    assert response.status_code == 400
    assert "Connection config 'crm' is disabled: its data is no longer needed for this request." in text_of(
        response
    )
    assert stored_input(request_id) is None


def test_unknown_connection_is_404(client, staff, crm):
    request_id = new_request()
    response = client.get(manual_url(request_id, "nope"))
    assert response.status_code == 404
    assert "No connection config with key &#39;nope&#39;" in page_html(response)


def test_hostile_labels_and_values_are_escaped(client, staff):
    add_webhook("crm", [field(SCRIPT, "notes", help_text=SCRIPT)], name=SCRIPT)
    request_id = new_request(external_id=SCRIPT)
    post_manual(client, manual_url(request_id, "crm"), {"field_0": SCRIPT, "save": "Save"})
    assert stored_input(request_id).values == {"notes": SCRIPT}
    form_page = page_html(client.get(manual_url(request_id, "crm")))
    detail_page = page_html(client.get(f"/requests/{request_id}"))
    queue_page = page_html(client.get("/requests/?status=all"))
    for page in (form_page, detail_page, queue_page):
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert form_page.count("&lt;script&gt;") >= 3  # label, help text and the stored value


# --- performance -----------------------------------------------------------------------------------


@contextmanager
def counted_queries():
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _queue_queries(client, n: int) -> int:
    for i in range(n):
        new_request(f"q{n}-{i}@example.com", external_id=f"EXT-{n}-{i}")
    with counted_queries() as statements:
        response = client.get("/requests/?status=all")
    assert response.status_code == 200
    assert page_html(response).count('href="/requests/pri_') == n
    return len(statements)


def test_queue_queries_do_not_grow_with_requests(client, staff, crm):
    few = _queue_queries(client, 5)
    db.session.execute(sa.delete(AuditEvent))
    db.session.execute(sa.delete(PrivacyRequest))
    db.session.commit()
    many = _queue_queries(client, 40)
    assert few == many


def _detail_queries(client, n: int) -> int:
    for i in range(n):
        add_webhook(f"sys_{n}_{i}", [field("Name")], name=f"System {n} {i:02d}")
    request_id = new_request(f"d{n}@example.com")
    for i in range(0, n, 2):
        save(request_id, f"sys_{n}_{i}", {"name": "x"} if i % 4 else {})
    with counted_queries() as statements:
        response = client.get(f"/requests/{request_id}")
    assert response.status_code == 200
    assert text_of(response).count("Not started") == n // 2
    return len(statements)


def test_request_page_queries_do_not_grow_with_webhooks(client, staff):
    few = _detail_queries(client, 2)
    from portal.models import ConnectionConfig

    db.session.execute(sa.delete(ConnectionConfig))
    db.session.commit()
    many = _detail_queries(client, 15)
    assert few == many


# --- whom to look up, beside the form -------------------------------------------------------------


def test_the_form_shows_whom_to_look_up_on_demand_audited_and_keeps_what_was_typed(client, staff, crm):
    request_id = new_request(
        "jane.subject@example.com", identity={"phone_number": "+15550101234"}, external_id="T-77"
    )
    form_page = client.get(manual_url(request_id, "crm"))
    html_page = page_html(form_page)
    assert "jane.subject@example.com" not in html_page and "T-77" not in html_page
    assert "Show whom to look up" in text_of(form_page)
    identity_url = f"/requests/{request_id}/manual/crm/identity"
    assert f'formaction="{identity_url}"' in html_page  # a POST of the form itself: never a URL with PII

    response = client.post(identity_url, data={"version": "1", "field_0": "Jan"})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = text_of(response)
    assert "jane.subject@example.com" in text and "+15550101234" in text and "T-77" in text
    assert re.search(r'name="field_0"[^>]*value="Jan"', page_html(response))  # what was typed stays, unsaved
    assert stored_input(request_id) is None
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "request.identity_revealed")
    ).all()
    assert [(e.privacy_request_id, e.details) for e in events] == [(request_id, {"shown_with": "crm"})]

    # A save the rules refuse shows the form again with the identity still beside it (and records it).
    refused = client.post(manual_url(request_id, "crm"), data={"version": "1", "field_0": "", "reveal": "1"})
    assert refused.status_code == 200 and "jane.subject@example.com" in text_of(refused)
    count = (
        sa.select(sa.func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "request.identity_revealed")
    )
    assert db.session.scalar(count) == 2


def test_a_reviewer_cannot_ask_whom_to_look_up_on_a_form(client, login_as, crm):
    login_as("reviewer")
    request_id = new_request()
    assert client.post(f"/requests/{request_id}/manual/crm/identity").status_code == 403


def test_a_complete_request_links_reviewers_to_its_package_and_tells_staff_who_sends_it(
    client, login_as, crm
):
    request_id = new_request()
    save(request_id, "crm", {"first_name": "Jane"})
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    login_as("staff")
    staff_page = text_of(client.get(f"/requests/{request_id}"))
    assert "Complete: the access package is built." in staff_page
    assert "It is for reviewers and admins to check and send to the data subject" in staff_page
    forbidden = client.get(f"/packages/{request_id}")
    assert forbidden.status_code == 403 and "It is for admins and reviewers" in text_of(forbidden)
    login_as("reviewer")
    assert f'href="/packages/{request_id}">Open the access package' in page_html(
        client.get(f"/requests/{request_id}")
    )


def test_the_overdue_tile_opens_the_overdue_requests(client, login_as, crm):
    late = new_request("late@example.com")
    new_request("early@example.com")
    db.session.execute(
        sa.update(PrivacyRequest)
        .where(PrivacyRequest.id == late)
        .values(due_date=utcnow() - timedelta(days=3))
    )
    db.session.commit()
    login_as("staff")
    dashboard_page = page_html(client.get("/"))
    assert 'href="/requests/?status=all&amp;due=overdue"' in dashboard_page
    listed = client.get("/requests/?status=all&due=overdue")
    assert "Showing open requests past their due date" in text_of(listed)
    assert (
        late in page_html(listed) and page_html(listed).count('class="font-monospace small text-nowrap"') == 1
    )
