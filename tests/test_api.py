"""The fidesops-compatible JSON API (S6): every row of the table, the upload rules, scopes, errors."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualInput, PrivacyRequest
from portal.models.audit import Actor
from portal.scopes import ALL_SCOPES, ROLE_SCOPES
from portal.services import tokens

V1 = "/api/v1"
FIELDS = [
    {"pii_field": "First Name", "dsr_package_label": "first_name"},
    {"pii_field": "Last Name", "dsr_package_label": None},
    {"pii_field": "Height"},
]


@pytest.fixture
def api(client, make_user):
    """``api("admin")`` → a callable ``call(method, path, body=None)`` authenticated as that role."""

    def _make(role: str = "admin", scopes: list[str] | None = None):
        user = make_user(role=role)
        _, secret = tokens.create_token(user, "test", Actor.system("test"), scopes=scopes)
        db.session.commit()
        headers = {"Authorization": f"Bearer {secret}"}

        def call(method: str, path: str, body=None, **kwargs):
            if body is not None:
                kwargs["json"] = body
            return client.open(V1 + path, method=method, headers=headers, **kwargs)

        call.secret = secret
        call.user = user
        return call

    return _make


@pytest.fixture
def admin(api):
    return api("admin")


def make_manual(admin, name="Manual Webhook ConnectionConfig", key="manual_webhook_key", fields=FIELDS):
    r = admin(
        "PATCH",
        "/connection",
        [{"name": name, "key": key, "connection_type": "manual_webhook", "access": "read"}],
    )
    assert r.status_code == 200 and r.json["failed"] == [], r.json
    r = admin("PATCH", f"/connection/{key}/access_manual_webhook", {"fields": fields})
    assert r.status_code == 200, r.json
    return r.json


def new_request(admin, email="customer-1@example.com"):
    r = admin(
        "POST", "/privacy-request", [{"identity": {"email": email}, "policy_key": "default_access_policy"}]
    )
    assert r.status_code == 200 and r.json["failed"] == [], r.json
    return r.json["succeeded"][0]


# --- authentication and scopes ---------------------------------------------------------------------


def test_missing_invalid_and_revoked_tokens_are_401(client, admin):
    assert client.get(V1 + "/connection").status_code == 401
    assert client.get(V1 + "/connection").json == {
        "detail": "Authentication required: send 'Authorization: Bearer <token>'."
    }
    r = client.get(V1 + "/connection", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json == {"detail": "Invalid, expired or revoked token."}
    assert admin("GET", "/connection").status_code == 200
    token = db.session.scalars(sa.select(tokens.ApiToken)).one()
    tokens.revoke_token(token, Actor.system("test"))
    db.session.commit()
    assert admin("GET", "/connection").status_code == 401


def test_expired_token_is_401(client, make_user):
    from datetime import timedelta

    from portal.models import utcnow

    user = make_user(role="admin")
    _, secret = tokens.create_token(
        user, "old", Actor.system("t"), expires_at=utcnow() - timedelta(seconds=1)
    )
    db.session.commit()
    assert client.get(V1 + "/connection", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_deactivated_owner_token_is_401(admin):
    admin.user.active = False
    db.session.commit()
    assert admin("GET", "/connection").status_code == 401


ROUTES = [
    ("POST", "/connection", "connection:create_or_update"),
    ("PATCH", "/connection", "connection:create_or_update"),
    ("GET", "/connection", "connection:read"),
    ("GET", "/connection/x", "connection:read"),
    ("DELETE", "/connection/x", "connection:delete"),
    ("POST", "/connection/x/access_manual_webhook", "webhook:create_or_update"),
    ("PATCH", "/connection/x/access_manual_webhook", "webhook:create_or_update"),
    ("GET", "/connection/x/access_manual_webhook", "webhook:read"),
    ("DELETE", "/connection/x/access_manual_webhook", "webhook:delete"),
    ("GET", "/access_manual_webhook", "webhook:read"),
    ("POST", "/privacy-request", "privacy-request:create"),
    ("GET", "/privacy-request", "privacy-request:read"),
    ("POST", "/privacy-request/search", "privacy-request:read"),
    ("PATCH", "/privacy-request/administrate/approve", "privacy-request:review"),
    ("PATCH", "/privacy-request/administrate/deny", "privacy-request:review"),
    ("PATCH", "/privacy-request/p/access_manual_webhook/x", "privacy-request:upload_data"),
    ("GET", "/privacy-request/p/access_manual_webhook/x", "privacy-request:view_data"),
    ("POST", "/privacy-request/p/resume_from_requires_input", "privacy-request:resume"),
    ("GET", "/privacy-request/p/package", "privacy-request:download_package"),
]


@pytest.mark.parametrize("role", ["admin", "staff", "reviewer"])
def test_scope_matrix_per_role(api, role):
    call = api(role)
    for method, path, scope in ROUTES:
        response = call(method, path)
        if scope in ROLE_SCOPES[role]:
            assert response.status_code != 403, (method, path)
        else:
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json == {"detail": f"Not Authorized: the token lacks the scope '{scope}'."}


def test_explicit_scopes_narrow_the_role(api):
    call = api("admin", scopes=["connection:read"])
    assert call("GET", "/connection").status_code == 200
    assert call("GET", "/privacy-request").status_code == 403


def test_every_api_route_declares_a_scope_and_is_documented(app, admin):
    document = admin("GET", "/openapi.json").json
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(V1) or rule.endpoint == "api.openapi":
            continue
        view = app.view_functions[rule.endpoint]
        path = rule.rule[len(V1) :].replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            if rule.endpoint == "api.oauth_token":  # public: the client's own credentials
                assert operation["security"] == []
                continue
            assert hasattr(view, "required_scope"), rule.endpoint
            assert operation["x-scope"] == view.required_scope


def test_openapi_sends_identity_searches_to_the_post_search(admin):
    paths = admin("GET", "/openapi.json").json["paths"]
    (identity,) = [p for p in paths["/privacy-request"]["get"]["parameters"] if p["name"] == "identity"]
    assert "puts the identity in the URL, and so in access logs" in identity["description"]
    assert "use `POST /privacy-request/search` instead" in identity["description"]
    search = paths["/privacy-request/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PrivacyRequestSearchIn"
    }
    assert search["responses"]["200"] == paths["/privacy-request"]["get"]["responses"]["200"]


def test_openapi_requires_a_token_or_a_session(client, login_as):
    assert client.get(V1 + "/openapi.json").status_code == 401
    login_as("reviewer")
    assert client.get(V1 + "/openapi.json").json["openapi"].startswith("3.")


# --- body errors -----------------------------------------------------------------------------------


def test_malformed_json_wrong_type_and_too_large(admin):
    r = admin("PATCH", "/connection", data="[{", content_type="application/json")
    assert r.status_code == 400 and r.json["detail"].startswith("Malformed JSON body:")
    r = admin("PATCH", "/connection", data="name=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and "application/json" in r.json["detail"]
    r = admin(
        "PATCH", "/connection", data="[" + " " * (1024 * 1024 + 10) + "]", content_type="application/json"
    )
    assert r.status_code == 413 and r.json == {"detail": "Request body too large: the limit is 1 MB."}
    deep = "[" * 100_000 + "]" * 100_000
    r = admin("PATCH", "/connection", data=deep, content_type="application/json")
    assert r.status_code in (400, 413)


def test_validation_errors_name_the_field(admin):
    r = admin("PATCH", "/connection", [{"key": "x", "connection_type": "manual_webhook"}])
    assert r.status_code == 422
    assert r.json["detail"][0]["loc"] == ["body", 0, "name"]
    r = admin(
        "PATCH", "/connection", [{"name": f"n{i}", "connection_type": "manual_webhook"} for i in range(51)]
    )
    assert r.status_code == 422 and "50" in r.json["detail"][0]["msg"]


# --- connections -----------------------------------------------------------------------------------


def test_create_connections_with_fidesops_messages(admin):
    body = [
        {"name": "Zendesk (Support) – EU", "connection_type": "manual_webhook", "access": "read"},
        {
            "name": "My Mongo DB",
            "key": "zendesk_support_eu",
            "connection_type": "manual_webhook",
            "access": "read",
        },
        {
            "name": "Zendesk (Support) – EU",
            "key": "other",
            "connection_type": "manual_webhook",
            "access": "read",
        },
    ]
    r = admin("POST", "/connection", body)
    assert r.status_code == 200
    assert [c["key"] for c in r.json["succeeded"]] == ["zendesk_support_eu"]
    assert [f["message"] for f in r.json["failed"]] == [
        "Key zendesk_support_eu already exists in ConnectionConfig. Keys will be snake-cased names if not "
        "provided. If you are seeing this error without providing a key, please provide a key or a different name.",
        "Name Zendesk (Support) – EU already exists in ConnectionConfig.",
    ]
    assert r.json["failed"][0]["data"]["name"] == "My Mongo DB"
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "connection.created")).all()
    assert [e.actor_type for e in events] == ["token"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_keys_made_only_of_dots_are_refused(admin, method):
    body = [
        {"name": name, "key": key, "connection_type": "manual_webhook", "access": "read"}
        for name, key in (("Dot", "."), ("Dots", ".."), ("Dotted", ".crm.eu."))
    ]
    r = admin(method, "/connection", body)
    assert r.status_code == 200
    assert [c["key"] for c in r.json["succeeded"]] == [".crm.eu."]
    assert [f["message"] for f in r.json["failed"]] == [
        "Invalid key '.': a key cannot be only dots; add a letter, digit, '_' or '-'.",
        "Invalid key '..': a key cannot be only dots; add a letter, digit, '_' or '-'.",
    ]
    assert admin("GET", "/connection/.crm.eu.").status_code == 200


def test_patch_upserts_by_key_and_lists_pages(admin):
    admin(
        "PATCH",
        "/connection",
        [{"name": "A", "key": "a", "connection_type": "manual_webhook", "access": "read"}],
    )
    r = admin(
        "PATCH",
        "/connection",
        [
            {
                "name": "A renamed",
                "key": "a",
                "connection_type": "manual_webhook",
                "access": "read",
                "description": "d",
            }
        ],
    )
    assert r.json["succeeded"][0]["name"] == "A renamed"
    for i in range(3):
        admin(
            "POST", "/connection", [{"name": f"C{i}", "connection_type": "manual_webhook", "access": "read"}]
        )
    r = admin("GET", "/connection?page=2&size=2")
    assert r.json["total"] == 4 and r.json["page"] == 2 and r.json["size"] == 2 and len(r.json["items"]) == 2
    assert admin("GET", "/connection/a").json["description"] == "d"
    r = admin("GET", "/connection?page=0")
    assert r.status_code == 422 and r.json["detail"][0]["loc"] == ["query", "page"]


def test_get_and_delete_connection(admin):
    make_manual(admin)
    r = admin("GET", "/connection/nope")
    assert r.status_code == 404 and r.json == {"detail": "No connection config with key 'nope'"}
    assert admin("DELETE", "/connection/manual_webhook_key").status_code == 204
    assert admin("GET", "/connection/manual_webhook_key").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConnectionConfig)) == 0


# --- webhooks --------------------------------------------------------------------------------------


def test_webhook_create_read_replace_delete(admin):
    admin(
        "PATCH",
        "/connection",
        [{"name": "Manual", "key": "m", "connection_type": "manual_webhook", "access": "read"}],
    )
    r = admin("POST", "/connection/m/access_manual_webhook", {"fields": FIELDS})
    assert r.status_code == 201
    assert r.json["fields"][1]["dsr_package_label"] == "last_name"
    assert r.json["fields"][2]["dsr_package_label"] == "height"
    assert r.json["connection_config"]["key"] == "m" and isinstance(r.json["id"], int)
    r = admin("POST", "/connection/m/access_manual_webhook", {"fields": FIELDS})
    assert r.status_code == 400
    assert r.json == {"detail": "An Access Manual Webhook already exists for ConnectionConfig 'm'."}
    r = admin("PATCH", "/connection/m/access_manual_webhook", {"fields": FIELDS[:1]})
    assert r.status_code == 200 and r.json["version"] == 2
    assert admin("GET", "/connection/m/access_manual_webhook").json["fields"] == r.json["fields"]
    assert admin("DELETE", "/connection/m/access_manual_webhook").status_code == 204
    r = admin("GET", "/connection/m/access_manual_webhook")
    assert r.status_code == 404
    assert r.json == {"detail": "No access manual webhook exists for connection config with key 'm'"}


def test_webhook_only_for_manual_connections(admin):
    admin(
        "PATCH", "/connection", [{"name": "DB", "key": "db", "connection_type": "postgres", "access": "read"}]
    )
    r = admin("POST", "/connection/db/access_manual_webhook", {"fields": FIELDS})
    assert r.status_code == 400
    assert r.json == {
        "detail": "You can only create manual webhooks for ConnectionConfigs of type 'manual_webhook'."
    }


@pytest.mark.parametrize(
    ("fields", "msg", "loc"),
    [
        (
            [{"pii_field": "A"}, {"pii_field": "A"}],
            "pii_fields must be unique",
            ["body", "fields", 0, "pii_field"],
        ),
        (
            [{"pii_field": "Email"}, {"pii_field": "email"}],
            "dsr_package_labels must be unique",
            ["body", "fields", 0, "dsr_package_label"],
        ),
        (
            [{"pii_field": "A", "dsr_package_label": "x"}, {"pii_field": "B", "dsr_package_label": "x"}],
            "dsr_package_labels must be unique",
            ["body", "fields", 0, "dsr_package_label"],
        ),
    ],
)
def test_webhook_field_rules_are_422(admin, fields, msg, loc):
    admin(
        "PATCH",
        "/connection",
        [{"name": "M", "key": "m", "connection_type": "manual_webhook", "access": "read"}],
    )
    r = admin("PATCH", "/connection/m/access_manual_webhook", {"fields": fields})
    assert r.status_code == 422
    assert r.json["detail"][0] == {"loc": loc, "msg": msg, "type": "value_error"}


def test_list_of_enabled_webhooks(admin):
    make_manual(admin)
    make_manual(admin, name="Other", key="other", fields=[{"pii_field": "X"}])
    admin(
        "PATCH",
        "/connection",
        [
            {
                "name": "Other",
                "key": "other",
                "connection_type": "manual_webhook",
                "access": "read",
                "disabled": True,
            }
        ],
    )
    r = admin("GET", "/access_manual_webhook")
    assert [w["connection_config"]["key"] for w in r.json] == ["manual_webhook_key"]


# --- privacy requests ------------------------------------------------------------------------------


def test_create_and_list_privacy_requests(admin):
    make_manual(admin)
    r = admin(
        "POST",
        "/privacy-request",
        [
            {
                "identity": {"email": "customer-1@example.com"},
                "policy_key": "default_access_policy",
                "external_id": "T-1",
            },
            {"identity": {"email": "bad"}, "policy_key": "default_access_policy"},
            {"identity": {"email": "x@example.com"}, "policy_key": "nope"},
        ],
    )
    assert r.status_code == 200
    assert [(p["status"], p["external_id"]) for p in r.json["succeeded"]] == [("requires_input", "T-1")]
    assert [f["message"] for f in r.json["failed"]][1] == "Policy with key nope does not exist."
    assert r.json["failed"][0]["message"].startswith("Invalid email address")
    second = new_request(admin, "customer-2@example.com")
    listed = admin("GET", "/privacy-request").json
    assert listed["total"] == 2 and listed["items"][0]["id"] == second["id"]  # newest first
    assert [item["external_id"] for item in listed["items"]] == [None, "T-1"]  # stored encrypted, read back
    assert admin("GET", "/privacy-request?identity=Customer-1@example.com").json["total"] == 1
    assert admin("GET", f"/privacy-request?request_id={second['id']}").json["items"][0]["id"] == second["id"]
    assert admin("GET", "/privacy-request?status=complete").json["total"] == 0
    assert admin("GET", "/privacy-request?status=complete&status=requires_input").json["total"] == 2
    bad = admin("GET", "/privacy-request?status=bogus")
    assert bad.status_code == 422


def test_search_takes_the_identity_in_the_body_and_answers_as_the_list_does(admin):
    make_manual(admin)  # requests wait in requires_input
    first = new_request(admin, "customer-1@example.com")
    second = new_request(admin, "customer-2@example.com")
    by_phone = admin("POST", "/privacy-request", [{"identity": {"phone_number": "+1 555 010 1234"}}]).json[
        "succeeded"
    ][0]

    found = admin("POST", "/privacy-request/search", {"identity": {"email": "Customer-1@Example.com"}})
    assert found.status_code == 200
    assert found.json == admin("GET", "/privacy-request?identity=customer-1@example.com").json
    assert [item["id"] for item in found.json["items"]] == [first["id"]]
    assert set(found.json) == {"items", "total", "page", "size"} and found.json["total"] == 1

    fides_style = admin("POST", "/privacy-request/search", {"identities": {"phone_number": "+15550101234"}})
    assert [item["id"] for item in fides_style.json["items"]] == [by_phone["id"]]
    by_id = admin("POST", "/privacy-request/search", {"request_id": second["id"], "status": "requires_input"})
    assert [item["id"] for item in by_id.json["items"]] == [second["id"]]
    statuses = admin("POST", "/privacy-request/search", {"status": ["complete", "requires_input"]})
    assert statuses.json["total"] == 3
    assert admin("POST", "/privacy-request/search", {"status": ["complete"]}).json["total"] == 0
    everything = admin("POST", "/privacy-request/search", {})
    assert everything.json == admin("GET", "/privacy-request").json

    paged = admin("POST", "/privacy-request/search", {"page": 2, "size": 2})
    assert (paged.json["page"], paged.json["size"], paged.json["total"]) == (2, 2, 3)
    assert [item["id"] for item in paged.json["items"]] == [first["id"]]  # newest first
    in_query = admin("POST", "/privacy-request/search?page=2&size=2", {})
    assert in_query.json == paged.json


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        (
            {"identity": {}},
            ["body", "identity"],
            "Search for one identity: an email address or a phone number.",
        ),
        (
            {"identity": {"email": "a@example.com", "phone_number": "+15550101234"}},
            ["body", "identity"],
            "Search for one identity: an email address or a phone number.",
        ),
        ({"identity": {"email": "not-an-email"}}, ["body", "identity", "email"], None),
        (
            {"identity": {"loyalty_id": "CH-1"}},
            ["body", "identity", "loyalty_id"],
            "Extra inputs are not permitted",
        ),
        ({"external_id": "T-1"}, ["body", "external_id"], "Extra inputs are not permitted"),
        ({"status": "bogus"}, ["body", "status"], "Unknown status: bogus."),
        ({"size": 101}, ["body", "size"], None),
    ],
)
def test_search_refuses_what_it_cannot_apply(admin, body, loc, message):
    """A filter that is not applied would widen the answer: refused with 422, never ignored."""
    new_request(admin)
    response = admin("POST", "/privacy-request/search", body)
    assert response.status_code == 422
    (error,) = response.json["detail"]
    assert error["loc"] == loc
    if message:
        assert error["msg"] == message


def test_search_needs_a_json_body_and_the_read_scope(api):
    reader = api("reviewer")
    assert reader("POST", "/privacy-request/search", {}).status_code == 200
    response = reader("POST", "/privacy-request/search", data="identity=a@example.com")
    assert response.status_code == 415
    narrowed = api("admin", scopes=["connection:read"])
    assert narrowed("POST", "/privacy-request/search", {}).status_code == 403


def test_approve_and_deny(app, admin):
    app.config["REQUIRE_APPROVAL"] = True
    first, second = new_request(admin)["id"], new_request(admin, "b@example.com")["id"]
    r = admin("PATCH", "/privacy-request/administrate/approve", {"request_ids": [first, "pri_missing"]})
    assert [p["status"] for p in r.json["succeeded"]] == ["complete"]
    assert r.json["failed"] == [
        {
            "message": "No privacy request found with id 'pri_missing'.",
            "data": {"privacy_request_id": "pri_missing"},
        }
    ]
    r = admin(
        "PATCH", "/privacy-request/administrate/deny", {"request_ids": [second], "reason": "Not verified"}
    )
    assert r.json["succeeded"][0]["status"] == "denied"
    assert r.json["succeeded"][0]["denial_reason"] == "Not verified"


def test_upload_rules(admin):
    make_manual(admin)
    pr = new_request(admin)["id"]
    path = f"/privacy-request/{pr}/access_manual_webhook/manual_webhook_key"
    assert admin("GET", path).json == {
        "checked": False,
        "fields": {"first_name": None, "last_name": None, "height": None},
    }
    r = admin("PATCH", path, {"first_name": "Jane", "nickname": "JJ"})
    assert r.status_code == 422
    assert r.json["detail"][0]["loc"] == ["body", "nickname"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ManualInput)) == 0
    r = admin("PATCH", path, {"first_name": "Jane"})
    assert r.status_code == 200
    assert r.json == {"checked": True, "fields": {"first_name": "Jane", "last_name": None, "height": None}}
    admin("PATCH", path, {"last_name": "Customer"})  # replace, not merge
    assert admin("GET", path).json["fields"] == {"first_name": None, "last_name": "Customer", "height": None}
    assert admin("PATCH", path, {}).json["fields"] == {"first_name": None, "last_name": None, "height": None}
    r = admin("PATCH", path, {"height": 180})
    assert r.status_code == 422 and r.json["detail"][0]["loc"] == ["body", "height"]
    r = admin("PATCH", path, ["not", "an", "object"])
    assert r.status_code == 422
    r = admin("PATCH", f"/privacy-request/{pr}/access_manual_webhook/nope", {})
    assert r.status_code == 404 and r.json == {"detail": "No connection config with key 'nope'"}
    r = admin("PATCH", "/privacy-request/pri_x/access_manual_webhook/manual_webhook_key", {})
    assert r.status_code == 404 and r.json == {"detail": "No privacy request found with id 'pri_x'."}
    saved = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "manual_input.saved")).all()
    assert {e.actor_type for e in saved} == {"token"}


def test_view_names_what_is_missing(admin):
    make_manual(admin)
    admin(
        "PATCH",
        "/connection",
        [
            {"name": "DB", "key": "db", "connection_type": "postgres", "access": "read"},
            {"name": "Bare", "key": "bare", "connection_type": "manual_webhook", "access": "read"},
        ],
    )
    pr = new_request(admin)["id"]

    def view(request_id, key):
        return admin("GET", f"/privacy-request/{request_id}/access_manual_webhook/{key}")

    assert view("pri_x", "manual_webhook_key").json == {"detail": "No privacy request found with id 'pri_x'."}
    assert view("pri_x", "nope").json == {"detail": "No privacy request found with id 'pri_x'."}
    assert view(pr, "nope").json == {"detail": "No connection config with key 'nope'"}
    for key in ("db", "bare"):  # not a manual connection; a manual one without a webhook
        r = view(pr, key)
        assert r.status_code == 404
        assert r.json == {"detail": f"No access manual webhook exists for connection config with key '{key}'"}
    assert view(pr, "manual_webhook_key").json["checked"] is False


def test_upload_refused_when_not_waiting_or_disabled(admin):
    make_manual(admin)
    make_manual(admin, name="Other", key="other", fields=[{"pii_field": "X"}])
    pr = new_request(admin)["id"]
    admin(
        "PATCH",
        "/connection",
        [
            {
                "name": "Other",
                "key": "other",
                "connection_type": "manual_webhook",
                "access": "read",
                "disabled": True,
            }
        ],
    )
    r = admin("PATCH", f"/privacy-request/{pr}/access_manual_webhook/other", {"x": "1"})
    assert r.status_code == 400 and "'other' is disabled" in r.json["detail"]
    admin("PATCH", f"/privacy-request/{pr}/access_manual_webhook/manual_webhook_key", {})
    admin("POST", f"/privacy-request/{pr}/resume_from_requires_input")
    r = admin("PATCH", f"/privacy-request/{pr}/access_manual_webhook/manual_webhook_key", {})
    assert r.status_code == 400
    assert r.json == {
        "detail": f"Invalid access manual webhook upload request: privacy request '{pr}' status = complete."
    }


def test_resume_and_package_full_flow(admin, api):
    make_manual(admin)
    pr = new_request(admin, "customer-3@example.com")["id"]
    r = admin("POST", f"/privacy-request/{pr}/resume_from_requires_input")
    assert r.status_code == 400
    assert r.json == {
        "detail": "Cannot resume privacy request. No data cached for privacy_request_id "
        f"'{pr}' for connection config 'manual_webhook_key'"
    }
    r = admin("GET", f"/privacy-request/{pr}/package")
    assert r.status_code == 404
    admin(
        "PATCH",
        f"/privacy-request/{pr}/access_manual_webhook/manual_webhook_key",
        {"first_name": "Jane", "last_name": "Customer"},
    )
    r = admin("POST", f"/privacy-request/{pr}/resume_from_requires_input")
    assert r.status_code == 200 and r.json["status"] == "complete"
    r = admin("POST", f"/privacy-request/{pr}/resume_from_requires_input")
    assert r.json == {
        "detail": f"Cannot resume privacy request from 'requires_input': privacy request '{pr}' status = complete."
    }
    reviewer = api("reviewer")
    r = reviewer("GET", f"/privacy-request/{pr}/package")
    assert r.status_code == 200
    assert r.json == {"manual_webhook_key": [{"first_name": "Jane", "last_name": "Customer", "height": None}]}
    assert r.headers["Cache-Control"] == "no-store"
    assert db.session.scalars(
        sa.select(AuditEvent.actor_type).where(AuditEvent.action == "package.downloaded")
    ).all() == ["token"]


def test_field_edit_unchecks_the_view(admin):
    make_manual(admin)
    pr = new_request(admin)["id"]
    path = f"/privacy-request/{pr}/access_manual_webhook/manual_webhook_key"
    admin("PATCH", path, {"first_name": "Jane", "height": "170"})
    admin(
        "PATCH",
        "/connection/manual_webhook_key/access_manual_webhook",
        {
            "fields": [
                {"pii_field": "First Name", "dsr_package_label": "first_name"},
                {"pii_field": "Eye colour"},
            ]
        },
    )
    assert admin("GET", path).json == {"checked": False, "fields": {"first_name": "Jane", "eye_colour": None}}
    r = admin("POST", f"/privacy-request/{pr}/resume_from_requires_input")
    assert r.status_code == 400 and "manual_webhook_key" in r.json["detail"]


def test_deleting_the_only_webhook_completes_waiting_requests(admin):
    make_manual(admin)
    pr = new_request(admin)["id"]
    assert admin("DELETE", "/connection/manual_webhook_key").status_code == 204
    assert db.session.get(PrivacyRequest, pr).status == "complete"


def test_unknown_api_path_is_json_404(admin):
    r = admin("GET", "/nowhere")
    assert r.status_code == 404 and r.json == {"detail": "Not Found"}


def test_all_scopes_are_known():
    assert len(ALL_SCOPES) == len(set(ALL_SCOPES)) == 40
    assert json.dumps(sorted(ROLE_SCOPES["reviewer"])) == json.dumps(
        [
            "package:deliver",
            "package:review",
            "privacy-request-note:read",
            "privacy-request:download_package",
            "privacy-request:read",
            "privacy-request:view_data",
        ]
    )


def test_null_characters_are_rejected_everywhere(admin):
    r = admin("PATCH", "/connection", [{"name": "a\u0000b", "connection_type": "manual_webhook"}])
    assert r.status_code == 400 and "null character" in r.json["detail"]
    r = admin("GET", "/privacy-request?request_id=pri_%00")
    assert r.status_code == 400 and "null character" in r.json["detail"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConnectionConfig)) == 0


def test_huge_page_numbers_are_422(admin):
    r = admin("GET", "/privacy-request?page=99999999999999999999999")
    assert r.status_code == 422 and r.json["detail"][0]["loc"] == ["query", "page"]


def test_patch_cannot_change_a_connection_type(admin):
    admin(
        "PATCH",
        "/connection",
        [{"name": "M", "key": "m", "connection_type": "manual_webhook", "access": "read"}],
    )
    r = admin(
        "PATCH", "/connection", [{"name": "M", "key": "m", "connection_type": "postgres", "access": "read"}]
    )
    assert r.json["succeeded"] == []
    assert r.json["failed"][0]["message"] == (
        "Cannot change the connection_type of 'm' from manual_webhook to postgres; create a new connection instead."
    )
    assert db.session.scalars(sa.select(ConnectionConfig.connection_type)).all() == ["manual_webhook"]
