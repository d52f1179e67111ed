"""Admin token page (create shown once, list, revoke) and the API reference page."""

import re

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiToken, AuditEvent


def test_admin_creates_token_shown_once_and_stored_hashed(client, login_as):
    admin = login_as("admin")
    response = client.post(
        "/admin/tokens",
        data={"name": "ticketing", "user_id": admin.id, "scopes": ["connection:read", "webhook:read"]},
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(mwp_[^"]+)"', response.get_data(as_text=True)).group(1)
    token = db.session.scalars(sa.select(ApiToken)).one()
    assert token.scopes == ["connection:read", "webhook:read"]
    assert secret not in repr(
        db.session.execute(sa.text("SELECT * FROM api_tokens")).all()
    )  # only the hash is stored
    api = client.get("/api/v1/connection", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    listing = client.get("/admin/tokens").get_data(as_text=True)
    assert "ticketing" in listing and secret not in listing
    assert db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action == "token.created")).all()


def test_revoke_stops_the_token_at_once(client, login_as):
    admin = login_as("admin")
    page = client.post("/admin/tokens", data={"name": "t", "user_id": admin.id}).get_data(as_text=True)
    secret = re.search(r'value="(mwp_[^"]+)"', page).group(1)
    token = db.session.scalars(sa.select(ApiToken)).one()
    response = client.post(f"/admin/tokens/{token.id}/revoke", follow_redirects=True)
    assert "revoked" in response.get_data(as_text=True)
    assert client.get("/api/v1/connection", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_token_name_required_and_page_admin_only(client, login_as):
    admin = login_as("admin")
    response = client.post("/admin/tokens", data={"name": "", "user_id": admin.id})
    assert "This field is required." in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_token_page_forbidden_for_staff(client, login_as):
    login_as("staff")
    assert client.get("/admin/tokens").status_code == 403


def test_api_docs_page_lists_every_endpoint(client, login_as):
    login_as("reviewer")
    html = client.get("/api-docs").get_data(as_text=True)
    assert "/api/v1/privacy-request/{request_id}/resume_from_requires_input" in html
    assert "privacy-request:upload_data" in html
