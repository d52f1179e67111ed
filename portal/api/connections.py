"""/api/v1/connection: create, upsert, list, read, delete (fidesops shapes and messages)."""

from __future__ import annotations

from flask import g, jsonify

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import ConnectionListIn, connection_json, json_body, page_json, page_params
from portal.execution import dispatch
from portal.extensions import db
from portal.services import DomainError, NotFound, connections


def _bulk(upsert: bool):
    items = ConnectionListIn.validate_python(json_body())
    succeeded, failed = [], []
    for item in items:
        try:
            with db.session.begin_nested():
                conn = _upsert_one(item) if upsert else _create_one(item)
                succeeded.append(conn)
        except DomainError as exc:
            failed.append({"message": str(exc), "data": item.model_dump()})
    dispatch.commit_and_run()
    return jsonify(succeeded=[connection_json(c) for c in succeeded], failed=failed)


def _create_one(item):
    return connections.create_connection(
        name=item.name,
        key=item.key,
        connection_type=item.connection_type,
        access=item.access,
        description=item.description,
        disabled=item.disabled,
        actor=g.api_actor,
    )


def _upsert_one(item):
    if item.key:
        try:
            conn = connections.get_connection(item.key)
        except NotFound:
            conn = None
        if conn is not None:
            return connections.update_connection(
                conn,
                actor=g.api_actor,
                connection_type=item.connection_type,
                name=item.name,
                description=item.description,
                access=item.access,
                disabled=item.disabled,
            )
    return _create_one(item)


@bp.post("/connection")
@requires_scope(scopes.CONNECTION_CREATE_OR_UPDATE)
def create_connections():
    return _bulk(upsert=False)


@bp.patch("/connection")
@requires_scope(scopes.CONNECTION_CREATE_OR_UPDATE)
def upsert_connections():
    return _bulk(upsert=True)


@bp.get("/connection")
@requires_scope(scopes.CONNECTION_READ)
def list_connections():
    page, size = page_params()
    items, total = connections.list_connections(page, size)
    return jsonify(page_json([connection_json(c) for c in items], total, page, size))


@bp.get("/connection/<key>")
@requires_scope(scopes.CONNECTION_READ)
def get_connection(key: str):
    return jsonify(connection_json(connections.get_connection(key)))


@bp.delete("/connection/<key>")
@requires_scope(scopes.CONNECTION_DELETE)
def delete_connection(key: str):
    connections.delete_connection(connections.get_connection(key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204
