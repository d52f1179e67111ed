"""The wrong role gets a 403 page it can leave; signed-out visitors are sent to sign in."""

import re

import pytest

from tests.e2e.helpers import PASSWORD, expect

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("role", "path"),
    [("staff", "/admin/connections"), ("staff", "/packages/"), ("reviewer", "/requests/new")],
)
def test_a_wrong_role_gets_a_forbidden_page(browsing, live_server, role, path):
    page = browsing.sign_in(live_server.create_user(role))
    response = page.goto(path)
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden (403)")
    expect(page.get_by_text("You don't have permission to open this page.")).to_be_visible()
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def test_signed_out_visitors_are_sent_to_sign_in_and_back(browsing, live_server):
    email = live_server.create_user("admin")
    page = browsing.page
    page.goto("/admin/audit")
    expect(page).to_have_url(re.compile(r"/auth/login\?next=%2Fadmin%2Faudit"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/admin/audit$"))
