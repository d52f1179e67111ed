"""An admin creates a manual webhook and edits its field list: add, remove, reorder, errors per row."""

import re

import pytest

from portal.extensions import db
from portal.services import connections as connection_service
from portal.services.webhooks import MAX_FIELDS
from tests.e2e.helpers import expect, new_document

pytestmark = pytest.mark.e2e


def rows(page):
    return page.locator("fieldset[data-field-row]")


def pii_values(page) -> list[str]:
    return [row.get_by_label("PII field").input_value() for row in rows(page).all()]


def test_admin_creates_a_webhook_and_arranges_its_fields(browsing, live_server):
    page = browsing.sign_in(live_server.create_user("admin"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connections").click()
    expect(
        page.get_by_role("heading", name="No connections yet — create the first manual webhook")
    ).to_be_visible()
    page.get_by_role("link", name="Create a manual webhook").click()

    # A missing name is reported next to the name input; the description typed so far stays.
    page.get_by_label("Description").fill("Export tickets from the admin console.")
    page.get_by_role("button", name="Create and define fields").click()
    name = page.get_by_label("Name")
    expect(name).to_have_accessible_description(re.compile("A name is required."))
    expect(name).to_be_focused()
    expect(page.get_by_label("Description")).to_have_value("Export tickets from the admin console.")

    name.fill("Zendesk (Support) – EU")
    page.get_by_role("button", name="Create and define fields").click()
    expect(page).to_have_url(re.compile(r"/admin/connections/zendesk_support_eu/fields$"))
    expect(page.get_by_role("status").first).to_contain_text(
        "Created “Zendesk (Support) – EU” (key zendesk_support_eu)"
    )

    first = rows(page).nth(0)
    first.get_by_label("PII field").fill("Ticket IDs")
    first.get_by_label("Type").select_option(label="Text (several lines)")

    page.get_by_role("button", name="Add a field").click()
    expect(rows(page)).to_have_count(2)
    second = rows(page).nth(1)
    expect(second.get_by_label("PII field")).to_be_focused()
    second.get_by_label("Help text").fill("Left blank on purpose")

    page.get_by_role("button", name="Add a field").click()
    third = rows(page).nth(2)
    third.get_by_label("PII field").fill("Contact email")
    third.get_by_label("Type").select_option(label="Email address")

    # Saving with row 2's PII field empty: the error is on row 2 only, and nothing typed is lost.
    page.get_by_role("button", name="Save fields").click()
    expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_contain_text(
        "Field 2: Enter a PII field: the name of what staff look up."
    )
    expect(rows(page).nth(1).locator("legend")).to_have_text("Field 2 needs a fix")
    expect(rows(page).nth(0).locator("legend")).to_have_text("Field 1")
    expect(rows(page).nth(2).locator("legend")).to_have_text("Field 3")
    blank = rows(page).nth(1).get_by_label("PII field")
    expect(blank).to_have_attribute("aria-invalid", "true")
    expect(blank).to_have_accessible_description("Enter a PII field: the name of what staff look up.")
    expect(blank).to_be_focused()
    assert pii_values(page) == ["Ticket IDs", "", "Contact email"]
    expect(rows(page).nth(1).get_by_label("Help text")).to_have_value("Left blank on purpose")
    expect(rows(page).nth(2).get_by_label("Type")).to_have_value("email")

    page.get_by_role("button", name="Remove field 2").click()
    expect(rows(page)).to_have_count(2)
    assert pii_values(page) == ["Ticket IDs", "Contact email"]

    with new_document(page):
        page.get_by_role("button", name="Move up field 2").click()
    assert pii_values(page) == ["Contact email", "Ticket IDs"]
    expect(rows(page).nth(0).get_by_label("PII field")).to_be_focused()
    expect(page.get_by_text("Not saved yet: press Save fields to keep these changes.")).to_be_visible()

    page.get_by_role("button", name="Save fields").click()
    expect(page.get_by_role("status").first).to_have_text("Saved 2 fields as version 1.")
    page.reload()
    assert pii_values(page) == ["Contact email", "Ticket IDs"]
    labels = [row.get_by_label("Package label").input_value() for row in rows(page).all()]
    assert labels == ["contact_email", "ticket_ids"]
    expect(rows(page).nth(0).get_by_label("Type")).to_have_value("email")
    expect(rows(page).nth(1).get_by_label("Type")).to_have_value("textarea")

    # The dashboard no longer lists it among the webhooks without fields.
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_text("Every enabled manual webhook has fields.")).to_be_visible()


def test_a_webhook_saved_with_more_fields_than_the_limit_opens_and_can_be_brought_under_it(
    browsing, live_server
):
    fields = [{"pii_field": f"Field {n}"} for n in range(MAX_FIELDS)]
    key = live_server.create_webhook("Legacy CRM", fields)
    with live_server.app.app_context():  # saved before the limit: written past the service's rule
        webhook = connection_service.get_connection(key).manual_webhook
        webhook.fields = [
            *webhook.fields,
            *(
                {**webhook.fields[0], "pii_field": f"Old {n}", "dsr_package_label": f"old_{n}"}
                for n in range(30)
            ),
        ]
        db.session.commit()
    page = browsing.sign_in(live_server.create_user("admin"))

    page.goto(f"{live_server.url}/admin/connections/{key}/fields")

    expect(page.get_by_role("note").filter(has_text="This webhook has 230 fields")).to_contain_text(
        "saving here keeps the fields shown and removes the other 30."
    )
    expect(rows(page)).to_have_count(MAX_FIELDS)
    expect(page.get_by_role("button", name="Add a field")).to_have_count(0)
    page.get_by_role("button", name="Save fields").last.click()
    expect(page.get_by_role("status").first).to_contain_text(f"Saved {MAX_FIELDS} fields as version 2.")
    expect(page.get_by_role("note").filter(has_text="This webhook has")).to_have_count(0)
