"""Object-level access: every route of ``app.url_map``, called as every role, answers as written.

``HTML`` and ``API`` below are the expectations, one row per (endpoint, method): the status each caller
gets on a populated portal (``tests/hardening_helpers.build_world``). A route added without a row, or a
row whose route is gone, fails ``test_every_route_has_a_row``: granting access is a reviewed change of
this table, never a side effect.

Callers go from least to most privileged on one fresh portal per row, so a state change made by an
allowed role (staff resuming a request, say) is what the next caller sees. ``LOGIN`` is a 302 to the
sign-in page. The URL parameters point at real objects (``PARAMS``), so a 403 means "not for your role"
and never "not found".
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ApiToken, ManualInput, PrivacyRequest, User
from portal.services import tokens, users
from tests.factories import make_user
from tests.hardening_helpers import (
    FORM_DATA,
    ROLES,
    TEST_ACTOR,
    WEBHOOK_KEY,
    api_body,
    build_world,
    params_for,
    route_methods,
    sign_in,
    text_of,
    url_for_rule,
)

LOGIN = "login"
FORBIDDEN_PAGE = "You don't have permission to open this page."

# (endpoint, method) → (anonymous, reviewer, staff, admin)
HTML: dict[tuple[str, str], tuple] = {
    ("static", "GET"): (200, 200, 200, 200),
    ("bootstrap.static", "GET"): (200, 200, 200, 200),
    ("healthz", "GET"): (200, 200, 200, 200),
    ("favicon", "GET"): (200, 200, 200, 200),
    ("auth.login", "GET"): (200, 302, 302, 302),
    ("auth.login", "POST"): (200, 302, 302, 302),
    ("auth.logout", "POST"): (LOGIN, LOGIN, LOGIN, LOGIN),
    ("auth.change_password", "GET"): (LOGIN, 200, 200, 200),
    ("auth.change_password", "POST"): (LOGIN, 200, 200, 200),
    ("dashboard.index", "GET"): (LOGIN, 200, 200, 200),
    ("dashboard.api_docs", "GET"): (LOGIN, 200, 200, 200),
    # notifications: everyone chooses their own; the unsubscribe link needs no sign-in, only its token
    ("notifications.settings", "GET"): (LOGIN, 200, 200, 200),
    ("notifications.settings", "POST"): (LOGIN, 200, 200, 200),
    ("unsubscribe.confirm", "GET"): (200, 200, 200, 200),
    ("unsubscribe.confirm", "POST"): (200, 200, 200, 200),
    # the data subject's page: public, but a link that is not a delivery link opens nothing for anyone
    ("delivery.page", "GET"): (404, 404, 404, 404),
    ("delivery.send_code", "POST"): (404, 404, 404, 404),
    ("delivery.verify", "POST"): (404, 404, 404, 404),
    ("delivery.download_json", "GET"): (404, 404, 404, 404),
    ("delivery.download_zip", "GET"): (404, 404, 404, 404),
    ("delivery.download_attachment", "GET"): (404, 404, 404, 404),
    # requests: every role sees them; only staff and admins change them, only admins review
    ("requests.queue", "GET"): (LOGIN, 200, 200, 200),
    ("requests.queue", "POST"): (LOGIN, 302, 302, 302),
    ("requests.new", "GET"): (LOGIN, 403, 200, 200),
    ("requests.new", "POST"): (LOGIN, 403, 302, 302),
    ("requests.detail", "GET"): (LOGIN, 200, 200, 200),
    ("requests.reveal_identity", "POST"): (LOGIN, 200, 200, 200),
    ("requests.manual_input", "GET"): (LOGIN, 403, 200, 200),
    ("requests.saved_file", "GET"): (LOGIN, 403, 404, 404),  # no file of that id on the entry
    ("requests.manual_input", "POST"): (LOGIN, 403, 302, 302),
    ("requests.manual_input_identity", "POST"): (LOGIN, 403, 200, 200),
    ("requests.resume", "POST"): (LOGIN, 403, 302, 302),
    ("requests.approve", "POST"): (LOGIN, 403, 403, 302),
    ("requests.deny", "POST"): (LOGIN, 403, 403, 302),
    ("requests.retry", "POST"): (LOGIN, 403, 403, 302),
    # the subject's link: every role may re-issue or revoke it (refused here: the request is not released)
    ("requests.delivery_link", "POST"): (LOGIN, 302, 302, 302),
    ("requests.revoke_delivery_link", "POST"): (LOGIN, 302, 302, 302),
    # the team workflow: staff and admins; the service narrows (author, assignee or admin) and says so
    ("requests.add_note", "POST"): (LOGIN, 403, 302, 302),
    ("requests.delete_note", "POST"): (LOGIN, 403, 302, 302),
    ("requests.cancel", "POST"): (LOGIN, 403, 302, 302),
    ("requests.extend", "POST"): (LOGIN, 403, 302, 302),
    ("requests.subject_told", "POST"): (LOGIN, 403, 302, 302),
    ("tasks.index", "GET"): (LOGIN, 403, 200, 200),
    ("tasks.claim", "POST"): (LOGIN, 403, 302, 302),
    ("tasks.release", "POST"): (LOGIN, 403, 302, 302),
    ("tasks.assign", "POST"): (LOGIN, 403, 302, 302),
    ("tasks.hand_over", "POST"): (LOGIN, 403, 302, 302),
    ("tasks.bulk_assign", "POST"): (LOGIN, 403, 403, 302),
    # packages: reviewers and admins only
    ("packages.index", "GET"): (LOGIN, 200, 403, 200),
    ("packages.detail", "GET"): (LOGIN, 200, 403, 200),
    ("packages.download_json", "GET"): (LOGIN, 200, 403, 200),
    ("packages.download_zip", "GET"): (LOGIN, 200, 403, 200),
    # no file of that id in the package: found only after the role check
    ("packages.download_attachment", "GET"): (LOGIN, 404, 403, 404),
    # review and delivery: the reviewer approves first, so the admin finds it released already
    ("packages.approve", "POST"): (LOGIN, 302, 403, 302),
    ("packages.send_back", "POST"): (LOGIN, 400, 403, 400),  # no systems, no reason posted
    ("packages.resend_link", "POST"): (LOGIN, 302, 403, 302),
    ("packages.revoke_link", "POST"): (LOGIN, 302, 403, 302),
    ("packages.retry_storage", "POST"): (LOGIN, 302, 403, 302),
    # admin: admins only
    ("admin.audit", "GET"): (LOGIN, 403, 403, 200),
    ("admin.audit_csv", "GET"): (LOGIN, 403, 403, 200),
    ("admin.connections", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_connection", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_connection", "POST"): (LOGIN, 403, 403, 200),
    ("admin.edit_connection", "GET"): (LOGIN, 403, 403, 200),
    ("admin.edit_connection", "POST"): (LOGIN, 403, 403, 302),
    ("admin.toggle_connection", "POST"): (LOGIN, 403, 403, 400),
    ("admin.delete_connection", "GET"): (LOGIN, 403, 403, 200),
    ("admin.delete_connection", "POST"): (LOGIN, 403, 403, 302),
    ("admin.webhook_fields", "GET"): (LOGIN, 403, 403, 200),
    ("admin.webhook_fields", "POST"): (LOGIN, 403, 403, 200),
    ("admin.delete_webhook", "GET"): (LOGIN, 403, 403, 200),
    ("admin.delete_webhook", "POST"): (LOGIN, 403, 403, 302),
    ("admin.webhook_owners", "POST"): (LOGIN, 403, 403, 302),
    ("admin.new_database", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_database", "POST"): (LOGIN, 403, 403, 200),
    ("admin.database", "GET"): (LOGIN, 403, 403, 404),
    ("admin.database_secrets", "POST"): (LOGIN, 403, 403, 404),
    ("admin.test_database", "POST"): (LOGIN, 403, 403, 404),
    ("admin.save_datasets", "POST"): (LOGIN, 403, 403, 404),
    ("admin.download_dataset", "GET"): (LOGIN, 403, 403, 404),
    ("admin.delete_dataset", "POST"): (LOGIN, 403, 403, 404),
    ("admin.storage_configs", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_storage", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_storage", "POST"): (LOGIN, 403, 403, 200),
    ("admin.edit_storage", "GET"): (LOGIN, 403, 403, 200),
    ("admin.edit_storage", "POST"): (LOGIN, 403, 403, 400),  # no name posted
    ("admin.storage_secrets", "POST"): (LOGIN, 403, 403, 400),
    ("admin.test_storage", "POST"): (LOGIN, 403, 403, 302),
    ("admin.delete_storage", "POST"): (LOGIN, 403, 403, 302),
    ("admin.policies_index", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_policy", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_policy", "POST"): (LOGIN, 403, 403, 200),  # nothing posted: the form says what is missing
    ("admin.edit_policy", "GET"): (LOGIN, 403, 403, 200),
    ("admin.edit_policy", "POST"): (LOGIN, 403, 403, 302),  # nothing posted: the stored values are saved
    ("admin.users", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_user", "GET"): (LOGIN, 403, 403, 200),
    ("admin.new_user", "POST"): (LOGIN, 403, 403, 200),
    ("admin.edit_user", "GET"): (LOGIN, 403, 403, 200),
    ("admin.edit_user", "POST"): (LOGIN, 403, 403, 302),
    ("admin.deactivate_user", "GET"): (LOGIN, 403, 403, 200),
    ("admin.deactivate_user", "POST"): (LOGIN, 403, 403, 302),
    ("admin.reactivate_user", "GET"): (LOGIN, 403, 403, 302),
    ("admin.reactivate_user", "POST"): (LOGIN, 403, 403, 302),
    ("admin.reset_password", "POST"): (LOGIN, 403, 403, 200),
    ("admin.tokens", "GET"): (LOGIN, 403, 403, 200),
    ("admin.tokens", "POST"): (LOGIN, 403, 403, 200),
    ("admin.revoke_token", "POST"): (LOGIN, 403, 403, 302),
    ("admin.oauth_clients", "GET"): (LOGIN, 403, 403, 200),
    ("admin.delete_oauth_client", "POST"): (LOGIN, 403, 403, 302),
}

# (endpoint, method) → (no token, revoked token, reviewer, staff, admin)
API: dict[tuple[str, str], tuple] = {
    ("api.openapi", "GET"): (401, 401, 200, 200, 200),  # a token or a session
    ("api.list_connections", "GET"): (401, 401, 403, 200, 200),
    ("api.create_connections", "POST"): (401, 401, 403, 403, 200),
    ("api.upsert_connections", "PATCH"): (401, 401, 403, 403, 200),
    ("api.get_connection", "GET"): (401, 401, 403, 200, 200),
    ("api.delete_connection", "DELETE"): (401, 401, 403, 403, 204),
    ("api.list_webhooks", "GET"): (401, 401, 403, 200, 200),
    ("api.create_webhook", "POST"): (401, 401, 403, 403, 201),
    ("api.patch_webhook", "PATCH"): (401, 401, 403, 403, 200),
    ("api.get_webhook", "GET"): (401, 401, 403, 200, 200),
    ("api.delete_webhook", "DELETE"): (401, 401, 403, 403, 204),
    ("api.list_datasets", "GET"): (401, 401, 403, 400, 400),  # crm is no database
    ("api.patch_datasets", "PATCH"): (401, 401, 403, 403, 400),
    ("api.get_dataset", "GET"): (401, 401, 403, 400, 400),
    ("api.delete_dataset", "DELETE"): (401, 401, 403, 403, 400),
    ("api.put_secrets", "PUT"): (401, 401, 403, 403, 400),
    ("api.test_connection", "GET"): (401, 401, 403, 400, 400),
    ("api.patch_storage_configs", "PATCH"): (401, 401, 403, 403, 200),
    ("api.list_storage_configs", "GET"): (401, 401, 403, 403, 200),
    ("api.get_storage_config", "GET"): (401, 401, 403, 403, 200),
    ("api.delete_storage_config", "DELETE"): (401, 401, 403, 403, 204),
    ("api.put_storage_secrets", "PUT"): (401, 401, 403, 403, 200),  # the probe fails: nothing listens
    # policies (staff read them: they choose one for a request), rules and targets
    ("api.list_policies", "GET"): (401, 401, 403, 200, 200),
    ("api.patch_policies", "PATCH"): (401, 401, 403, 403, 200),
    ("api.get_policy", "GET"): (401, 401, 403, 200, 200),
    ("api.delete_policy", "DELETE"): (401, 401, 403, 403, 204),
    ("api.list_rules", "GET"): (401, 401, 403, 200, 200),
    ("api.patch_rules", "PATCH"): (401, 401, 403, 403, 200),
    ("api.get_rule", "GET"): (401, 401, 403, 200, 200),
    ("api.delete_rule", "DELETE"): (401, 401, 403, 403, 204),
    ("api.patch_targets", "PATCH"): (401, 401, 403, 403, 200),
    ("api.delete_target", "DELETE"): (401, 401, 403, 403, 204),
    ("api.create_privacy_requests", "POST"): (401, 401, 403, 200, 200),
    ("api.list_privacy_requests", "GET"): (401, 401, 200, 200, 200),
    ("api.search_privacy_requests", "POST"): (401, 401, 200, 200, 200),
    ("api.approve_privacy_requests", "PATCH"): (401, 401, 403, 403, 200),
    ("api.deny_privacy_requests", "PATCH"): (401, 401, 403, 403, 200),
    ("api.upload_manual_input", "PATCH"): (401, 401, 403, 200, 200),
    ("api.view_manual_input", "GET"): (401, 401, 200, 200, 200),
    ("api.resume_privacy_request", "POST"): (401, 401, 403, 200, 400),
    ("api.get_package", "GET"): (401, 401, 200, 403, 200),
    ("api.privacy_request_log", "GET"): (401, 401, 200, 200, 200),
    # review and delivery, on a complete request: the reviewer approves; the admin is then told it was
    ("api.get_delivery", "GET"): (401, 401, 200, 200, 200),
    ("api.approve_package", "POST"): (401, 401, 200, 403, 400),
    ("api.send_back_package", "POST"): (401, 401, 415, 403, 415),  # no JSON body
    ("api.resend_delivery_link", "POST"): (401, 401, 400, 400, 400),  # not released yet
    ("api.revoke_delivery_link", "POST"): (401, 401, 400, 400, 400),
    # this portal's additions: the team workflow (the service narrows: assignee, author or admin)
    ("api.list_tasks", "GET"): (401, 401, 403, 200, 200),
    ("api.claim_task", "POST"): (401, 401, 403, 200, 400),  # the admin is told staff has it
    ("api.release_task", "POST"): (401, 401, 403, 200, 200),
    ("api.assign_task", "POST"): (401, 401, 403, 403, 200),  # staff: not their task
    ("api.bulk_assign_tasks", "POST"): (401, 401, 403, 403, 200),
    ("api.list_notes", "GET"): (401, 401, 200, 200, 200),
    ("api.add_note", "POST"): (401, 401, 403, 201, 201),
    ("api.delete_note", "DELETE"): (401, 401, 403, 204, 404),  # staff deleted their own note first
    ("api.extend_deadline", "POST"): (401, 401, 403, 403, 200),  # staff: not an assignee
    ("api.cancel_privacy_request", "POST"): (401, 401, 403, 200, 400),  # canceled by staff already
    # OAuth: the token endpoint takes a client's credentials, never a bearer token
    ("api.oauth_token", "POST"): (401, 401, 401, 401, 401),
    ("api.create_oauth_client", "POST"): (401, 401, 403, 403, 200),
    ("api.get_client_scopes", "GET"): (401, 401, 403, 403, 200),
    ("api.set_client_scopes", "PUT"): (401, 401, 403, 403, 200),
    ("api.delete_oauth_client", "DELETE"): (401, 401, 403, 403, 200),
    ("api.list_scopes", "GET"): (401, 401, 403, 403, 200),
}
API_CALLERS = (None, "revoked", "reviewer", "staff", "admin")


def _status(response) -> int | str:
    location = response.headers.get("Location", "")
    if response.status_code == 302 and location.startswith("/auth/login"):
        return LOGIN
    return response.status_code


# --- the table covers the url_map exactly ----------------------------------------------------------


def test_every_route_has_a_row(app):
    routes = {(rule.endpoint, method) for rule, method in route_methods(app)}
    table = set(HTML) | set(API)

    assert sorted(routes - table) == [], "new routes: add their expected statuses to HTML or API"
    assert sorted(table - routes) == [], "rows for routes that no longer exist: remove them"
    assert not [route for route in routes if route[0].startswith("api.") and route not in API]


# --- every route, every caller ---------------------------------------------------------------------


def _html_route(app, endpoint, method):
    return next(rule for rule, m in route_methods(app) if rule.endpoint == endpoint and m == method)


@pytest.mark.parametrize(("endpoint", "method"), sorted(HTML))
def test_html_route_answers_each_role_as_expected(app, endpoint, method):
    world = build_world()
    url = url_for_rule(_html_route(app, endpoint, method), params_for(world, endpoint))
    observed = []
    for role in (None, *ROLES):
        client = app.test_client()
        if role is not None:
            sign_in(client, world.users[role])
        with client.open(url, method=method, data=FORM_DATA.get(endpoint)) as response:
            observed.append(_status(response))
            if response.status_code == 403:
                assert FORBIDDEN_PAGE in text_of(response)
        db.session.rollback()
        db.session.expire_all()

    assert tuple(observed) == HTML[(endpoint, method)], f"{method} {url}"


@pytest.mark.parametrize(("endpoint", "method"), sorted(API))
def test_api_route_answers_each_token_as_expected(app, endpoint, method):
    world = build_world()
    url = url_for_rule(_html_route(app, endpoint, method), params_for(world, endpoint))
    body = api_body(world, endpoint)
    observed = []
    for caller in API_CALLERS:
        client = app.test_client()
        kwargs = {"json": body} if body is not None else {}
        response = client.open(url, method=method, headers=world.headers(caller), **kwargs)
        observed.append(response.status_code)
        if response.status_code in (401, 403):
            assert "detail" in response.get_json()
        db.session.rollback()
        db.session.expire_all()

    assert tuple(observed) == API[(endpoint, method)], f"{method} {url}"


# --- object-level rules beyond the role ------------------------------------------------------------


def test_a_forbidden_role_learns_nothing_about_whether_the_object_exists(app, client):
    world = build_world()
    sign_in(client, world.users["reviewer"])

    real = client.post(f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}", data={"field_0": "x"})
    missing = client.post(f"/requests/pri_nope/manual/{WEBHOOK_KEY}", data={"field_0": "x"})

    assert real.status_code == missing.status_code == 403
    staff = world.headers("staff")
    assert (
        client.get(f"/api/v1/privacy-request/{world.complete_id}/package", headers=staff).status_code == 403
    )
    assert client.get("/api/v1/privacy-request/pri_nope/package", headers=staff).status_code == 403


def test_a_reviewer_cannot_upload_by_form_or_api_and_nothing_is_stored(app, client):
    world = build_world()
    sign_in(client, world.users["reviewer"])
    assert _entry_id(world.empty_waiting_id) is None

    form = client.post(f"/requests/{world.empty_waiting_id}/manual/{WEBHOOK_KEY}", data={"field_0": "Eve"})
    api = client.patch(
        f"/api/v1/privacy-request/{world.empty_waiting_id}/access_manual_webhook/{WEBHOOK_KEY}",
        json={"first_name": "Eve"},
        headers=world.headers("reviewer"),
    )

    assert (form.status_code, api.status_code) == (403, 403)
    assert _entry_id(world.empty_waiting_id) is None


def _entry_id(request_id: str) -> int | None:
    db.session.expire_all()
    return db.session.scalar(select(ManualInput.id).where(ManualInput.privacy_request_id == request_id))


def test_staff_reads_packages_only_once_given_the_reviewer_role(app, client):
    world = build_world()
    staff = world.users["staff"]
    sign_in(client, staff)
    assert client.get(f"/packages/{world.complete_id}").status_code == 403
    token = world.headers("staff")
    assert (
        client.get(f"/api/v1/privacy-request/{world.complete_id}/package", headers=token).status_code == 403
    )

    users.update_user(staff, TEST_ACTOR, role="reviewer", name=staff.name, active=True)
    db.session.commit()

    assert client.get(f"/packages/{world.complete_id}").status_code == 200
    assert (
        client.get(f"/api/v1/privacy-request/{world.complete_id}/package", headers=token).status_code == 200
    )
    assert client.get(f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}").status_code == 403


def test_a_revoked_token_stops_working_at_once(app, client):
    world = build_world()
    path = "/api/v1/privacy-request"
    staff = world.headers("staff")
    assert client.get(path, headers=staff).status_code == 200
    admin = app.test_client()
    sign_in(admin, world.users["admin"])

    revoked = admin.post(f"/admin/tokens/{world.token_ids['staff']}/revoke")

    assert revoked.status_code == 302
    response = client.get(path, headers=staff)
    assert response.status_code == 401
    assert response.get_json() == {"detail": "Invalid, expired or revoked token."}


def test_a_demoted_or_deactivated_owner_loses_the_token_s_rights_at_once(app, client):
    world = build_world()
    admin_user, path = world.users["admin"], "/api/v1/connection"
    headers = world.headers("admin")
    assert client.get(path, headers=headers).status_code == 200

    make_user(role="admin")  # the last admin cannot be demoted
    users.update_user(admin_user, TEST_ACTOR, role="reviewer", name=admin_user.name, active=True)
    db.session.commit()
    assert client.get(path, headers=headers).status_code == 403

    staff = db.session.get(User, world.users["staff"].id)
    users.update_user(staff, TEST_ACTOR, role=staff.role, name=staff.name, active=False)
    db.session.commit()
    assert client.get("/api/v1/privacy-request", headers=world.headers("staff")).status_code == 401


def test_a_token_narrowed_to_some_scopes_gets_nothing_else(app, client):
    world = build_world()
    token, secret = tokens.create_token(
        world.users["admin"], "read only", TEST_ACTOR, scopes=["privacy-request:read"]
    )
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}

    assert client.get("/api/v1/privacy-request", headers=headers).status_code == 200
    upload = client.patch(
        f"/api/v1/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}",
        json={"first_name": "X"},
        headers=headers,
    )
    assert upload.status_code == 403
    assert upload.get_json()["detail"] == (
        "Not Authorized: the token lacks the scope 'privacy-request:upload_data'."
    )
    assert (
        client.get(f"/api/v1/privacy-request/{world.complete_id}/package", headers=headers).status_code == 403
    )
    assert db.session.get(ApiToken, token.id).scopes == ["privacy-request:read"]


def test_a_deactivated_user_s_open_session_ends_on_the_next_request(app, client):
    world = build_world()
    staff = world.users["staff"]
    sign_in(client, staff)
    assert client.get(f"/requests/{world.waiting_id}").status_code == 200

    users.update_user(staff, TEST_ACTOR, role=staff.role, name=staff.name, active=False)
    db.session.commit()

    assert _status(client.get(f"/requests/{world.waiting_id}")) == LOGIN
    assert _status(client.post(f"/requests/{world.waiting_id}/resume")) == LOGIN
    assert db.session.get(PrivacyRequest, world.waiting_id).status == "requires_input"
