"""Staff find a request, fill in every manual system, resume it; a field edit sends an entry back for review."""

import re

import pytest

from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

CRM = [
    {"pii_field": "First name", "required": True},
    {"pii_field": "Last name"},
]
ARCHIVE = [{"pii_field": "Box number", "help_text": "On the spine of the box."}]


def flash(page):
    return page.locator("main > .alert").first


def test_staff_fill_two_forms_then_resume_and_the_request_completes(browsing, live_server):
    crm = live_server.create_webhook("Customer CRM", CRM)
    live_server.create_webhook("Paper archive", ARCHIVE)
    live_server.create_request("other.person@example.com")
    request_id = live_server.create_request("jane.customer@example.com", external_id="TICKET-7")
    page = browsing.sign_in(live_server.create_user("staff", name="Sam Staff"))

    queue = page.get_by_role("region", name="My queue: waiting for input")
    expect(queue.get_by_role("row")).to_have_count(3)  # the header and two requests
    expect(queue.get_by_role("row").nth(1)).to_contain_text("0 of 2 systems done")

    # Find it in the queue by the subject's email: it never appears in the address bar.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    page.get_by_label("Search").fill("jane.customer@example.com")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(2)
    assert "jane" not in page.url
    page.get_by_role("link", name=request_id).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(request_id)
    expect(page.locator("h1 + .badge, h1 ~ .badge").first).to_have_text("Requires input")
    expect(page.locator("#manual-progress")).to_have_text("0 of 2 systems done")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_disabled()
    expect(resume).to_have_accessible_description("Available once every system is done.")

    # The first form: a required field left empty is reported next to it, what was typed stays.
    page.get_by_role("link", name="Enter data for Customer CRM").click()
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}/manual/{crm}$"))
    expect(page.get_by_label("First name")).to_be_focused()
    page.get_by_label("Last name").fill("Customer")
    page.get_by_role("button", name="Save", exact=True).click()
    first_name = page.get_by_label("First name")
    expect(first_name).to_have_accessible_description("This field is required.")
    expect(first_name).to_be_focused()
    expect(page.get_by_label("Last name")).to_have_value("Customer")
    first_name.fill("Jane")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(flash(page)).to_have_text("Saved “Customer CRM”: data entered.")
    # The message came with the redirect's address; the page takes it out of the address bar, so a
    # reload does not say it again.
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}$"))
    page.reload()
    expect(page.locator("main > .alert")).to_have_count(0)
    expect(page.locator("#manual-progress")).to_have_text("1 of 2 systems done")
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()

    # The second form: "Nothing found" — and only now may the request resume.
    page.get_by_role("link", name="Enter data for Paper archive").click()
    expect(page.get_by_label("Box number")).to_have_accessible_description("On the spine of the box.")
    page.get_by_role("button", name="Nothing found in this system").click()
    expect(flash(page)).to_have_text(
        "Saved “Paper archive”: nothing found in this system. "
        "Every manual system is done: you can resume the request now."
    )
    expect(page.locator("#manual-progress")).to_have_text("2 of 2 systems done")
    archive = (
        page.get_by_role("region", name="Manual input")
        .get_by_role("listitem")
        .filter(has_text="Paper archive")
    )
    expect(archive).to_contain_text("Done Nothing found — confirmed by staff@example.com")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_enabled()
    resume.click()

    expect(flash(page)).to_have_text(
        "Resumed: the request completed at once and its access package is ready."
    )
    expect(page.locator("h1 ~ .badge").first).to_have_text("Complete")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("Completed: access package built")
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    assert live_server.status(request_id) == "complete"


def test_a_field_edit_sends_saved_entries_back_for_review(browsing, live_server):
    crm = live_server.create_webhook("Customer CRM", CRM)
    request_id = live_server.create_request("jane.customer@example.com")
    live_server.save_input(request_id, crm, {"first_name": "Jane", "last_name": "Customer"})

    page = browsing.sign_in(live_server.create_user("admin"))
    page.goto(f"/admin/connections/{crm}/fields")
    page.get_by_role("button", name="Add a field").click()
    page.locator("fieldset[data-field-row]").nth(2).get_by_label("PII field").fill("Middle name")
    page.get_by_role("button", name="Save fields").click()
    expect(flash(page)).to_have_text(
        "Saved 3 fields as version 2. Entries saved against version 1 now need a re-review by staff."
    )
    page.get_by_role("button", name="Sign out").click()

    browsing.sign_in(live_server.create_user("staff"))
    page.goto(f"/requests/{request_id}")
    expect(page.get_by_text("Needs re-review: fields changed")).to_be_visible()
    expect(page.locator("#manual-progress")).to_have_text("0 of 1 system done")
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()

    page.get_by_role("link", name="Review Customer CRM").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "The fields of this system changed since this entry was saved; review and save again."
    )
    expect(alert).to_contain_text("New: Middle name (empty below).")
    expect(page.get_by_label("First name")).to_have_value("Jane")
    expect(page.get_by_label("Last name")).to_have_value("Customer")
    expect(page.get_by_label("Middle name")).to_have_value("")
    page.get_by_label("Middle name").fill("Q.")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator("#manual-progress")).to_have_text("1 of 1 system done")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("h1 ~ .badge").first).to_have_text("Complete")
