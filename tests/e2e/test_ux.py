"""Safety nets a person notices: unsaved-changes warnings, confirmations, and pages that fit a phone."""

import re

import pytest

from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

CRM = [{"pii_field": "First name"}, {"pii_field": "Last name"}]


class Dialogs:
    """Answers the page's dialogs (confirm, beforeunload) as told, and remembers what they said."""

    def __init__(self, page) -> None:
        self.seen: list[tuple[str, str]] = []
        self.accept = False
        page.on("dialog", self._answer)

    def _answer(self, dialog) -> None:
        self.seen.append((dialog.type, dialog.message))
        if self.accept:
            dialog.accept()
        else:
            dialog.dismiss()


def test_leaving_a_manual_input_form_with_unsaved_changes_asks_first(browsing, live_server):
    crm = live_server.create_webhook("Customer CRM", CRM)
    request_id = live_server.create_request("jane.customer@example.com")
    page = browsing.sign_in(live_server.create_user("staff"))
    dialogs = Dialogs(page)
    form_url = re.compile(rf"/manual/{crm}$")

    # Untouched: leaving is silent.
    page.goto(f"/requests/{request_id}/manual/{crm}")
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}$"))
    assert dialogs.seen == []

    page.get_by_role("link", name="Enter data for Customer CRM").click()
    page.get_by_label("First name").fill("Jane")
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(form_url)
    assert [kind for kind, _ in dialogs.seen] == ["beforeunload"]
    expect(page.get_by_label("First name")).to_have_value("Jane")

    # "Nothing found" would throw the typed value away: it asks, and staying keeps it.
    page.get_by_role("button", name="Nothing found in this system").click()
    assert dialogs.seen[-1] == ("confirm", "Save “nothing found” and clear the values in the fields?")
    expect(page).to_have_url(form_url)
    expect(page.get_by_label("First name")).to_have_value("Jane")

    # Saving is not leaving: no warning.
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}$"))
    assert len(dialogs.seen) == 2


def test_disabling_and_deleting_a_connection_ask_for_confirmation(browsing, live_server):
    crm = live_server.create_webhook("Customer CRM", CRM)
    request_id = live_server.create_request("jane.customer@example.com")
    live_server.save_input(request_id, crm, {"first_name": "Jane"})
    page = browsing.sign_in(live_server.create_user("admin"))
    dialogs = Dialogs(page)
    page.goto("/admin/connections")
    row = page.get_by_role("row").filter(has_text="Customer CRM")

    row.get_by_role("button", name="Disable").click()
    assert dialogs.seen == [
        (
            "confirm",
            "Disable “Customer CRM”? Requests stop waiting for it, and packages built from now on leave it out.",
        )
    ]
    expect(row.get_by_text("Enabled", exact=True)).to_be_visible()

    dialogs.accept = True
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("main > .alert").first).to_have_text(
        "Disabled “Customer CRM”: requests no longer wait for it."
    )
    expect(row.get_by_text("Disabled", exact=True)).to_be_visible()

    # Deleting goes through a page that says what will be lost; Cancel changes nothing.
    row.get_by_role("link", name="Delete Customer CRM").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete the connection “Customer CRM”?")
    expect(page.get_by_role("main")).to_contain_text("1 entry staff saved for privacy requests.")
    page.get_by_role("link", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("link", name="Delete Customer CRM").click()
    page.get_by_role("button", name="Delete the connection").click()
    expect(page.locator("main > .alert").first).to_have_text("Deleted “Customer CRM” (key customer_crm).")
    expect(
        page.get_by_role("heading", name="No connections yet — create the first manual webhook")
    ).to_be_visible()


def _fits(page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} is {width}px wide: it scrolls sideways on a 360px screen"


def _oauth_client(server) -> None:
    """An OAuth client with many scopes, whose long id and scope list must wrap on a phone."""
    from portal.extensions import db
    from portal.scopes import ROLE_SCOPES
    from portal.services import oauth_clients, users
    from tests.e2e.helpers import SETUP

    email = server.create_user("admin", "client.creator@example.com")
    with server.app.app_context():
        creator = users.find_by_email(email)
        scopes = ROLE_SCOPES["admin"]
        oauth_clients.create_client(creator, sorted(scopes), SETUP, granted_by=scopes)
        db.session.commit()


def test_the_main_pages_fit_a_360px_wide_screen(browsing, live_server):
    crm = live_server.create_webhook("Customer relationship management (EU region)", CRM)
    request_id = live_server.create_request(
        "a.rather.long.address@subdomain.example.com", external_id="T" * 60
    )
    done = live_server.complete_request(
        "done@example.com", {crm: {"first_name": "Jane", "last_name": "Customer"}}
    )
    _oauth_client(live_server)
    pages = {
        "staff": [
            "/",
            "/requests/",
            f"/requests/{request_id}",
            f"/requests/{request_id}/manual/{crm}",
            "/requests/new",
        ],
        "admin": [
            "/",
            "/admin/connections",
            "/admin/connections/new",
            f"/admin/connections/{crm}/fields",
            "/admin/storage",
            "/admin/storage/new?type=s3",
            "/admin/users",
            "/admin/tokens",
            "/admin/tokens/clients",
            "/admin/audit",
            "/api-docs",
        ],
        "reviewer": ["/", "/packages/", f"/packages/{done}"],
    }
    page = browsing.page
    page.set_viewport_size({"width": 360, "height": 740})
    for role, paths in pages.items():
        browsing.context.clear_cookies()  # signed out: the next role signs in
        browsing.sign_in(live_server.create_user(role))
        for path in paths:
            page.goto(path)
            _fits(page)
        # The navigation folds behind a button that opens it.
        toggle = page.get_by_role("button", name="Toggle navigation")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")
        ).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
