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


WIDTHS = (360, 768, 1024, 1280)


def _no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide at {width}px: it scrolls sideways"
    boxed = page.evaluate(
        "() => [...document.querySelectorAll('.table-responsive')]"
        ".filter(box => box.scrollWidth > box.clientWidth + 1).length"
    )
    assert boxed == 0, f"{page.url} at {width}px has a table that scrolls sideways"


def test_every_main_page_fits_each_common_width_with_the_navigation_in_reach(browsing, live_server):
    crm = live_server.create_webhook(
        "Customer relationship management (EU region)", CRM, key="crm_muller_sohne_eu"
    )
    request_id = live_server.create_request(
        "a.rather.long.address@subdomain.example.com", external_id="T" * 40
    )
    done = live_server.complete_request(
        "done@example.com", {crm: {"first_name": "Jane", "last_name": "Customer"}}
    )
    pages = {
        "admin": ["/", "/requests/", "/admin/connections", "/admin/users", "/admin/tokens", "/admin/audit"],
        "staff": ["/", "/requests/", f"/requests/{request_id}", f"/requests/{request_id}/manual/{crm}"],
        "reviewer": ["/", "/packages/", f"/packages/{done}"],
    }
    page = browsing.page
    for role, paths in pages.items():
        browsing.context.clear_cookies()
        browsing.sign_in(live_server.create_user(role))
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            for path in paths:
                page.goto(path)
                _no_sideways_scroll(page, width)
                sign_out = page.get_by_role("button", name="Sign out")
                if width >= 1200:  # the navigation is open: every item, Sign out last, on screen
                    box = sign_out.bounding_box()
                    assert box is not None and box["x"] + box["width"] <= width, f"{path} at {width}px"
                    if role == "admin":  # the admin pages are one menu away
                        page.get_by_role("button", name="Admin", exact=True).click()
                        expect(page.get_by_role("link", name="Audit log")).to_be_visible()
                        page.keyboard.press("Escape")
                else:  # folded behind the menu button
                    expect(page.get_by_role("button", name="Toggle navigation")).to_be_visible()


def test_on_a_phone_a_request_row_shows_its_deadline_and_progress_first(browsing, live_server):
    live_server.create_webhook("Customer CRM", CRM)
    request_id = live_server.create_request("jane.customer@example.com")
    page = browsing.sign_in(live_server.create_user("staff"))
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/requests/", "/"):
        page.goto(path)
        row = page.locator("table.table-stack tbody tr").first
        due = row.locator(".stack-first").bounding_box()
        progress = row.locator(".stack-second").bounding_box()
        request_cell = row.locator("th").bounding_box()
        assert due["y"] < progress["y"] < request_cell["y"], path
        assert due["x"] + due["width"] <= 360 and progress["x"] + progress["width"] <= 360
        expect(row).to_contain_text("0 of 1 system done")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/requests/")
    row = page.locator("table.table-stack tbody tr").first
    assert (
        row.locator("th").bounding_box()["x"] < row.locator(".stack-first").bounding_box()["x"]
    )  # a table again
    assert request_id in page.content()


def test_a_long_connection_key_wraps_at_its_underscores_not_letter_by_letter(browsing, live_server):
    live_server.create_webhook("Müller & Söhne CRM", CRM, key="crm_muller_sohne_customer_relations")
    page = browsing.sign_in(live_server.create_user("admin"))
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/admin/connections")
    key = page.locator("code", has_text="crm_muller_sohne")
    lines = key.evaluate(
        "el => Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight))"
    )
    assert lines <= 2, f"the key takes {lines} lines"
