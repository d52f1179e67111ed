"""/api/v1/connection/{key}/access_manual_webhook and /api/v1/access_manual_webhook."""

from __future__ import annotations

from flask import g, jsonify

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import WebhookIn, json_body, webhook_json
from portal.execution import dispatch, gate
from portal.services import ValidationFailed, connections, webhooks


def _fields_from_body() -> list:
    body = WebhookIn.model_validate(json_body())
    return body.fields


def _prefixed(exc: ValidationFailed) -> ValidationFailed:
    """Field-rule locations are list indexes; in the API they sit under ``fields``."""
    return ValidationFailed(str(exc), [(("fields", *loc), msg) for loc, msg in exc.errors])


def _save(key: str, create: bool):
    conn = connections.get_connection(key)
    fields = _fields_from_body()
    try:
        if create:
            webhook = webhooks.create_webhook(conn, fields, g.api_actor)
        else:
            webhook = webhooks.replace_fields(conn, fields, g.api_actor)
    except ValidationFailed as exc:
        raise _prefixed(exc) from exc
    dispatch.commit_and_run()
    return webhook_json(conn, webhook)


@bp.post("/connection/<key>/access_manual_webhook")
@requires_scope(scopes.WEBHOOK_CREATE_OR_UPDATE)
def create_webhook(key: str):
    return jsonify(_save(key, create=True)), 201


@bp.patch("/connection/<key>/access_manual_webhook")
@requires_scope(scopes.WEBHOOK_CREATE_OR_UPDATE)
def patch_webhook(key: str):
    return jsonify(_save(key, create=False))


@bp.get("/connection/<key>/access_manual_webhook")
@requires_scope(scopes.WEBHOOK_READ)
def get_webhook(key: str):
    conn = connections.get_connection(key)
    return jsonify(webhook_json(conn, webhooks.get_webhook(conn)))


@bp.delete("/connection/<key>/access_manual_webhook")
@requires_scope(scopes.WEBHOOK_DELETE)
def delete_webhook(key: str):
    webhooks.delete_webhook(connections.get_connection(key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204


@bp.get("/access_manual_webhook")
@requires_scope(scopes.WEBHOOK_READ)
def list_webhooks():
    """Every enabled manual webhook with at least one field (what a request waits for)."""
    return jsonify([webhook_json(conn, hook) for conn, hook in gate.gated_webhook_models()])
