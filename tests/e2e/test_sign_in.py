"""First sign-in: a user created with a one-time password must choose their own before anything else."""

import re

import pytest

from tests.e2e.helpers import PASSWORD, expect

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a-much-better-secret-77"


def test_first_sign_in_forces_a_password_change_then_the_new_password_works(browsing, live_server):
    email = live_server.create_user("staff", "new.starter@example.com", must_change_password=True)
    page = browsing.page

    page.goto("/requests/")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    expect(page.get_by_role("status")).to_have_text("Please sign in to continue.")

    # A wrong password: the message sits under the password input, which gets the focus; the email stays.
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not-my-password")
    page.get_by_role("button", name="Sign in").click()
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description("Wrong email or password, or the account is deactivated.")
    expect(password).to_be_focused()
    expect(page.get_by_label("Email")).to_have_value(email)

    password.fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/auth/password$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Change your password")
    expect(page.get_by_role("alert")).to_have_text("Please choose a new password before you continue.")

    # Nothing else opens until the password is changed.
    page.goto("/requests/")
    expect(page).to_have_url(re.compile(r"/auth/password$"))

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label(re.compile(r"^New password")).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password").fill(NEW_PASSWORD + "-typo")
    page.get_by_role("button", name="Change password").click()
    repeat = page.get_by_label("Repeat new password")
    expect(repeat).to_have_accessible_description("The two passwords differ.")
    expect(repeat).to_be_focused()

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label(re.compile(r"^New password")).fill(NEW_PASSWORD)
    repeat.fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("status").first).to_have_text("Your password has been changed.")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You have been signed out.")
    browsing.sign_in(email, NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    page.goto("/requests/")
    expect(page.get_by_role("heading", name="Requests", level=1)).to_be_visible()
