"""/api/v1/connection/{key}/dataset (fidesops shapes), the connection secrets and the connection test."""

from __future__ import annotations

from typing import Annotated, Any

from flask import g, jsonify, request
from pydantic import Field, TypeAdapter

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import MAX_BULK, json_body, page_json, page_params
from portal.execution import dispatch
from portal.services import ValidationFailed, connections, datasets, db_connections

DatasetListIn = TypeAdapter(Annotated[list[dict[str, Any]], Field(max_length=MAX_BULK)])
SecretsIn = TypeAdapter(dict[str, str | int | None])


def _database(key: str):
    return db_connections.require_database(connections.get_connection(key))


@bp.patch("/connection/<key>/dataset")
@requires_scope(scopes.DATASET_CREATE_OR_UPDATE)
def patch_datasets(key: str):
    """Create or replace datasets by fides_key; each one succeeds or fails on its own."""
    conn = _database(key)
    documents = DatasetListIn.validate_python(json_body())
    saved, failed = datasets.bulk_upsert(conn, documents, g.api_actor)
    dispatch.commit_and_run()
    return jsonify(succeeded=[datasets.as_written(config) for config in saved], failed=failed)


@bp.get("/connection/<key>/dataset")
@requires_scope(scopes.DATASET_READ)
def list_datasets(key: str):
    conn = _database(key)
    page, size = page_params()
    items, total = datasets.list_datasets(conn, page, size)
    return jsonify(page_json([datasets.as_written(config) for config in items], total, page, size))


@bp.get("/connection/<key>/dataset/<fides_key>")
@requires_scope(scopes.DATASET_READ)
def get_dataset(key: str, fides_key: str):
    return jsonify(datasets.as_written(datasets.get_dataset(_database(key), fides_key)))


@bp.delete("/connection/<key>/dataset/<fides_key>")
@requires_scope(scopes.DATASET_DELETE)
def delete_dataset(key: str, fides_key: str):
    datasets.delete_dataset(_database(key), fides_key, g.api_actor)
    dispatch.commit_and_run()
    return "", 204


def _test_json(result, msg: str) -> dict[str, Any]:
    return {
        "msg": msg,
        "test_status": "succeeded" if result.succeeded else "failed",
        "failure_reason": None if result.succeeded else result.message,
    }


@bp.put("/connection/<key>/secret")
@requires_scope(scopes.CONNECTION_CREATE_OR_UPDATE)
def put_secrets(key: str):
    """Replace the connection details (the whole set, as in fidesops); ``?verify=false`` skips the test."""
    conn = _database(key)
    values = SecretsIn.validate_python(json_body())
    verify = request.args.get("verify", "true").lower()
    if verify not in ("true", "false"):
        message = "must be true or false"
        raise ValidationFailed(f"verify {message}", [(("query", "verify"), message)])
    db_connections.save_secrets(conn, values, g.api_actor, keep_password=False)
    result = db_connections.test_connection(conn, g.api_actor) if verify == "true" else None
    dispatch.commit_and_run()
    msg = f"Secrets updated for ConnectionConfig with key: {conn.key}."
    if result is None:
        return jsonify(msg=msg, test_status=None, failure_reason=None)
    return jsonify(_test_json(result, msg))


@bp.get("/connection/<key>/test")
@requires_scope(scopes.CONNECTION_READ)
def test_connection(key: str):
    conn = _database(key)
    result = db_connections.test_connection(conn, g.api_actor)
    dispatch.commit_and_run()
    return jsonify(_test_json(result, f"Test completed for ConnectionConfig with key: {conn.key}."))
