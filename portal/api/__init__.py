"""The fidesops-compatible JSON API (S6) under /api/v1: bearer tokens, scopes, JSON errors.

Handlers parse JSON with pydantic models (portal/api/schemas.py), call the same services as the HTML
views, and commit through ``dispatch.commit_and_run()``. Every route declares its scope with
``@requires_scope``; a route without one is refused (see ``_authenticate``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Blueprint, current_app, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import update
from werkzeug.exceptions import HTTPException

from portal.api.schemas import BodyError
from portal.errors import API_MESSAGES, upload_too_large
from portal.extensions import csrf, db
from portal.models import ApiToken, utcnow
from portal.models.audit import Actor
from portal.scopes import effective_scopes
from portal.services import (
    Conflict,
    DomainError,
    FieldsChanged,
    Forbidden,
    InvalidState,
    NotFound,
    ValidationFailed,
    oauth_clients,
    tokens,
)


class _ApiBlueprint(Blueprint):
    """Every route answers with and without a trailing slash, as fidesops (FastAPI) does.

    The same view serves both forms: a redirect would make clients re-send a PATCH body, and many do not.
    """

    def add_url_rule(self, rule, endpoint=None, view_func=None, **options):
        options.setdefault("strict_slashes", False)
        super().add_url_rule(rule, endpoint, view_func, **options)


bp = _ApiBlueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

PUBLIC_API_ENDPOINTS = {"api.openapi"}


class ApiError(Exception):
    def __init__(self, status: int, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def requires_scope(scope: str) -> Callable:
    """Declare the scope a route needs; checked against the token's effective scopes."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if scope not in g.api_scopes:
                raise ApiError(403, f"Not Authorized: the token lacks the scope '{scope}'.")
            return view(*args, **kwargs)

        wrapped.required_scope = scope
        return wrapped

    return decorator


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_API_ENDPOINTS:
        return None
    view = current_app.view_functions.get(request.endpoint)
    if view is None or not hasattr(view, "required_scope"):
        raise ApiError(404, "Not Found")  # no route, or a route that forgot its scope: never served
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "Authentication required: send 'Authorization: Bearer <token>'.")
    caller = identify(secret.strip())
    if caller is None:
        raise ApiError(401, "Invalid, expired or revoked token.")
    g.api_actor, g.api_scopes = caller
    return None


def identify(secret: str) -> tuple[Actor, frozenset[str]] | None:
    """Who a bearer token acts as, and with which scopes: an API token, or an OAuth client's access token
    (told apart by their prefixes, so each is one indexed query). None when it is not a valid token."""
    if secret.startswith(oauth_clients.ACCESS_TOKEN_PREFIX):
        access = oauth_clients.find_active_access_token(secret)
        if access is None:
            return None
        if oauth_clients.touch(access):
            db.session.commit()
        return access.actor, access.scopes
    token = tokens.find_active_token(secret)
    if token is None:
        return None
    _touch(token)
    return Actor.for_token(token), effective_scopes(token.user_role, token.scopes)


def _touch(token) -> None:
    """Record use at most once a minute, in its own small transaction (GETs commit nothing else)."""
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        db.session.commit()


def validation_detail(errors: list[tuple[tuple, str]]) -> list[dict]:
    """Service errors as FastAPI-style detail; locations are under ``body`` unless they name ``query``."""
    return [
        {"loc": list(loc) if loc[:1] == ("query",) else ["body", *loc], "msg": msg, "type": "value_error"}
        for loc, msg in errors
    ]


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    db.session.rollback()
    return jsonify(detail=error.detail), error.status


@bp.errorhandler(BodyError)
def _body_error(error: BodyError):
    db.session.rollback()
    return jsonify(detail=str(error)), error.status


@bp.errorhandler(ValidationError)
def _pydantic_error(error: ValidationError):
    db.session.rollback()
    detail = [
        {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    return jsonify(detail=detail), 422


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError):
    db.session.rollback()
    if isinstance(error, ValidationFailed):
        return jsonify(detail=validation_detail(error.errors) or str(error)), 422
    if isinstance(error, NotFound):
        return jsonify(detail=str(error)), 404
    if isinstance(error, Forbidden):
        return jsonify(detail=str(error)), 403
    if isinstance(error, FieldsChanged):
        return jsonify(detail=str(error)), 409
    if isinstance(error, InvalidState | Conflict):
        return jsonify(detail=str(error)), 400
    return jsonify(detail=str(error)), 400


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    db.session.rollback()
    if error.code == 413 and (upload_limit := upload_too_large(api=True)):
        return jsonify(detail=upload_limit), 413
    return jsonify(detail=API_MESSAGES.get(error.code, error.description)), error.code


from portal.api import (  # noqa: E402,F401
    connections,
    datasets,
    delivery,
    oauth,
    openapi,
    policies,
    privacy_requests,
    storage,
    tasks,
    webhooks,
)
