"""A manual-input form completed with the keyboard alone: skip link, tab order, errors, resume."""

import re

import pytest

from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

FIELDS = [
    {"pii_field": "Full name", "required": True},
    {"pii_field": "Contact email", "type": "email"},
    {"pii_field": "Marketing consent", "type": "boolean"},
    {"pii_field": "Notes", "type": "textarea"},
]
# A link's or button's text; an <input type="submit"> shows its value.
FOCUSED_TEXT = """() => {
  const element = document.activeElement;
  const text = element.tagName === "INPUT" ? element.value : element.textContent;
  return (text || "").replace(/\\s+/g, " ").trim();
}"""


def focused_text(page) -> str:
    return page.evaluate(FOCUSED_TEXT)


def tab_to(page, text: str, limit: int = 40) -> None:
    """Press Tab until the focused element reads ``text`` (as a screen reader would name a link/button)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused_text(page) == text:
            return
    raise AssertionError(f"{text!r} was not reached with {limit} presses of Tab")


def test_a_manual_input_form_can_be_completed_with_the_keyboard_only(browsing, live_server):
    key = live_server.create_webhook("Support desk", FIELDS)
    request_id = live_server.create_request("jane.customer@example.com")
    page = browsing.sign_in(live_server.create_user("staff"))
    page.goto(f"/requests/{request_id}")

    # The first Tab reaches the skip link; Enter jumps over the navigation into the content.
    page.keyboard.press("Tab")
    assert focused_text(page) == "Skip to content"
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    tab_to(page, "Enter data for Support desk")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/manual/{key}$"))

    expect(page.get_by_label("Full name")).to_be_focused()
    page.keyboard.type("Jane Customer")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Contact email")).to_be_focused()
    page.keyboard.type("jane-at-example")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Marketing consent")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Notes")).to_be_focused()
    page.keyboard.type("Line one")
    page.keyboard.press("Enter")
    page.keyboard.type("Line two")
    page.keyboard.press("Tab")
    assert focused_text(page) == "Save"
    page.keyboard.press("Enter")

    # The error is announced with its input, which has the focus; everything typed is still there.
    email = page.get_by_label("Contact email")
    expect(email).to_have_accessible_description("Enter an email address, e.g. name@example.com.")
    expect(email).to_be_focused()
    expect(page.get_by_label("Full name")).to_have_value("Jane Customer")
    expect(page.get_by_label("Marketing consent")).to_have_value("true")
    expect(page.get_by_label("Notes")).to_have_value("Line one\nLine two")

    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("jane@example.com")
    page.keyboard.press("Enter")  # implicit submission presses the form's first button: Save
    expect(page).to_have_url(re.compile(rf"/requests/{request_id}$"))
    expect(page.locator("main > .alert").first).to_have_text(
        "Saved “Support desk”: data entered. Every manual system is done: you can resume the request now."
    )

    tab_to(page, "Resume")
    page.keyboard.press("Enter")
    expect(page.locator("h1 ~ .badge").first).to_have_text("Complete")
    assert live_server.status(request_id) == "complete"
