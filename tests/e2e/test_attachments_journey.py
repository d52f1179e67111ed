"""Staff attach files to an entry in the browser: a refused file is named, the accepted ones are kept."""

import re

import pytest

from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
CSV = b"ticket,subject\n1042,Refund\n"


def test_staff_upload_files_through_the_form(browsing, live_server):
    vendor = live_server.create_webhook(
        "Vendor portal", [{"pii_field": "Customer id"}, {"pii_field": "Ticket exports", "type": "file"}]
    )
    request_id = live_server.create_request("jane.customer@example.com")
    page = browsing.sign_in(live_server.create_user("staff", name="Sam Staff"))
    page.goto(f"{live_server.url}/requests/{request_id}/manual/{vendor}")

    files = page.get_by_label("Ticket exports")
    expect(files).to_have_attribute("type", "file")
    # A PDF named .png is refused, by name; nothing is saved and the page says so.
    files.set_input_files(
        [
            {"name": "tickets.csv", "mimeType": "text/csv", "buffer": CSV},
            {"name": "scan.png", "mimeType": "image/png", "buffer": PDF},
        ]
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_label("Ticket exports")).to_have_accessible_description(
        re.compile("The file “scan.png” was refused: its name ends in .png but its content is a PDF document")
    )

    page.get_by_label("Customer id").fill("C-1042")
    page.get_by_label("Ticket exports").set_input_files(
        [
            {"name": "tickets.csv", "mimeType": "text/csv", "buffer": CSV},
            {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": PDF},
        ]
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("main > .alert").first).to_contain_text("Saved “Vendor portal”: data entered.")

    # Back on the form: the saved files are listed, each kept unless unchecked.
    page.goto(f"{live_server.url}/requests/{request_id}/manual/{vendor}")
    expect(page.get_by_label("Keep tickets.csv")).to_be_checked()
    expect(page.get_by_label("Keep scan.pdf")).to_be_checked()
    page.get_by_label("Keep tickets.csv").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("main > .alert").first).to_contain_text("Saved “Vendor portal”: data entered.")
    page.goto(f"{live_server.url}/requests/{request_id}/manual/{vendor}")
    expect(page.get_by_label("Keep scan.pdf")).to_be_checked()
    expect(page.get_by_label("Keep tickets.csv")).to_have_count(0)
