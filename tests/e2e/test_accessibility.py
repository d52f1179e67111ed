"""axe-core on every page a user reaches, as each role, including the pages' error and empty states.

A page fails on any serious or critical violation (and on any breach of the structure rules: landmarks,
one h1, headings in order). A guard checks that every HTML page of the URL map was visited, so a new page
cannot slip past the check.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask import request, request_finished

from portal.demo import DEMO_DATABASE_KEY, add_demo_database
from portal.execution import dispatch
from portal.extensions import db
from portal.models import Notification, PrivacyRequest, utcnow
from portal.notifications.mail import unsubscribe_token
from portal.scopes import ROLE_SCOPES
from portal.services import (
    delivery,
    manual_inputs,
    oauth_clients,
    policies,
    privacy_requests,
    storage,
    tokens,
    users,
)
from tests.e2e.helpers import SETUP, axe_problems, expect, new_document

pytestmark = pytest.mark.e2e

# GET endpoints that answer with something other than a page (files, health, assets).
NOT_PAGES = {
    "static",
    "bootstrap.static",
    "healthz",
    "favicon",
    "admin.audit_csv",
    "admin.download_dataset",
    "packages.download_json",
    "packages.download_zip",
    "delivery.download_json",
    "delivery.download_zip",
    "packages.download_attachment",  # files, served as opaque attachments
    "delivery.download_attachment",
    "requests.saved_file",
}
EVERY_TYPE = [
    {"pii_field": "Full name", "required": True, "help_text": "As written in the account."},
    {"pii_field": "Notes", "type": "textarea"},
    {"pii_field": "Contact email", "type": "email"},
    {"pii_field": "Orders", "type": "number"},
    {"pii_field": "Last login", "type": "date"},
    {"pii_field": "Marketing consent", "type": "boolean"},
]

Step = tuple[str, str | Callable]


def _set_status(server, request_id: str, status: str, error_message: str | None = None) -> None:
    """Test data only: requests in states a run rarely reaches on its own (error, pending approval)."""
    with server.app.app_context():
        privacy_request = db.session.get(PrivacyRequest, request_id)
        privacy_request.status = status
        privacy_request.error_message = error_message
        db.session.commit()


def _populate(server) -> dict[str, str]:
    ids = {
        role: server.create_user(role, name=f"Ada {role.title()}") for role in ("admin", "staff", "reviewer")
    }
    leaver = server.create_user("staff", "leaver@example.com")
    ids["crm"] = server.create_webhook("Customer CRM", EVERY_TYPE)
    ids["archive"] = server.create_webhook("Paper archive", [{"pii_field": "Box number"}])
    ids["empty"] = server.create_webhook("Warehouse (no fields yet)", [])
    with server.app.app_context():
        add_demo_database()
        admin = users.find_by_email(ids["admin"])
        tokens.create_token(admin, "Nightly export", SETUP)
        oauth_clients.create_client(admin, ["connection:read"], SETUP, granted_by=ROLE_SCOPES["admin"])
        ids["storage"] = storage.create_storage_config(
            name="Legal archive (S3)",
            storage_type="s3",
            details={
                "bucket": "legal-archive",
                "endpoint_url": "http://127.0.0.1:9",
                "region_name": "eu-west-1",
            },
            actor=SETUP,
        ).key
        shop = policies.upsert_policy(
            name="Shop access", key="shop_access", drp_action="access", execution_timeframe=30, actor=SETUP
        )
        rule = policies.upsert_rule(
            shop,
            name="Archive access",
            key="archive_access",
            action_type="access",
            storage_destination_key=ids["storage"],
            masking_strategy=None,
            actor=SETUP,
        )
        policies.upsert_target(rule, name=None, key="contact", data_category="user.contact", actor=SETUP)
        gone = users.find_by_email(leaver)
        users.update_user(gone, SETUP, role="staff", name="", active=False)
        ids["admin_id"], ids["leaver_id"] = str(admin.id), str(gone.id)
        db.session.commit()
    ids["waiting"] = server.create_request("waiting@example.com", external_id="T-1")
    ids["half"] = server.create_request("half@example.com")
    server.save_input(ids["half"], ids["archive"], {})
    ids["complete"] = server.complete_request(
        "done@example.com",
        {ids["crm"]: {"full_name": "Jane Customer", "orders": "3"}, ids["archive"]: {}},
    )
    ids["error"] = server.create_request("error@example.com")
    _set_status(server, ids["error"], "error", "The customer database could not be reached.")
    ids["pending"] = server.create_request("pending@example.com")
    _set_status(server, ids["pending"], "pending")
    with server.app.app_context():
        reviewer = users.find_by_email(ids["reviewer"])
        ids["unsubscribe"] = f"/notifications/unsubscribe/{unsubscribe_token(reviewer.id, ['package_ready'])}"
        # A mail the server refused, for the admin dashboard's delivery problems.
        db.session.add(
            Notification(
                user_id=reviewer.id,
                kind="package_ready",
                subject_key=ids["complete"],
                period="e2e",
                status="failed",
                attempts=1,
                last_error="SMTPRecipientsRefused 550",
                last_error_at=utcnow(),
            )
        )
        db.session.commit()
    ids.update(_released(server, ids))
    return ids


def _released(server, ids: dict[str, str]) -> dict[str, str]:
    """Two released packages and their subjects' links: one mailed (the code page first), one for a
    request with only a phone number (staff hand the link over; it opens the report)."""
    links: dict[str, str] = {}
    emailed = server.complete_request(
        "released@example.com", {ids["crm"]: {"full_name": "Jane"}, ids["archive"]: {}}
    )
    with server.app.app_context():
        phone_only = privacy_requests.create_request(
            identity={"phone_number": "+15555550123"}, policy_key="default_access_policy", actor=SETUP
        ).id
        dispatch.commit_and_run()
        manual_inputs.save_manual_input(phone_only, ids["crm"], {"full_name": "Jane", "orders": "3"}, SETUP)
        manual_inputs.save_manual_input(phone_only, ids["archive"], {}, SETUP)
        privacy_requests.resume_request(phone_only, SETUP)
        dispatch.commit_and_run()
        for name, request_id in (("emailed", emailed), ("phone", phone_only)):
            links[name] = urlsplit(delivery.approve(request_id, SETUP).url).path
            db.session.commit()
    return {"released_link": links["emailed"], "phone_link": links["phone"], "released": emailed}


def _click(name: str, fill: dict[str, str] | None = None, role: str = "button") -> Callable:
    def step(page) -> None:
        for label, value in (fill or {}).items():
            page.get_by_label(label).fill(value)
        with new_document(page):
            page.get_by_role(role, name=name, exact=True).click()

    return step


def _then(path: str, action: Callable) -> Callable:
    def step(page) -> None:
        page.goto(path)
        action(page)

    return step


def _blank_first_field(page) -> None:
    page.locator("fieldset[data-field-row]").first.get_by_label("PII field").fill("")
    with new_document(page):
        page.get_by_role("button", name="Save fields").click()


def _turn_off_error_mails(page) -> None:
    """The last admin receiving error mails tries to turn them off: refused, with a message."""
    page.locator("fieldset", has_text="A request fell into error").get_by_label("Off").check()
    with new_document(page):
        page.get_by_role("button", name="Save settings").click()


def _steps(ids: dict[str, str]) -> dict[str, list[Step]]:
    crm, waiting, complete = ids["crm"], ids["waiting"], ids["complete"]
    manual = f"/requests/{waiting}/manual/{crm}"
    return {
        "admin": [
            ("dashboard", "/"),
            ("queue", "/requests/"),
            ("queue, all statuses", "/requests/?status=all"),
            ("new request", "/requests/new"),
            ("new request with errors", _click("Create request", {"Email address": "not-an-email"})),
            ("request waiting for input", f"/requests/{waiting}"),
            ("request, identity revealed", _click("Reveal")),
            ("request in error", f"/requests/{ids['error']}"),
            ("request pending approval", f"/requests/{ids['pending']}"),
            ("request complete", f"/requests/{complete}"),
            ("manual input form", manual),
            (
                "manual input form with errors",
                _click("Save", {"Contact email": "nope", "Orders": "many", "Last login": "2024-13-45"}),
            ),
            ("packages", "/packages/"),
            ("package", f"/packages/{complete}"),
            ("connections", "/admin/connections"),
            ("new connection", "/admin/connections/new"),
            ("new connection with errors", _click("Create and define fields")),
            ("edit connection", f"/admin/connections/{crm}/edit"),
            ("field editor", f"/admin/connections/{crm}/fields"),
            ("field editor with errors", _blank_first_field),
            ("field editor, no fields yet", f"/admin/connections/{ids['empty']}/fields"),
            ("delete connection", f"/admin/connections/{crm}/delete"),
            ("delete fields", f"/admin/connections/{crm}/fields/delete"),
            ("new database connection", "/admin/databases/new"),
            ("new database connection with errors", _click("Create and enter connection details")),
            ("database connection", f"/admin/connections/{DEMO_DATABASE_KEY}/database"),
            (
                "database connection, dataset with errors",
                _click("Validate and save", {"…or paste the YAML": "dataset: [{fides_key: 1"}),
            ),
            ("storage", "/admin/storage"),
            ("new S3 destination", "/admin/storage/new?type=s3"),
            ("new S3 destination with errors", _click("Create destination")),
            ("new local destination", "/admin/storage/new?type=local"),
            ("storage destination", f"/admin/storage/{ids['storage']}"),
            ("storage destination, keys with errors", _click("Save keys")),
            ("users", "/admin/users"),
            ("new user", "/admin/users/new"),
            ("new user with errors", _click("Create user")),
            ("user created, password shown once", _click("Create user", {"Email": "new.person@example.com"})),
            ("edit user", f"/admin/users/{ids['leaver_id']}"),
            ("deactivate user", f"/admin/users/{ids['admin_id']}/deactivate"),
            ("reactivate user", f"/admin/users/{ids['leaver_id']}/reactivate"),
            ("tokens", "/admin/tokens"),
            ("token created", _click("Create token", {"Name": "Reporting script"})),
            ("OAuth clients", "/admin/tokens/clients"),
            ("audit log", "/admin/audit"),
            ("API reference", "/api-docs"),
            ("change password", "/auth/password"),
            ("change password with errors", _click("Change password")),
            ("notification settings", "/notifications/settings"),
            ("notification settings with errors", _turn_off_error_mails),
            ("tasks, all", "/tasks/?view=all"),
            ("tasks, unassigned with bulk assignment", "/tasks/?view=unassigned"),
            (
                "request with a note",
                _then(f"/requests/{waiting}", _click("Add note", {"Add a note": "Called."})),
            ),
            ("request with a note refused", _click("Add note")),
            ("policies", "/admin/policies"),
            ("new policy", "/admin/policies/new"),
            ("new policy with errors", _click("Save policy")),
            ("edit policy", _then("/admin/policies", _click("Edit Default access policy", role="link"))),
            ("policy with rules", _then("/admin/policies", _click("Edit Shop access", role="link"))),
            ("not found", "/requests/pri_does-not-exist"),
        ],
        "staff": [
            ("dashboard", "/"),
            ("queue", "/requests/"),
            ("request", f"/requests/{ids['half']}"),
            ("my tasks", "/tasks/"),
            ("unassigned tasks", "/tasks/?view=unassigned"),
            ("overdue tasks", "/tasks/?view=all&due=overdue"),
            ("manual input form", manual),
            ("forbidden", "/admin/connections"),
        ],
        "reviewer": [
            ("dashboard", "/"),
            ("packages", "/packages/"),
            ("package", f"/packages/{complete}"),
            ("request", f"/requests/{complete}"),
            ("notification settings", "/notifications/settings"),
            ("unsubscribe link", ids["unsubscribe"]),
            ("unsubscribed", _click("Turn these emails off")),
        ],
    }


def _check(page, label: str, problems: list[str]) -> None:
    expect(page.locator("main")).to_be_visible()
    problems.extend(f"{label} — {page.url}\n    {line}" for line in axe_problems(page))


def test_every_page_has_no_serious_accessibility_violations(browsing, live_server):
    visited: set[str] = set()

    def record(sender, response, **extra) -> None:
        if response.mimetype == "text/html" and request.endpoint:
            visited.add(request.endpoint)

    request_finished.connect(record, live_server.app)
    ids = _populate(live_server)
    page = browsing.page
    problems: list[str] = []

    page.goto("/auth/login")
    _check(page, "sign in", problems)
    _click("Sign in", {"Email": ids["staff"], "Password": "wrong password"})(page)
    _check(page, "sign in with errors", problems)

    for role, steps in _steps(ids).items():
        browsing.sign_in(ids[role])
        for label, step in steps:
            if callable(step):
                step(page)
            else:
                page.goto(step)
            _check(page, f"{role}: {label}", problems)
        with new_document(page):
            page.get_by_role("button", name="Sign out").click()

    for label, step in (
        ("subject: delivery, asks for a code", ids["released_link"]),
        ("subject: delivery, code sent", _click("Email me a code")),
        ("subject: delivery, wrong code", _click("Open my data", {"Six-digit code": "12"})),
        ("subject: delivery report (handed over by staff)", ids["phone_link"]),
        ("subject: delivery link that cannot be used", "/delivery/" + "x" * 43),
    ):
        if callable(step):
            step(page)
        else:
            page.goto(step)
        _check(page, label, problems)

    assert not problems, "Accessibility violations:\n" + "\n".join(problems)
    pages = {
        rule.endpoint
        for rule in live_server.app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.endpoint.startswith("api.") and rule.endpoint not in NOT_PAGES
    }
    assert pages - visited == set(), "Pages the accessibility check never opened"


def test_empty_states_have_no_serious_accessibility_violations(browsing, live_server):
    """A new portal: every list and dashboard says what will appear there."""
    problems: list[str] = []
    page = browsing.page
    for role, paths in {
        "admin": [
            "/",
            "/requests/",
            "/packages/",
            "/admin/connections",
            "/admin/storage",
            "/admin/tokens",
            "/admin/tokens/clients",
        ],
        "staff": ["/", "/requests/?status=error", "/tasks/", "/tasks/?view=all"],
        "reviewer": ["/", "/packages/"],
    }.items():
        browsing.sign_in(live_server.create_user(role))
        for path in paths:
            page.goto(path)
            _check(page, f"{role}: empty {path}", problems)
        with new_document(page):
            page.get_by_role("button", name="Sign out").click()
    assert not problems, "Accessibility violations:\n" + "\n".join(problems)
