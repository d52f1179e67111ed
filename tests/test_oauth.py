"""OAuth client credentials (S12): fidesops' /oauth endpoints, request and response shapes, the scope rules,
hashed secrets, revocation, expiry, the create-client command and the admin page."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, OAuthAccessToken, OAuthClient, utcnow
from portal.models.audit import Actor
from portal.scopes import ALL_SCOPES, ROLE_SCOPES
from portal.services import oauth_clients, tokens, users

V1 = "/api/v1"
TEST_ACTOR = Actor.system("test")
AUTH_FAILURE = {"detail": "Authentication Failure", "error": "invalid_client"}
INVALID_SCOPE = f"Invalid Scope. Scopes must be one of {list(ALL_SCOPES)}."
MANUAL_CONNECTION = {
    "name": "Manual Webhook ConnectionConfig",
    "key": "manual_webhook_key",
    "connection_type": "manual_webhook",
    "access": "read",
}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_client(user, scopes=None) -> tuple[str, str]:
    role_scopes = ROLE_SCOPES[user.role]
    client, secret = oauth_clients.create_client(
        user, sorted(role_scopes) if scopes is None else scopes, TEST_ACTOR, granted_by=role_scopes
    )
    db.session.commit()
    return client.id, secret


def get_token(client, client_id: str, secret: str, **form) -> str:
    response = client.post(
        V1 + "/oauth/token",
        data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials", **form},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


@pytest.fixture
def admin(make_user):
    return make_user(role="admin", email="root@example.com")


@pytest.fixture
def admin_token(client, admin):
    """An access token of an OAuth client holding every admin scope."""
    return get_token(client, *new_client(admin))


def _all_cells(table: str) -> str:
    return json.dumps([list(map(str, row)) for row in db.session.execute(sa.text(f"SELECT * FROM {table}"))])


# --- the token endpoint ----------------------------------------------------------------------------


def test_a_client_gets_a_bearer_token_with_its_form_encoded_credentials(app, client, admin):
    client_id, secret = new_client(admin, ["connection:read", "privacy-request:read"])

    response = client.post(
        V1 + "/oauth/token",
        data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"},
    )

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "connection:read privacy-request:read"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get(V1 + "/connection", headers=bearer(body["access_token"])).status_code == 200
    stored = db.session.scalars(sa.select(OAuthAccessToken)).one()
    assert stored.token_hash == hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert body["access_token"] not in _all_cells("oauth_access_tokens")


def test_http_basic_credentials_and_a_missing_grant_type_are_accepted_as_in_fidesops(app, client, admin):
    client_id, secret = new_client(admin, ["connection:read"])
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    with_basic = client.post(
        V1 + "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    without_grant_type = client.post(
        V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret}
    )

    assert with_basic.status_code == without_grant_type.status_code == 200
    assert with_basic.get_json()["token_type"] == without_grant_type.get_json()["token_type"] == "Bearer"


@pytest.mark.parametrize("case", ["wrong secret", "unknown client", "no secret", "nothing", "over-long id"])
def test_refused_credentials_all_get_fidesops_authentication_failure(app, client, admin, case):
    client_id, _ = new_client(admin)
    form = {
        "wrong secret": {"client_id": client_id, "client_secret": "wrong"},
        "unknown client": {"client_id": "0" * 32, "client_secret": "anything"},
        "no secret": {"client_id": client_id},
        "nothing": {},
        "over-long id": {"client_id": "x" * 5000, "client_secret": "y"},
    }[case]

    response = client.post(V1 + "/oauth/token", data={**form, "grant_type": "client_credentials"})

    assert response.status_code == 401
    assert response.get_json() == AUTH_FAILURE
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OAuthAccessToken)) == 0


def test_another_grant_type_is_refused_with_a_400_saying_which_is_supported(app, client, admin):
    client_id, secret = new_client(admin)

    response = client.post(
        V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret, "grant_type": "password"}
    )

    assert response.status_code == 400
    assert response.get_json() == {
        "detail": "Unsupported grant_type: this endpoint issues tokens for 'client_credentials' only.",
        "error": "unsupported_grant_type",
    }


def test_a_scope_parameter_narrows_the_token_and_an_unknown_one_is_refused(app, client, admin):
    client_id, secret = new_client(admin, ["connection:read", "privacy-request:read"])

    narrow = get_token(client, client_id, secret, scope="privacy-request:read")
    unknown = client.post(
        V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret, "scope": "root:all"}
    )

    assert client.get(V1 + "/privacy-request", headers=bearer(narrow)).status_code == 200
    assert client.get(V1 + "/connection", headers=bearer(narrow)).status_code == 403
    assert unknown.status_code == 400
    assert unknown.get_json()["detail"] == INVALID_SCOPE
    assert unknown.get_json()["error"] == "invalid_scope"


def test_a_token_is_refused_once_it_expires(app, client, admin, monkeypatch):
    app.config["OAUTH_TOKEN_MINUTES"] = 5
    client_id, secret = new_client(admin, ["connection:read"])
    response = client.post(V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret})
    token = response.get_json()["access_token"]
    stored = db.session.scalars(sa.select(OAuthAccessToken)).one()

    assert response.get_json()["expires_in"] == 300
    assert stored.expires_at - stored.issued_at == timedelta(minutes=5)
    assert client.get(V1 + "/connection", headers=bearer(token)).status_code == 200

    later = stored.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(oauth_clients, "utcnow", lambda: later)
    response = client.get(V1 + "/connection", headers=bearer(token))

    assert response.status_code == 401
    assert response.get_json() == {"detail": "Invalid, expired or revoked token."}


def test_a_new_token_clears_the_client_s_expired_ones(app, client, admin):
    client_id, secret = new_client(admin, ["connection:read"])
    old = get_token(client, client_id, secret)
    db.session.execute(sa.update(OAuthAccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    new = get_token(client, client_id, secret)

    hashes = db.session.scalars(sa.select(OAuthAccessToken.token_hash)).all()
    assert hashes == [hashlib.sha256(new.encode()).hexdigest()]
    assert hashlib.sha256(old.encode()).hexdigest() not in hashes


# --- creating clients ------------------------------------------------------------------------------


def test_creating_a_client_answers_its_id_and_secret_once_and_stores_only_a_hash(
    app, client, admin_token, login_as
):
    response = client.post(V1 + "/oauth/client", json=["connection:read"], headers=bearer(admin_token))

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"client_id", "client_secret"}
    row = db.session.get(OAuthClient, body["client_id"])
    assert row.scopes == ["connection:read"]
    assert row.secret_hash == hashlib.sha256(body["client_secret"].encode()).hexdigest()
    assert body["client_secret"] not in _all_cells("oauth_clients")
    assert len(body["client_secret"]) >= 43  # 256 random bits
    assert body["client_secret"] not in json.dumps(
        [e.details for e in db.session.scalars(sa.select(AuditEvent))]
    )
    login_as("admin")
    page = client.get("/admin/tokens/clients").get_data(as_text=True)
    assert body["client_id"] in page and body["client_secret"] not in page


def test_the_fidesops_guide_s_scopes_object_and_an_empty_body_are_accepted(app, client, admin_token):
    as_object = client.post(
        V1 + "/oauth/client", json={"scopes": ["webhook:read"]}, headers=bearer(admin_token)
    )
    empty = client.post(V1 + "/oauth/client", headers=bearer(admin_token))

    assert as_object.status_code == empty.status_code == 200
    assert db.session.get(OAuthClient, as_object.get_json()["client_id"]).scopes == ["webhook:read"]
    assert db.session.get(OAuthClient, empty.get_json()["client_id"]).scopes == []


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/oauth/client"), ("PUT", "/oauth/client/{client_id}/scope")]
)
def test_an_unknown_scope_is_fidesops_422(app, client, admin, admin_token, method, path):
    client_id, _ = new_client(admin, ["connection:read"])

    response = client.open(
        V1 + path.format(client_id=client_id),
        method=method,
        json=["connection:read", "root:everything"],
        headers=bearer(admin_token),
    )

    assert response.status_code == 422
    assert response.get_json() == {"detail": INVALID_SCOPE}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OAuthClient)) == 2  # nothing new
    assert db.session.get(OAuthClient, client_id).scopes == ["connection:read"]


def test_a_body_that_is_no_list_of_scopes_is_a_422_naming_where(app, client, admin_token):
    response = client.post(V1 + "/oauth/client", json=["connection:read", 7], headers=bearer(admin_token))

    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", 1]


def test_a_client_never_gets_scopes_beyond_its_creator_s(app, client, admin):
    parent_id, parent_secret = new_client(admin, ["client:create", "connection:read"])
    parent = get_token(client, parent_id, parent_secret)

    too_much = client.post(
        V1 + "/oauth/client", json=["connection:read", "connection:delete"], headers=bearer(parent)
    )
    within = client.post(V1 + "/oauth/client", json=["connection:read"], headers=bearer(parent))

    assert too_much.status_code == 403
    assert too_much.get_json() == {
        "detail": "Not Authorized: a client cannot be given scopes you do not hold yourself: connection:delete."
    }
    assert within.status_code == 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OAuthClient)) == 2
    child = db.session.get(OAuthClient, within.get_json()["client_id"])
    assert child.user.email == "root@example.com"  # it acts for the same user, never for more


def test_an_api_token_narrowed_to_some_scopes_grants_no_others(app, client, admin):
    _, secret = tokens.create_token(admin, "t", TEST_ACTOR, scopes=["client:create", "webhook:read"])
    db.session.commit()

    response = client.post(V1 + "/oauth/client", json=["privacy-request:read"], headers=bearer(secret))

    assert response.status_code == 403
    assert "privacy-request:read" in response.get_json()["detail"]


def test_scopes_beyond_the_creator_s_role_are_refused_even_to_an_admin(app, client, make_user, admin_token):
    staff = make_user(role="staff")
    client_id, _ = new_client(staff)

    response = client.put(
        f"{V1}/oauth/client/{client_id}/scope",
        json=["connection:read", "connection:delete"],
        headers=bearer(admin_token),
    )

    assert response.status_code == 403
    assert response.get_json() == {
        "detail": "Not Authorized: a client cannot hold scopes beyond its creator's role (staff): "
        "connection:delete."
    }
    assert db.session.get(OAuthClient, client_id).scopes == sorted(ROLE_SCOPES["staff"])


@pytest.mark.parametrize("role", ["staff", "reviewer"])
def test_only_admins_hold_the_client_scopes(role):
    client_scopes = {"client:create", "client:read", "client:update", "client:delete", "scope:read"}
    assert client_scopes <= ROLE_SCOPES["admin"]
    assert not client_scopes & ROLE_SCOPES[role]


# --- reading, changing and deleting clients --------------------------------------------------------


def test_put_replaces_a_client_s_scopes_and_its_tokens_follow_at_once(app, client, admin, admin_token):
    client_id, secret = new_client(admin, ["connection:read", "privacy-request:read"])
    token = get_token(client, client_id, secret)
    path = f"{V1}/oauth/client/{client_id}/scope"

    response = client.put(path, json=["privacy-request:read"], headers=bearer(admin_token))

    assert response.status_code == 200 and response.get_json() is None
    assert client.get(path, headers=bearer(admin_token)).get_json() == ["privacy-request:read"]
    assert client.get(V1 + "/connection", headers=bearer(token)).status_code == 403
    assert client.get(V1 + "/privacy-request", headers=bearer(token)).status_code == 200
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "oauth_client.scopes_updated")
    ).one()
    assert event.details == {
        "client_id": client_id,
        "before": ["connection:read", "privacy-request:read"],
        "after": ["privacy-request:read"],
    }
    assert event.actor_type == "client" and event.actor_label.startswith("client:")


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PUT", ["connection:read"])])
def test_an_unknown_client_s_scopes_are_a_404(app, client, admin_token, method, body):
    kwargs = {"json": body} if body is not None else {}

    response = client.open(
        f"{V1}/oauth/client/nope/scope", method=method, headers=bearer(admin_token), **kwargs
    )

    assert response.status_code == 404
    assert response.get_json() == {"detail": "No client found with id 'nope'."}


def test_deleting_a_client_stops_its_tokens_at_once(app, client, admin, admin_token):
    client_id, secret = new_client(admin, ["connection:read"])
    token = get_token(client, client_id, secret)
    assert client.get(V1 + "/connection", headers=bearer(token)).status_code == 200

    response = client.delete(f"{V1}/oauth/client/{client_id}", headers=bearer(admin_token))

    assert response.status_code == 200 and response.get_json() is None
    refused = client.get(V1 + "/connection", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json() == {"detail": "Invalid, expired or revoked token."}
    assert (
        client.post(V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret}).status_code
        == 401
    )
    assert db.session.get(OAuthClient, client_id) is None
    hashes = db.session.scalars(sa.select(OAuthAccessToken.token_hash)).all()
    assert hashlib.sha256(token.encode()).hexdigest() not in hashes
    deleted = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "oauth_client.deleted")
    ).one()
    assert deleted.details == {"client_id": client_id, "creator": "root@example.com"}


def test_deleting_an_unknown_client_answers_200_as_fidesops_does(app, client, admin_token):
    response = client.delete(f"{V1}/oauth/client/nope", headers=bearer(admin_token))

    assert response.status_code == 200 and response.get_json() is None
    assert not db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "oauth_client.deleted")
    ).all()


def test_the_scope_list_is_every_scope(app, client, admin_token, make_user):
    response = client.get(V1 + "/oauth/scope", headers=bearer(admin_token))

    assert response.status_code == 200
    assert response.get_json() == list(ALL_SCOPES)
    staff_client = get_token(client, *new_client(make_user(role="staff")))
    refused = client.get(V1 + "/oauth/scope", headers=bearer(staff_client))
    assert refused.status_code == 403
    assert refused.get_json() == {"detail": "Not Authorized: the token lacks the scope 'scope:read'."}


# --- acting as a client ----------------------------------------------------------------------------


def test_a_client_acts_with_its_creator_s_current_role(app, client, admin, make_user):
    make_user(role="admin")  # the last admin cannot be demoted
    client_id, secret = new_client(admin, ["connection:read", "connection:create_or_update"])
    token = get_token(client, client_id, secret)
    assert (
        client.patch(V1 + "/connection", json=[MANUAL_CONNECTION], headers=bearer(token)).status_code == 200
    )

    users.update_user(admin, TEST_ACTOR, role="staff", name=admin.name, active=True)
    db.session.commit()

    assert client.get(V1 + "/connection", headers=bearer(token)).status_code == 200
    assert (
        client.patch(V1 + "/connection", json=[MANUAL_CONNECTION], headers=bearer(token)).status_code == 403
    )
    assert get_token(client, client_id, secret)  # still gets tokens, for what the role still allows

    users.update_user(admin, TEST_ACTOR, role="staff", name=admin.name, active=False)
    db.session.commit()

    assert client.get(V1 + "/connection", headers=bearer(token)).status_code == 401
    response = client.post(V1 + "/oauth/token", data={"client_id": client_id, "client_secret": secret})
    assert response.status_code == 401 and response.get_json() == AUTH_FAILURE


def test_what_a_client_does_is_audited_as_the_client_and_its_creator(app, client, admin):
    client_id, secret = new_client(admin, ["connection:create_or_update"])
    token = get_token(client, client_id, secret)

    client.patch(V1 + "/connection", json=[MANUAL_CONNECTION], headers=bearer(token))

    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "connection.created")).one()
    assert event.actor_type == "client"
    assert event.actor_label == f"client:{client_id} (root@example.com)"
    assert event.actor_user_id == admin.id and event.actor_token_id is None
    issued = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "oauth_client.token_issued")
    ).one()
    assert issued.actor_label == f"client:{client_id} (root@example.com)"
    assert issued.details == {"client_id": client_id, "expires_in": 3600}
    assert db.session.get(OAuthClient, client_id).last_used_at is not None


def test_creating_a_client_is_audited_with_its_scopes(app, client, admin_token):
    response = client.post(V1 + "/oauth/client", json=["webhook:read"], headers=bearer(admin_token))

    event = db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.action == "oauth_client.created")
        .order_by(AuditEvent.id.desc())
    ).first()
    assert event.details == {
        "client_id": response.get_json()["client_id"],
        "creator": "root@example.com",
        "scopes": ["webhook:read"],
    }
    assert event.actor_type == "client"


def test_openapi_is_readable_with_a_client_s_token(app, client, admin_token):
    document = client.get(V1 + "/openapi.json", headers=bearer(admin_token)).get_json()

    assert document["paths"]["/oauth/token"]["post"]["security"] == []
    assert document["paths"]["/oauth/client"]["post"]["x-scope"] == "client:create"
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/api/v1/oauth/token"


# --- the command line ------------------------------------------------------------------------------


def test_create_client_prints_credentials_that_get_a_token(app, client, runner, admin):
    result = runner.invoke(args=["create-client", "root@example.com"])

    assert result.exit_code == 0, result.output
    credentials = json.loads(result.stdout)
    assert set(credentials) == {"client_id", "client_secret"}
    row = db.session.get(OAuthClient, credentials["client_id"])
    assert row.scopes == sorted(ROLE_SCOPES["admin"])
    assert credentials["client_secret"] not in _all_cells("oauth_clients")
    assert f"Created client {row.id} acting for root@example.com" in result.stderr
    token = get_token(client, credentials["client_id"], credentials["client_secret"])
    assert client.get(V1 + "/oauth/scope", headers=bearer(token)).status_code == 200


def test_create_client_takes_scopes_comma_or_space_separated(app, runner, admin):
    result = runner.invoke(
        args=["create-client", "root@example.com", "--scopes", "connection:read, webhook:read"]
    )

    assert result.exit_code == 0, result.output
    row = db.session.get(OAuthClient, json.loads(result.stdout)["client_id"])
    assert row.scopes == ["connection:read", "webhook:read"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@example.com"], "Error: No active user with email nobody@example.com."),
        (["staff@example.com", "--scopes", "connection:delete"], "beyond its creator's role (staff)"),
        (["root@example.com", "--scopes", "root:all"], INVALID_SCOPE),
    ],
)
def test_create_client_refuses_with_a_message_and_exit_1(app, runner, admin, make_user, args, message):
    make_user(role="staff", email="staff@example.com")

    result = runner.invoke(args=["create-client", *args])

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OAuthClient)) == 0


def test_create_client_for_a_staff_user_acts_with_staff_scopes(app, client, runner, make_user):
    make_user(role="staff", email="staff@example.com")

    result = runner.invoke(args=["create-client", "staff@example.com"])

    credentials = json.loads(result.stdout)
    token = get_token(client, credentials["client_id"], credentials["client_secret"])
    assert client.get(V1 + "/privacy-request", headers=bearer(token)).status_code == 200
    assert client.post(V1 + "/oauth/client", json=[], headers=bearer(token)).status_code == 403


# --- fidesops' first steps, as a script would take them --------------------------------------------


def test_fidesops_first_steps_work_unmodified(app, client, runner, admin):
    """The fidesops OAuth guide with the CLI's client in place of the root client, then the manual
    webhook guide's first call, each to the path as the scripts write it."""
    root = json.loads(runner.invoke(args=["create-client", "root@example.com"]).stdout)

    token = client.post(
        "/api/v1/oauth/token",
        data=f"client_id={root['client_id']}&client_secret={root['client_secret']}&grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
    )
    assert token.status_code == 200
    root_token = token.get_json()["access_token"]

    created = client.post(
        "/api/v1/oauth/client/",
        data=json.dumps(["connection:create_or_update", "connection:read"]),
        headers={"Authorization": f"Bearer {root_token}", "Content-Type": "application/json"},
    )
    assert created.status_code == 200
    new = created.get_json()

    token = client.post(
        "/api/v1/oauth/token",
        data={
            "client_id": new["client_id"],
            "client_secret": new["client_secret"],
            "grant_type": "client_credentials",
        },
    )
    new_token = token.get_json()["access_token"]
    patched = client.patch(
        "/api/v1/connection/",
        data=json.dumps([MANUAL_CONNECTION]),
        headers={"Authorization": f"Bearer {new_token}", "Content-Type": "application/json"},
    )

    assert patched.status_code == 200
    assert patched.get_json()["failed"] == []
    assert [c["key"] for c in patched.get_json()["succeeded"]] == ["manual_webhook_key"]
    stored = db.session.scalars(sa.select(ConnectionConfig)).one()
    assert (stored.key, stored.connection_type) == ("manual_webhook_key", "manual_webhook")
    # the new client holds only what it was given
    refused = client.delete("/api/v1/connection/manual_webhook_key/", headers=bearer(new_token))
    assert refused.status_code == 403


