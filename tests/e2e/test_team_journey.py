"""The team workflow in a browser: an admin gives a system its owners and assigns tasks in bulk; a staff
member works through "My tasks" (claims one, enters the data, sees it leave the list)."""

import re

import pytest

from tests.e2e.helpers import expect, new_document

pytestmark = pytest.mark.e2e

CRM = [{"pii_field": "First name"}]
ARCHIVE = [{"pii_field": "Box number"}]


def flash(page):
    return page.locator("main > .alert").first


def test_an_admin_sets_owners_and_assigns_the_unassigned_tasks_in_bulk(browsing, live_server):
    crm = live_server.create_webhook("Customer CRM", CRM)
    live_server.create_user("staff", "sam@example.com", name="Sam Staff")
    live_server.create_user("staff", "tia@example.com", name="Tia Staff")
    first = live_server.create_request("first@example.com")
    second = live_server.create_request("second@example.com")
    page = browsing.sign_in(live_server.create_user("admin", name="Ada Admin"))

    # The dashboard says two tasks have nobody.
    expect(page.get_by_role("link", name=re.compile("2 unassigned tasks"))).to_be_visible()

    # Owners, on the webhook's page.
    page.goto(f"/admin/connections/{crm}/fields")
    owners = page.get_by_role("region", name="Owners")
    owners.get_by_label("Tia Staff").check()
    with new_document(page):
        owners.get_by_role("button", name="Save owners").click()
    expect(flash(page)).to_have_text("Owners of “Customer CRM”: Tia Staff.")
    expect(page.get_by_role("region", name="Owners").get_by_label("Tia Staff")).to_be_checked()
    third = live_server.create_request("third@example.com")  # a new waiting request goes to the owner

    # Bulk assignment of the two older ones, from the unassigned tab.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    page.get_by_role("navigation", name="Task lists").get_by_role("link", name="Unassigned").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(3)  # the header and the two older tasks
    for request_id in (first, second):
        page.get_by_role("checkbox", name=re.compile(request_id)).check()
    page.get_by_label("Assign selected to").select_option(label="Sam Staff")
    with new_document(page):
        page.get_by_role("button", name="Assign selected").click()
    expect(flash(page)).to_have_text("2 tasks assigned.")
    expect(page.get_by_role("heading", name="No unassigned tasks")).to_be_visible()

    page.goto("/tasks/?view=all")
    table = page.get_by_role("table")
    expect(table.get_by_role("row").filter(has_text="Sam Staff")).to_have_count(2)
    expect(table.get_by_role("row").filter(has_text="Tia Staff")).to_have_count(1)
    expect(table.get_by_role("row").filter(has_text=third[:12])).to_contain_text("Tia Staff")

    # The workload per assignee is on the dashboard.
    page.goto("/")
    workload = page.get_by_role("region", name="Workload")
    expect(workload.get_by_role("row", name=re.compile("Sam Staff"))).to_contain_text("2")
    live_server.assert_no_server_errors()


def test_a_staff_member_works_through_my_tasks(browsing, live_server):
    live_server.create_webhook("Customer CRM", CRM)
    live_server.create_webhook("Paper archive", ARCHIVE)
    request_id = live_server.create_request("jane.customer@example.com")
    page = browsing.sign_in(live_server.create_user("staff", name="Sam Staff"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    expect(page.get_by_role("heading", name="You have no open tasks")).to_be_visible()
    page.get_by_role("navigation", name="Task lists").get_by_role("link", name="Unassigned").click()
    for _ in range(2):
        with new_document(page):
            page.get_by_role("button", name="Claim").first.click()
    expect(flash(page)).to_have_text(re.compile("You have the task for"))
    expect(page.get_by_role("heading", name="No unassigned tasks")).to_be_visible()

    page.get_by_role("navigation", name="Task lists").get_by_role("link", name="My tasks").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(3)
    crm_row = rows.filter(has_text="Customer CRM")
    expect(crm_row).to_contain_text("0 of 2")
    crm_row.get_by_role("link", name="Enter data").click()
    page.get_by_label("First name").fill("Jane")
    with new_document(page):
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}$"))

    # A note for the team, kept in the timeline with its line breaks.
    page.get_by_label("Add a note").fill("Archive box is off site.\nAsked facilities.")
    with new_document(page):
        page.get_by_role("button", name="Add note").click()
    expect(flash(page)).to_have_text("Note added.")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Archive box is off site.\nAsked facilities.")
    expect(timeline).to_contain_text("by Sam Staff")

    # Done tasks leave the list; what is left is the archive, with its progress.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("Paper archive")
    expect(rows.nth(1)).to_contain_text("1 of 2")
    page.get_by_label("Due").select_option("overdue")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", name=re.compile("You have no open tasks matching"))).to_be_visible()
    live_server.assert_no_server_errors()
