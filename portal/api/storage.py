"""/api/v1/storage/config: storage destinations, in fidesops' shapes (``StorageDestination``)."""

from __future__ import annotations

from typing import Annotated, Any

from flask import g, jsonify, request
from pydantic import Field, TypeAdapter

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import MAX_BULK, ApiModel, json_body, page_json, page_params, storage_json
from portal.execution import dispatch
from portal.extensions import db
from portal.models import StorageConfig
from portal.services import DomainError, NotFound, ValidationFailed, storage, storage_export


class StorageDestinationIn(ApiModel):
    """One destination of a PATCH; type, details and format are checked by the service, item by item."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    key: Annotated[str | None, Field(max_length=200)] = None
    type: Annotated[str, Field(max_length=50, description="local or s3")]
    details: dict[str, Any] = Field(
        description="local: naming, directory. s3: bucket, naming, auth_method (secret_keys | automatic), "
        "max_retries, region_name, endpoint_url, object_name."
    )
    format: Annotated[str | None, Field(max_length=20, description="json or csv")] = "json"


StorageListIn = TypeAdapter(Annotated[list[StorageDestinationIn], Field(max_length=MAX_BULK)])
SecretsIn = TypeAdapter(dict[str, str | None])


def _upsert_one(item: StorageDestinationIn) -> StorageConfig:
    config = None
    if item.key:
        try:
            config = storage.get_storage_config(item.key)
        except NotFound:
            config = None
    if config is not None:
        return storage.update_storage_config(
            config,
            actor=g.api_actor,
            name=item.name,
            storage_type=item.type,
            details=item.details,
            response_format=item.format,
        )
    return storage.create_storage_config(
        name=item.name,
        key=item.key,
        storage_type=item.type,
        details=item.details,
        response_format=item.format,
        actor=g.api_actor,
    )


@bp.patch("/storage/config")
@requires_scope(scopes.STORAGE_CREATE_OR_UPDATE)
def patch_storage_configs():
    """Create or update destinations by key; each one succeeds or fails on its own."""
    items = StorageListIn.validate_python(json_body())
    succeeded, failed = [], []
    for item in items:
        try:
            with db.session.begin_nested():
                succeeded.append(_upsert_one(item))
        except DomainError as exc:
            failed.append({"message": str(exc), "data": item.model_dump()})
    dispatch.commit_and_run()
    return jsonify(succeeded=[storage_json(c) for c in succeeded], failed=failed)


@bp.get("/storage/config")
@requires_scope(scopes.STORAGE_READ)
def list_storage_configs():
    page, size = page_params()
    items, total = storage.list_storage_configs(page, size)
    return jsonify(page_json([storage_json(c) for c in items], total, page, size))


@bp.get("/storage/config/<key>")
@requires_scope(scopes.STORAGE_READ)
def get_storage_config(key: str):
    return jsonify(storage_json(storage.get_storage_config(key)))


@bp.delete("/storage/config/<key>")
@requires_scope(scopes.STORAGE_DELETE)
def delete_storage_config(key: str):
    storage.delete_storage_config(storage.get_storage_config(key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204


@bp.put("/storage/config/<key>/secret")
@requires_scope(scopes.STORAGE_CREATE_OR_UPDATE)
def put_storage_secrets(key: str):
    """Replace the secrets, then (unless ``?verify=false``) write and delete a probe object with them."""
    config = storage.get_storage_config(key)
    values = SecretsIn.validate_python(json_body())
    verify = request.args.get("verify", "true").lower()
    if verify not in ("true", "false"):
        message = "must be true or false"
        raise ValidationFailed(f"verify {message}", [(("query", "verify"), message)])
    storage.set_secrets(config, values, g.api_actor)
    dispatch.commit_and_run()  # saved before the probe: no write lock held while S3 answers
    result = None
    if verify == "true":
        result = storage_export.test_storage(storage.get_storage_config(key), g.api_actor)
        dispatch.commit_and_run()
    body = {
        "msg": f"Secrets updated for StorageConfig with key: {key}.",
        "test_status": None,
        "failure_reason": None,
    }
    if result is not None:
        body["test_status"] = "succeeded" if result.succeeded else "failed"
        body["failure_reason"] = None if result.succeeded else result.message
    return jsonify(body)