# --- the admin page --------------------------------------------------------------------------------


def test_admins_see_every_client_with_creator_scopes_and_last_use(app, client, login_as, make_user):
    staff = make_user(role="staff", email="staff@example.com")
    used_id, used_secret = new_client(staff, ["connection:read"])
    get_token(client, used_id, used_secret)
    idle_id, _ = new_client(make_user(role="admin", email="other@example.com"), ["webhook:read"])
    login_as("admin")

    page = client.get("/admin/tokens/clients").get_data(as_text=True)

    assert used_id in page and idle_id in page
    assert "staff@example.com" in page and "other@example.com" in page
    assert "connection:read" in page and "webhook:read" in page
    assert "never" in page.lower()  # the idle client's last use
    assert 'href="/admin/tokens/clients"' in client.get("/admin/tokens").get_data(as_text=True)


def test_the_page_says_which_scopes_a_demoted_creator_no_longer_lends(app, client, login_as, make_user):
    creator = make_user(role="admin", email="creator@example.com")
    new_client(creator, ["connection:delete", "connection:read"])
    login_as("admin")
    users.update_user(creator, TEST_ACTOR, role="staff", name=creator.name, active=True)
    db.session.commit()

    page = client.get("/admin/tokens/clients").get_data(as_text=True)

    assert "Not in effect (creator@example.com lacks them now): connection:delete" in page


def test_an_admin_deletes_a_client_and_its_tokens_stop(app, client, login_as, admin):
    client_id, secret = new_client(admin, ["connection:read"])
    token = get_token(client, client_id, secret)
    login_as("admin")

    response = client.post(f"/admin/tokens/clients/{client_id}/delete", follow_redirects=True)

    assert response.status_code == 200
    assert f"Client {client_id} deleted: its access tokens stop working at once." in response.get_data(
        as_text=True
    )
    assert db.session.get(OAuthClient, client_id) is None
    api = app.test_client()
    assert api.get(V1 + "/connection", headers=bearer(token)).status_code == 401
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "oauth_client.deleted")).one()
    assert event.actor_type == "user"
    assert client.post("/admin/tokens/clients/nope/delete").status_code == 404
