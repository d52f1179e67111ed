"""/api/v1/oauth: fidesops' client-credentials flow, served by Authlib's authorization server.

``POST /oauth/token`` (form fields ``client_id``, ``client_secret``, ``grant_type=client_credentials``, or
HTTP Basic) issues a bearer access token; ``/oauth/client`` creates clients, ``/oauth/client/{id}/scope``
reads and replaces their scopes, ``DELETE /oauth/client/{id}`` deletes one with its tokens, and
``/oauth/scope`` lists every scope. Errors are ``{"detail": ...}`` like the rest of the API; the token
endpoint's also carry OAuth's own ``error`` field, for OAuth client libraries.
"""

from __future__ import annotations

from typing import Annotated

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import g, jsonify, request
from pydantic import Field, TypeAdapter

from portal import scopes
from portal.api import PUBLIC_API_ENDPOINTS, bp, requires_scope
from portal.api.schemas import json_body
from portal.extensions import db
from portal.models import OAuthClient, User
from portal.scopes import ALL_SCOPES
from portal.services import oauth_clients

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
AUTHENTICATION_FAILURE = "Authentication Failure"  # fidesops' word for every refused credential


class _Client(ClientMixin):
    """An ``OAuthClient`` row as Authlib sees it: a confidential client of the client-credentials grant."""

    def __init__(self, row: OAuthClient):
        self.row = row

    def get_client_id(self) -> str:
        return self.row.id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Its scopes as they are now, narrowed to those asked for when the request names any."""
        allowed = oauth_clients.effective_scopes(self.row)
        if scope:
            allowed &= set(scope_to_list(scope))
        return list_to_scope(sorted(allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return oauth_clients.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == ClientCredentialsGrant.GRANT_TYPE


class _ClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    @classmethod
    def check_token_endpoint(cls, oauth_request) -> bool:
        # fidesops lets clients leave grant_type out; any other grant type is refused.
        grant_type = oauth_request.payload.grant_type
        return grant_type in (None, "", cls.GRANT_TYPE) and oauth_request.method == "POST"


class _AuthorizationServer(AuthorizationServer):
    """Authlib's server with the portal's clients, hashed token storage and ``{"detail": ...}`` errors."""

    def __init__(self):
        super().__init__()
        self.scopes_supported = list(ALL_SCOPES)
        self.register_grant(_ClientCredentialsGrant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: oauth_clients.new_access_token(),
                expires_generator=lambda client, grant_type: oauth_clients.token_lifetime_seconds(),
            ),
        )

    def query_client(self, client_id: str) -> _Client | None:
        row = oauth_clients.find_usable_client(client_id)
        return _Client(row) if row is not None else None

    def save_token(self, token: dict, oauth_request) -> None:
        oauth_clients.store_access_token(
            oauth_request.client.row,
            token["access_token"],
            scope_to_list(token.get("scope")) or [],
            token["expires_in"],
        )

    def handle_error_response(self, oauth_request, error):
        status, body, headers = error(self.get_error_uri(oauth_request, error))
        if error.error == "invalid_client":
            # One answer for an unknown client, a wrong secret and no credentials (fidesops' 401), so
            # the answer tells nothing about which client ids exist.
            status, body = 401, {"error": "invalid_client"}
            headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
            headers.append(("WWW-Authenticate", 'Basic realm="api", error="invalid_client"'))
            detail = AUTHENTICATION_FAILURE
        elif error.error == "unsupported_grant_type":
            detail = "Unsupported grant_type: this endpoint issues tokens for 'client_credentials' only."
        elif error.error == "invalid_scope":
            detail = oauth_clients.invalid_scope_message()
        else:
            detail = body.get("error_description") or error.error
        return self.handle_response(status, {"detail": detail, **body}, headers)


authorization = _AuthorizationServer()
PUBLIC_API_ENDPOINTS.add("api.oauth_token")


@bp.post("/oauth/token")
def oauth_token():
    """Public: the client authenticates with its own credentials (form fields or HTTP Basic)."""
    response = authorization.create_token_response()
    if response.status_code == 200:
        db.session.commit()
    else:
        db.session.rollback()
    return response


# --- clients ---------------------------------------------------------------------------------------

ScopeListIn = TypeAdapter(
    Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=len(ALL_SCOPES) * 4)]
)


def _scopes_from_body(*, empty_is_none: bool) -> list[str]:
    """A JSON list of scopes, as fidesops takes it (also ``{"scopes": [...]}``, the shape its guide
    shows). An empty body is no scopes where fidesops allows it (creating a client)."""
    if empty_is_none and not request.get_data(cache=True):
        return []
    data = json_body()
    if isinstance(data, dict) and set(data) == {"scopes"}:
        data = data["scopes"]
    return ScopeListIn.validate_python(data)


def _caller() -> User:
    return db.session.get(User, g.api_actor.user_id)


@bp.post("/oauth/client")
@requires_scope(scopes.CLIENT_CREATE)
def create_oauth_client():
    """A client acting for the caller's user (for a client, its creator), with at most the caller's
    scopes. The secret is in this answer only."""
    wanted = _scopes_from_body(empty_is_none=True)
    client, secret = oauth_clients.create_client(_caller(), wanted, g.api_actor, granted_by=g.api_scopes)
    db.session.commit()
    return jsonify(client_id=client.id, client_secret=secret)


@bp.get("/oauth/client/<client_id>/scope")
@requires_scope(scopes.CLIENT_READ)
def get_client_scopes(client_id: str):
    return jsonify(list(oauth_clients.get_client(client_id).scopes))


@bp.put("/oauth/client/<client_id>/scope")
@requires_scope(scopes.CLIENT_UPDATE)
def set_client_scopes(client_id: str):
    client = oauth_clients.get_client(client_id)
    wanted = _scopes_from_body(empty_is_none=False)
    oauth_clients.set_scopes(client, wanted, g.api_actor, granted_by=g.api_scopes)
    db.session.commit()
    return jsonify(None)


@bp.delete("/oauth/client/<client_id>")
@requires_scope(scopes.CLIENT_DELETE)
def delete_oauth_client(client_id: str):
    """Idempotent, as in fidesops: deleting a client that is not there answers 200 as well."""
    client = oauth_clients.find_client(client_id)
    if client is not None:
        oauth_clients.delete_client(client, g.api_actor)
        db.session.commit()
    return jsonify(None)


@bp.get("/oauth/scope")
@requires_scope(scopes.SCOPE_READ)
def list_scopes():
    return jsonify(list(ALL_SCOPES))
