"""The OpenAPI 3.1 document of /api/v1, built from the pydantic request models and the route table.

Over 400 lines because it is one document: the paths, their parameters and the shared schemas refer to
each other, and the text of every operation is data, not logic.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask_login import current_user
from pydantic.json_schema import models_json_schema

from portal import scopes
from portal.api import ApiError, bp, identify
from portal.api.policies import PolicyIn, RuleIn, TargetIn
from portal.api.schemas import (
    MAX_BULK,
    ConnectionIn,
    PrivacyRequestIn,
    PrivacyRequestSearchIn,
    ReviewIn,
    WebhookIn,
)
from portal.api.storage import StorageDestinationIn
from portal.models.requests import STATUS_VALUES
from portal.routing import MAX_PAGE
from portal.services import storage as storage_service


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


STRING_OR_NULL = {"anyOf": [{"type": "string"}, {"type": "null"}]}
# A manual value as stored and answered: typed by its field (number, yes/no as boolean, date and text as
# strings); an upload may give numbers and booleans as strings too.
MANUAL_VALUE = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"type": "object"}, "description": "A file field: its files"},
    ]
}
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}

RESPONSE_SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationErrorResponse": {
        "type": "object",
        "properties": {
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        },
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["loc", "msg", "type"],
                },
            }
        },
    },
    "Connection": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "key": {"type": "string"},
            "description": STRING_OR_NULL,
            "connection_type": {"type": "string", "enum": ["manual_webhook", "postgres", "mysql", "sqlite"]},
            "access": {"type": "string", "enum": ["read", "write"]},
            "disabled": {"type": "boolean"},
            "disabled_at": TIME,
            "created_at": TIME,
            "updated_at": TIME,
        },
        "required": ["name", "key", "connection_type", "access", "disabled"],
    },
    "FieldDefinition": {
        "type": "object",
        "properties": {
            "pii_field": {"type": "string"},
            "dsr_package_label": {"type": "string"},
            "type": {
                "type": "string",
                "enum": ["text", "textarea", "email", "number", "date", "boolean", "file"],
            },
            "required": {"type": "boolean"},
            "help_text": STRING_OR_NULL,
        },
        "required": ["pii_field", "dsr_package_label"],
    },
    "ManualWebhook": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "fields": {"type": "array", "items": ref("FieldDefinition")},
            "version": {"type": "integer"},
            "connection_config": ref("Connection"),
        },
        "required": ["id", "fields", "connection_config"],
    },
    "PrivacyRequest": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "external_id": STRING_OR_NULL,
            "status": {"type": "string", "enum": list(STATUS_VALUES)},
            "policy": ref("Policy"),
            "created_at": TIME,
            "due_date": TIME,
            "days_left": {
                "type": ["integer", "null"],
                "description": "Days until the due date (negative: overdue).",
            },
            "started_processing_at": TIME,
            "finished_processing_at": TIME,
            "identity_verified_at": TIME,
            "paused_at": TIME,
            "reviewed_at": TIME,
            "reviewed_by": STRING_OR_NULL,
            "reviewer": {
                "type": ["object", "null"],
                "properties": {"id": {"type": "string"}, "username": {"type": "string"}},
            },
            "identity": {
                "type": ["object", "null"],
                "description": "Only with include_identities=true (audited).",
                "properties": {"email": STRING_OR_NULL, "phone_number": STRING_OR_NULL},
            },
            "action_required_details": {"type": ["object", "null"]},
            "resume_endpoint": {
                "type": ["string", "null"],
                "description": "Where to resume it: /privacy-request/{id}/resume_from_requires_input while it "
                "waits for manual input.",
            },
            "results": {
                "type": "object",
                "description": "Only with verbose=true: the execution log grouped by dataset.",
                "additionalProperties": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ExecutionLog"},
                },
            },
            "denial_reason": STRING_OR_NULL,
            "error_message": STRING_OR_NULL,
        },
        "required": ["id", "status", "policy", "created_at"],
    },
    "ExecutionLog": {
        "type": "object",
        "description": "One entry of fidesops' execution log: a collection's rows found, an error, or a review.",
        "properties": {
            "connection_key": STRING_OR_NULL,
            "dataset_name": STRING_OR_NULL,
            "collection_name": STRING_OR_NULL,
            "fields_affected": {"type": ["array", "null"]},
            "message": STRING_OR_NULL,
            "action_type": STRING_OR_NULL,
            "status": {"type": "string"},
            "updated_at": TIME,
        },
    },
    "ManualInputView": {
        "type": "object",
        "properties": {
            "checked": {"type": "boolean"},
            "fields": {"type": "object", "additionalProperties": MANUAL_VALUE},
        },
        "required": ["checked", "fields"],
    },
    "UploadBody": {
        "type": "object",
        "description": "Label → value (string or null; for number and yes/no fields also a JSON number or "
        "boolean). Values are stored typed: numbers as numbers, yes/no as booleans, dates as YYYY-MM-DD. A "
        "value that does not convert is refused (422) naming its label. {} means 'searched, nothing "
        "found'; missing labels are stored as null; the whole entry is replaced.",
        "additionalProperties": MANUAL_VALUE,
    },
    "AccessToken": {
        "type": "object",
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "Seconds (PORTAL_OAUTH_TOKEN_MINUTES × 60)"},
            "scope": {"type": "string", "description": "The scopes granted, space-separated"},
        },
        "required": ["access_token", "token_type", "expires_in"],
    },
    "TokenRequest": {
        "type": "object",
        "properties": {
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials"],
                "description": "Optional, as in fidesops; any other value is refused.",
            },
            "scope": {
                "type": "string",
                "description": "Optional, space-separated: a token with fewer of the client's scopes.",
            },
        },
        "description": "Form-encoded. The credentials may instead come as HTTP Basic (client_id:client_secret).",
    },
    "TokenError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "error": {"type": "string", "description": "OAuth 2.0 error code (RFC 6749 §5.2)"},
            "error_description": {"type": "string"},
        },
        "required": ["detail", "error"],
    },
    "ClientCreated": {
        "type": "object",
        "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"}},
        "required": ["client_id", "client_secret"],
        "description": "The secret is in this answer only: the portal keeps its hash.",
    },
    "ScopeList": {"type": "array", "items": {"type": "string", "enum": list(scopes.ALL_SCOPES)}},
    "AccessPackage": {
        "type": "object",
        "description": '{"<dataset>:<collection>" or "<connection key>": [ {field: value or null} ]}',
        "additionalProperties": {"type": "array", "items": {"type": "object"}},
    },
}


def _bulk_schema(item: str) -> dict:
    return {
        "type": "object",
        "properties": {
            "succeeded": {"type": "array", "items": ref(item)},
            "failed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "data": {"type": "object"}},
                    "required": ["message", "data"],
                },
            },
        },
        "required": ["succeeded", "failed"],
    }


FIDESOPS_FLAGS = [
    {
        "name": "include_identities",
        "in": "query",
        "schema": {"type": "boolean"},
        "description": "Each request's identity in `identity` (audited as a reveal).",
    },
    {
        "name": "verbose",
        "in": "query",
        "schema": {"type": "boolean"},
        "description": "Execution logs in `results`.",
    },
]


def _page_schema(item: str) -> dict:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "size": {"type": "integer"},
        },
        "required": ["items", "total", "page", "size"],
    }


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": _json(ref("Error"), "Missing, invalid, expired or revoked token"),
    "403": _json(ref("Error"), "The token lacks the scope"),
}
BODY_ERRORS = {
    "400": _json(ref("Error"), "Malformed JSON, or the action is not allowed in the current state"),
    "413": _json(ref("Error"), "Body over 1 MB"),
    "415": _json(ref("Error"), "Body is not application/json"),
    "422": _json(ref("ValidationErrorResponse"), "Validation error naming the field"),
}
NOT_FOUND = {"404": _json(ref("Error"), "Not found")}


def _path_param(name: str, description: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


KEY = _path_param("key", "Connection key")
CLIENT_ID = _path_param("client_id", "OAuth client id")
REQUEST_ID = _path_param("request_id", "Privacy request id (pri_...)")
PAGING = [
    {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    {
        "name": "size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    },
]


def _op(
    summary: str,
    scope: str,
    responses: dict,
    *,
    body: dict | None = None,
    params=(),
    extra=(),
    description: str = "",
    multipart: bool = False,
) -> dict:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": f"{description} Scope: `{scope}`.".lstrip(),
        "security": [{"bearer": [scope]}, {"oauth2": [scope]}],
        "x-scope": scope,
        "parameters": list(params),
        "responses": {**responses, **ERRORS, **dict(extra)},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if multipart:
        operation["requestBody"]["content"]["multipart/form-data"] = {
            "schema": {"type": "object", "additionalProperties": {"type": "string", "format": "binary"}}
        }
    return operation


def _bulk_list(model: str) -> dict:
    return {"type": "array", "maxItems": 50, "items": ref(model)}


SCOPES_BODY = {
    "anyOf": [ref("ScopeList"), {"type": "object", "properties": {"scopes": ref("ScopeList")}}],
    "description": 'A list of scopes (or {"scopes": [...]}, the shape fidesops\' guide shows).',
}
SCOPE_ERRORS = {
    "403": _json(ref("Error"), "The token lacks the scope, or a scope asked for is beyond the caller's"),
    "422": _json(
        {"anyOf": [ref("Error"), ref("ValidationErrorResponse")]},
        '"Invalid Scope. Scopes must be one of [...]" (fidesops\' message), or a body that is no list',
    ),
}


def _oauth_paths() -> dict:
    s = scopes
    return {
        "/oauth/token": {
            "post": {
                "summary": "Get an access token with a client's credentials (client_credentials grant)",
                "description": "No bearer token: the client authenticates with its id and secret. The "
                "access token acts with the client's scopes within its creator's current role, expires "
                "after `expires_in` seconds, and stops working at once when the client is deleted.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": ref("TokenRequest")}},
                },
                "responses": {
                    "200": _json(ref("AccessToken")),
                    "400": _json(ref("TokenError"), "Unsupported grant_type, or an unknown scope"),
                    "401": _json(
                        ref("TokenError"),
                        '"Authentication Failure": unknown client, wrong '
                        "secret, no credentials, or the client's creator is deactivated",
                    ),
                },
            },
        },
        "/oauth/client": {
            "post": _op(
                "Create a client; its secret is in this answer only",
                s.CLIENT_CREATE,
                {"200": _json(ref("ClientCreated"))},
                body=SCOPES_BODY,
                extra={**BODY_ERRORS, **SCOPE_ERRORS},
                description="The client acts for the caller's user (for a client: its creator) with at "
                "most the caller's scopes. An empty body creates a client without scopes.",
            ),
        },
        "/oauth/client/{client_id}": {
            "delete": _op(
                "Delete a client and its access tokens (idempotent: an unknown id answers 200 too)",
                s.CLIENT_DELETE,
                {"200": _json({"type": "null"})},
                params=[CLIENT_ID],
            ),
        },
        "/oauth/client/{client_id}/scope": {
            "get": _op(
                "A client's scopes",
                s.CLIENT_READ,
                {"200": _json(ref("ScopeList")), **NOT_FOUND},
                params=[CLIENT_ID],
            ),
            "put": _op(
                "Replace a client's scopes (its tokens act with the new ones at once)",
                s.CLIENT_UPDATE,
                {"200": _json({"type": "null"}), **NOT_FOUND},
                body=SCOPES_BODY,
                params=[CLIENT_ID],
                extra={**BODY_ERRORS, **SCOPE_ERRORS},
                description="Never beyond the caller's scopes, nor beyond the role of the client's creator.",
            ),
        },
        "/oauth/scope": {
            "get": _op("Every scope there is", s.SCOPE_READ, {"200": _json(ref("ScopeList"))}),
        },
    }


def _dataset_routes() -> tuple[dict, dict]:
    """The paths and component schemas of the dataset and database-connection routes (api/datasets.py)."""
    s = scopes
    dataset = {
        "type": "object",
        "description": "A fides dataset: fides_key, name, collections [{name, fields [{name, "
        "data_categories, fides_meta {identity, primary_key, data_type, references [{dataset, field, "
        "direction}]}}]}]. fidesops_meta is accepted as the older name of fides_meta.",
        "properties": {
            "fides_key": {"type": "string"},
            "name": {"type": "string"},
            "collections": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["fides_key", "collections"],
        "additionalProperties": True,
    }
    secrets = {
        "type": "object",
        "description": "A connection URL, or the parts (fidesops names); SQLite takes url or path.",
        "properties": {
            name: {"type": "string"}
            for name in ("url", "host", "dbname", "username", "password", "db_schema", "path")
        }
        | {"port": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
        "additionalProperties": False,
    }
    test_result = {
        "type": "object",
        "properties": {
            "msg": {"type": "string"},
            "test_status": {"anyOf": [{"type": "string", "enum": ["succeeded", "failed"]}, {"type": "null"}]},
            "failure_reason": STRING_OR_NULL,
        },
        "required": ["msg", "test_status", "failure_reason"],
    }
    components = {
        "Dataset": dataset,
        "DatasetBulkResponse": _bulk_schema("Dataset"),
        "DatasetPage": _page_schema("Dataset"),
        "ConnectionSecrets": secrets,
        "ConnectionTestResult": test_result,
    }
    fides_key = _path_param("fides_key", "Dataset fides_key")
    paths = {
        "/connection/{key}/dataset": {
            "patch": _op(
                "Create or replace datasets of a database connection (by fides_key)",
                s.DATASET_CREATE_OR_UPDATE,
                {"200": _json(ref("DatasetBulkResponse")), **NOT_FOUND},
                body={"type": "array", "maxItems": MAX_BULK, "items": ref("Dataset")},
                params=[KEY],
                extra=BODY_ERRORS,
            ),
            "get": _op(
                "List the datasets of a database connection, newest first",
                s.DATASET_READ,
                {"200": _json(ref("DatasetPage")), **NOT_FOUND},
                params=[KEY, *PAGING],
                extra={"400": BODY_ERRORS["400"], "422": BODY_ERRORS["422"]},
            ),
        },
        "/connection/{key}/dataset/{fides_key}": {
            "get": _op(
                "Get one dataset",
                s.DATASET_READ,
                {"200": _json(ref("Dataset")), **NOT_FOUND},
                params=[KEY, fides_key],
                extra={"400": BODY_ERRORS["400"]},
            ),
            "delete": _op(
                "Delete a dataset (refused while another dataset references it)",
                s.DATASET_DELETE,
                {"204": {"description": "Deleted"}, **NOT_FOUND},
                params=[KEY, fides_key],
                extra={"400": BODY_ERRORS["400"]},
            ),
        },
        "/connection/{key}/secret": {
            "put": _op(
                "Replace the connection details of a database connection and test them",
                s.CONNECTION_CREATE_OR_UPDATE,
                {"200": _json(ref("ConnectionTestResult")), **NOT_FOUND},
                body=ref("ConnectionSecrets"),
                params=[
                    KEY,
                    {"name": "verify", "in": "query", "schema": {"type": "boolean", "default": True}},
                ],
                extra=BODY_ERRORS,
            ),
        },
        "/connection/{key}/test": {
            "get": _op(
                "Test a database connection (and that its dataset's tables and columns exist)",
                s.CONNECTION_READ,
                {"200": _json(ref("ConnectionTestResult")), **NOT_FOUND},
                params=[KEY],
                extra={"400": BODY_ERRORS["400"]},
            ),
        },
    }
    return paths, components


def build_document() -> dict:
    _, defs = models_json_schema(
        [
            (m, "validation")
            for m in (ConnectionIn, WebhookIn, PrivacyRequestIn, PrivacyRequestSearchIn, ReviewIn)
        ],
        ref_template="#/components/schemas/{model}",
    )
    components = {**defs.get("$defs", {}), **RESPONSE_SCHEMAS}
    components["ConnectionBulkResponse"] = _bulk_schema("Connection")
    components["PrivacyRequestBulkResponse"] = _bulk_schema("PrivacyRequest")
    components["ConnectionPage"] = _page_schema("Connection")
    components["PrivacyRequestPage"] = _page_schema("PrivacyRequest")
    s = scopes
    paths = {
        "/connection": {
            "post": _op(
                "Create connections",
                s.CONNECTION_CREATE_OR_UPDATE,
                {"200": _json(ref("ConnectionBulkResponse"))},
                body=_bulk_list("ConnectionIn"),
                extra=BODY_ERRORS,
            ),
            "patch": _op(
                "Create or update connections by key",
                s.CONNECTION_CREATE_OR_UPDATE,
                {"200": _json(ref("ConnectionBulkResponse"))},
                body=_bulk_list("ConnectionIn"),
                extra=BODY_ERRORS,
            ),
            "get": _op(
                "List connections",
                s.CONNECTION_READ,
                {"200": _json(ref("ConnectionPage"))},
                params=PAGING,
                extra={"422": BODY_ERRORS["422"]},
            ),
        },
        "/connection/{key}": {
            "get": _op(
                "Get a connection",
                s.CONNECTION_READ,
                {"200": _json(ref("Connection")), **NOT_FOUND},
                params=[KEY],
            ),
            "delete": _op(
                "Delete a connection (its webhook and saved inputs with it); waiting requests are re-evaluated",
                s.CONNECTION_DELETE,
                {"204": {"description": "Deleted"}, **NOT_FOUND},
                params=[KEY],
            ),
        },
        "/connection/{key}/access_manual_webhook": {
            "post": _op(
                "Create the manual webhook of a connection",
                s.WEBHOOK_CREATE_OR_UPDATE,
                {"201": _json(ref("ManualWebhook"), "Created"), **NOT_FOUND},
                body=ref("WebhookIn"),
                params=[KEY],
                extra=BODY_ERRORS,
            ),
            "patch": _op(
                "Replace (or create) the field list; a changed list gets a new version",
                s.WEBHOOK_CREATE_OR_UPDATE,
                {"200": _json(ref("ManualWebhook")), **NOT_FOUND},
                body=ref("WebhookIn"),
                params=[KEY],
                extra=BODY_ERRORS,
            ),
            "get": _op(
                "Get the manual webhook of a connection",
                s.WEBHOOK_READ,
                {"200": _json(ref("ManualWebhook")), **NOT_FOUND},
                params=[KEY],
            ),
            "delete": _op(
                "Delete the manual webhook; waiting requests are re-evaluated",
                s.WEBHOOK_DELETE,
                {"204": {"description": "Deleted"}, **NOT_FOUND},
                params=[KEY],
            ),
        },
        "/access_manual_webhook": {
            "get": _op(
                "Every enabled manual webhook with fields",
                s.WEBHOOK_READ,
                {"200": _json({"type": "array", "items": ref("ManualWebhook")})},
            ),
        },
        "/privacy-request": {
            "post": _op(
                "Create privacy requests",
                s.PRIVACY_REQUEST_CREATE,
                {"200": _json(ref("PrivacyRequestBulkResponse"))},
                body=_bulk_list("PrivacyRequestIn"),
                extra=BODY_ERRORS,
            ),
            "get": _op(
                "List privacy requests, newest first",
                s.PRIVACY_REQUEST_READ,
                {"200": _json(ref("PrivacyRequestPage"))},
                params=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "string", "enum": list(STATUS_VALUES)}},
                        "style": "form",
                        "explode": True,
                    },
                    {"name": "request_id", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "identity",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Email or phone number. Kept for fidesops compatibility, but it puts "
                        "the identity in the URL, and so in access logs, proxy logs and browser history: use "
                        "`POST /privacy-request/search` instead.",
                    },
                    *FIDESOPS_FLAGS,
                    *PAGING,
                ],
                extra={"422": BODY_ERRORS["422"]},
            ),
        },
        "/privacy-request/search": {
            "post": _op(
                "Search privacy requests, newest first: the filters of the GET list in the body",
                s.PRIVACY_REQUEST_READ,
                {"200": _json(ref("PrivacyRequestPage"))},
                body=ref("PrivacyRequestSearchIn"),
                params=PAGING,
                extra=BODY_ERRORS,
                description="Search by identity here rather than with the GET list's `identity` "
                "parameter: a body stays out of URLs and logs. Unknown fields are refused (422).",
            ),
        },
        "/privacy-request/administrate/approve": {
            "patch": _op(
                "Approve pending requests",
                s.PRIVACY_REQUEST_REVIEW,
                {"200": _json(ref("PrivacyRequestBulkResponse"))},
                body=ref("ReviewIn"),
                extra=BODY_ERRORS,
            ),
        },
        "/privacy-request/administrate/deny": {
            "patch": _op(
                "Deny pending requests (with a reason)",
                s.PRIVACY_REQUEST_REVIEW,
                {"200": _json(ref("PrivacyRequestBulkResponse"))},
                body=ref("ReviewIn"),
                extra=BODY_ERRORS,
            ),
        },
        "/privacy-request/{request_id}/access_manual_webhook/{key}": {
            "patch": _op(
                "Upload manual data (only while requires_input)",
                s.PRIVACY_REQUEST_UPLOAD_DATA,
                {"200": _json(ref("ManualInputView")), **NOT_FOUND},
                body=ref("UploadBody"),
                params=[REQUEST_ID, KEY],
                extra=BODY_ERRORS,
                description=(
                    "Ours besides fidesops' JSON: `multipart/form-data`, for entries with files — the other "
                    "fields as form fields, each file as a part named after its field's label or "
                    "pii_field; a file field's form values are the ids of stored files to keep (in JSON: "
                    "a list of those ids). Files not kept are removed."
                ),
                multipart=True,
            ),
            "get": _op(
                "View manual data; checked is false until entered against the current fields",
                s.PRIVACY_REQUEST_VIEW_DATA,
                {"200": _json(ref("ManualInputView")), **NOT_FOUND},
                params=[REQUEST_ID, KEY],
            ),
        },
        "/privacy-request/{request_id}/resume_from_requires_input": {
            "post": _op(
                "Resume once every manual system is done",
                s.PRIVACY_REQUEST_RESUME,
                {
                    "200": _json(ref("PrivacyRequest")),
                    "400": _json(ref("Error"), "Not in requires_input, or data missing"),
                    **NOT_FOUND,
                },
                params=[REQUEST_ID],
            ),
        },
        "/privacy-request/{request_id}/log": {
            "get": _op(
                "The request's execution log (fidesops' shape), oldest first",
                s.PRIVACY_REQUEST_READ,
                {"200": _json(_page_schema("ExecutionLog")), **NOT_FOUND},
                params=[REQUEST_ID, *PAGING],
            ),
        },
        "/privacy-request/{request_id}/package": {
            "get": _op(
                "The final access package",
                s.PRIVACY_REQUEST_DOWNLOAD_PACKAGE,
                {"200": _json(ref("AccessPackage")), **NOT_FOUND},
                params=[REQUEST_ID],
            ),
        },
        **_oauth_paths(),
    }
    for extra_paths, extra_components in (
        _dataset_routes(),
        _storage_routes(),
        _policy_routes(),
        _delivery_routes(),
        _workflow_routes(),
    ):
        paths.update(extra_paths)
        components.update(extra_components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Manual Webhook Portal API",
            "version": "1",
            "description": "fidesops-compatible manual webhook API. Authenticate with "
            "`Authorization: Bearer <token>`: an API token (from `flask create-token` or the admin token "
            "page), or an OAuth client's access token (`POST /oauth/token`). Every path also answers "
            "with a trailing slash.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/api/v1/oauth/token",
                            "scopes": {scope: scope for scope in scopes.ALL_SCOPES},
                        }
                    },
                },
            },
        },
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi():
    """Readable by signed-in users and by any valid token (it holds no data)."""
    if not current_user.is_authenticated:
        from flask import request

        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or identify(secret.strip()) is None:
            raise ApiError(401, "Authentication required: sign in, or send 'Authorization: Bearer <token>'.")
    document = current_app.extensions.get("portal_openapi")
    if document is None:
        document = current_app.extensions["portal_openapi"] = build_document()
    return jsonify(document)


def _storage_routes() -> tuple[dict, dict]:
    """The storage destinations' paths and component schemas."""
    s = scopes
    destination_in = StorageDestinationIn.model_json_schema(ref_template="#/components/schemas/{model}")
    details = {
        "type": "object",
        "description": "local: naming (request_id), directory (inside the operator's STORAGE_LOCAL_ROOT; "
        "blank: the root). s3: bucket, naming, auth_method, max_retries, region_name, endpoint_url, "
        "object_name (fidesops 1.x; kept, unused).",
        "additionalProperties": True,
    }
    destination = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["local", "s3"]},
            "details": details,
            "key": {"type": "string"},
            "format": {"type": "string", "enum": ["json", "csv"]},
        },
        "required": ["name", "type", "details", "key", "format"],
    }
    secrets = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in storage_service.S3_SECRET_KEYS},
        "required": list(storage_service.S3_SECRET_KEYS),
        "additionalProperties": False,
    }
    secrets_result = {
        "type": "object",
        "properties": {
            "msg": {"type": "string"},
            "test_status": {"anyOf": [{"type": "string", "enum": ["succeeded", "failed"]}, {"type": "null"}]},
            "failure_reason": STRING_OR_NULL,
        },
        "required": ["msg", "test_status", "failure_reason"],
    }
    components = {
        "StorageDestinationIn": destination_in,
        "StorageDestination": destination,
        "StorageBulkResponse": _bulk_schema("StorageDestination"),
        "StoragePage": _page_schema("StorageDestination"),
        "StorageSecrets": secrets,
        "StorageSecretsResult": secrets_result,
    }
    key = _path_param("key", "Storage config key")
    unsupported = (
        "Types other than local and s3 (fidesops' gcs, onetrust, transcend, ethyca) are refused, each in "
        "`failed` with a message saying so."
    )
    paths = {
        "/storage/config": {
            "patch": _op(
                "Create or update storage destinations by key",
                s.STORAGE_CREATE_OR_UPDATE,
                {"200": _json(ref("StorageBulkResponse"))},
                body={"type": "array", "maxItems": MAX_BULK, "items": ref("StorageDestinationIn")},
                extra=BODY_ERRORS,
                description=unsupported,
            ),
            "get": _op(
                "List storage destinations, newest first",
                s.STORAGE_READ,
                {"200": _json(ref("StoragePage"))},
                params=PAGING,
                extra={"422": BODY_ERRORS["422"]},
            ),
        },
        "/storage/config/{key}": {
            "get": _op(
                "Get a storage destination (never its secrets)",
                s.STORAGE_READ,
                {"200": _json(ref("StorageDestination")), **NOT_FOUND},
                params=[key],
            ),
            "delete": _op(
                "Delete a storage destination and its secrets (what it holds stays there)",
                s.STORAGE_DELETE,
                {"204": {"description": "Deleted"}, **NOT_FOUND},
                params=[key],
            ),
        },
        "/storage/config/{key}/secret": {
            "put": _op(
                "Replace the AWS keys of an s3 destination and test them",
                s.STORAGE_CREATE_OR_UPDATE,
                {"200": _json(ref("StorageSecretsResult")), **NOT_FOUND},
                body=ref("StorageSecrets"),
                params=[
                    key,
                    {"name": "verify", "in": "query", "schema": {"type": "boolean", "default": True}},
                ],
                extra=BODY_ERRORS,
                description="With verify (the default) a small object is written and deleted with the keys; "
                "test_status says how that went and failure_reason why it failed. A local destination, or "
                "one with auth_method automatic, takes no secrets (400).",
            ),
        },
    }
    return paths, components


def _policy_routes() -> tuple[dict, dict]:
    """Policies, rules and targets (fidesops' shapes): access rules only."""
    s = scopes
    schemas = {
        name: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, model in (("PolicyIn", PolicyIn), ("RuleIn", RuleIn), ("RuleTargetIn", TargetIn))
    }
    target = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "key": {"type": "string"},
            "data_category": {"type": "string"},
        },
        "required": ["name", "key", "data_category"],
    }
    rule = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "key": {"type": "string"},
            "action_type": {"type": "string", "enum": ["access"]},
            "storage_destination": {"anyOf": [ref("StorageDestination"), {"type": "null"}]},
            "masking_strategy": {"type": "null"},
            "targets": {"type": "array", "items": ref("RuleTarget")},
        },
        "required": ["name", "key", "action_type", "storage_destination", "masking_strategy", "targets"],
    }
    policy = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "key": {"type": "string"},
            "drp_action": STRING_OR_NULL,
            "execution_timeframe": {"type": "integer", "description": "Days to respond (sets the due date)."},
            "rules": {"type": "array", "items": ref("Rule")},
        },
        "required": ["name", "key", "drp_action", "execution_timeframe", "rules"],
    }
    components = {
        **schemas,
        "Policy": policy,
        "Rule": rule,
        "RuleTarget": target,
        "PolicyBulkResponse": _bulk_schema("Policy"),
        "RuleBulkResponse": _bulk_schema("Rule"),
        "RuleTargetBulkResponse": _bulk_schema("RuleTarget"),
        "PolicyPage": _page_schema("Policy"),
        "RulePage": _page_schema("Rule"),
    }
    policy_key = _path_param("policy_key", "Policy key")
    rule_key = _path_param("rule_key", "Rule key")
    target_key = _path_param("target_key", "Rule target key")
    deleted = {"204": {"description": "Deleted"}, **NOT_FOUND}

    def bulk(item: str) -> dict:
        return {"type": "array", "maxItems": MAX_BULK, "items": ref(item)}

    paths = {
        "/policy": {
            "patch": _op(
                "Create or update policies by key",
                s.POLICY_CREATE_OR_UPDATE,
                {"200": _json(ref("PolicyBulkResponse"))},
                body=bulk("PolicyIn"),
                extra=BODY_ERRORS,
                description="drp_action: access or null (deletion is out of scope; the other DRP actions are "
                "not supported, as in fidesops). A new policy without execution_timeframe gets 30 days.",
            ),
            "get": _op(
                "List policies with their rules, newest first",
                s.POLICY_READ,
                {"200": _json(ref("PolicyPage"))},
                params=PAGING,
                extra={"422": BODY_ERRORS["422"]},
            ),
        },
        "/policy/{policy_key}": {
            "get": _op(
                "Get a policy with its rules",
                s.POLICY_READ,
                {"200": _json(ref("Policy")), **NOT_FOUND},
                params=[policy_key],
            ),
            "delete": _op(
                "Delete a policy with its rules and targets",
                s.POLICY_DELETE,
                {**deleted, "400": _json(ref("Error"), "The policy is in use, or the default one")},
                params=[policy_key],
                description="This portal's addition (fides has it; fidesops 1.8.2 did not).",
            ),
        },
        "/policy/{policy_key}/rule": {
            "patch": _op(
                "Create or update a policy's rules by key",
                s.RULE_CREATE_OR_UPDATE,
                {"200": _json(ref("RuleBulkResponse")), **NOT_FOUND},
                body=bulk("RuleIn"),
                params=[policy_key],
                extra=BODY_ERRORS,
                description="Access rules with a storage_destination_key only: erasure is out of scope, "
                "consent and update are not supported; each refusal is an entry of `failed` saying so.",
            ),
            "get": _op(
                "List a policy's rules",
                s.RULE_READ,
                {"200": _json(ref("RulePage")), **NOT_FOUND},
                params=[policy_key, *PAGING],
                description="This portal's addition (fides has it; fidesops 1.8.2 did not).",
            ),
        },
        "/policy/{policy_key}/rule/{rule_key}": {
            "get": _op(
                "Get a rule",
                s.RULE_READ,
                {"200": _json(ref("Rule")), **NOT_FOUND},
                params=[policy_key, rule_key],
            ),
            "delete": _op(
                "Delete a rule and its targets", s.RULE_DELETE, deleted, params=[policy_key, rule_key]
            ),
        },
        "/policy/{policy_key}/rule/{rule_key}/target": {
            "patch": _op(
                "Create or update a rule's targets by key",
                s.RULE_CREATE_OR_UPDATE,
                {"200": _json(ref("RuleTargetBulkResponse")), **NOT_FOUND},
                body=bulk("RuleTargetIn"),
                params=[policy_key, rule_key],
                extra=BODY_ERRORS,
                description="data_category: a key of fideslang's default taxonomy (the pinned fideslang's), "
                "once per rule.",
            ),
        },
        "/policy/{policy_key}/rule/{rule_key}/target/{target_key}": {
            "delete": _op(
                "Delete a rule target", s.RULE_DELETE, deleted, params=[policy_key, rule_key, target_key]
            ),
        },
    }
    return paths, components


def _delivery_routes() -> tuple[dict, dict]:
    """Review and delivery: this portal's addition to fidesops' API."""
    s = scopes
    addition = "This portal's addition to fidesops' API."
    delivery = {
        "type": "object",
        "properties": {
            "privacy_request_id": {"type": "string"},
            "state": {
                "type": ["string", "null"],
                "enum": ["ready_for_review", "sent_back", "approved", "delivered", "delivery_failed", None],
            },
            "review_required": {"type": "boolean"},
            "reviewed_at": TIME,
            "reviewed_by": STRING_OR_NULL,
            "sent_back_systems": {"type": ["array", "null"], "items": {"type": "string"}},
            "link": {"type": ["string", "null"], "enum": ["active", "expired", "revoked", "locked", None]},
            "link_expires_at": TIME,
            "storage_key": STRING_OR_NULL,
            "storage_location": STRING_OR_NULL,
            "storage_error": STRING_OR_NULL,
            "emailed": {"type": "boolean", "description": "After a release: whether the subject was mailed."},
            "handover_link": {
                "type": ["string", "null"],
                "description": "After a release of a request without an email address: the subject's link, "
                "in this answer only, for staff to hand over.",
            },
            "reopened": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["privacy_request_id", "state"],
    }
    send_back = {
        "type": "object",
        "properties": {
            "systems": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
        },
        "required": ["systems", "reason"],
        "additionalProperties": False,
    }
    refused = {"400": _json(ref("Error"), "Not in a state that allows it"), **NOT_FOUND}
    paths = {
        "/privacy-request/{request_id}/delivery": {
            "get": _op(
                "The package's review and delivery state",
                s.PRIVACY_REQUEST_READ,
                {"200": _json(ref("Delivery")), **NOT_FOUND},
                params=[REQUEST_ID],
                description=addition,
            ),
        },
        "/privacy-request/{request_id}/package/approve": {
            "post": _op(
                "Approve the package: the subject is mailed a link (or, without an email, staff get it)",
                s.PACKAGE_REVIEW,
                {"200": _json(ref("Delivery")), **refused},
                params=[REQUEST_ID],
                description=addition,
            ),
        },
        "/privacy-request/{request_id}/package/send_back": {
            "post": _op(
                "Send the package back: the named systems' entries are checked again",
                s.PACKAGE_REVIEW,
                {"200": _json(ref("Delivery")), **refused},
                params=[REQUEST_ID],
                body=ref("SendBack"),
                extra=BODY_ERRORS,
                description=addition,
            ),
        },
        "/privacy-request/{request_id}/delivery/resend": {
            "post": _op(
                "Issue a new link to the subject (the old one stops working)",
                s.PACKAGE_DELIVER,
                {"200": _json(ref("Delivery")), **refused},
                params=[REQUEST_ID],
                description=addition,
            ),
        },
        "/privacy-request/{request_id}/delivery/revoke": {
            "post": _op(
                "Revoke the subject's link",
                s.PACKAGE_DELIVER,
                {"200": _json(ref("Delivery")), **refused},
                params=[REQUEST_ID],
                description=addition,
            ),
        },
    }
    return paths, {"Delivery": delivery, "SendBack": send_back}


ADDITION = "This portal's addition to fidesops' API (the team workflow)."


def _addition(operation: dict) -> dict:
    """Mark an operation as this portal's own (not in fidesops): a tag and ``x-portal-addition``."""
    operation["description"] = f"{ADDITION} {operation['description']}"
    operation["tags"] = ["Team workflow (portal additions)"]
    operation["x-portal-addition"] = True
    return operation


def _workflow_routes() -> tuple[dict, dict]:
    """Tasks, notes, deadline extensions and cancel: the paths and component schemas."""
    from portal.api.tasks import AssignIn, BulkAssignIn, CancelIn, ExtendIn, NoteIn

    s = scopes
    _, defs = models_json_schema(
        [(m, "validation") for m in (AssignIn, BulkAssignIn, NoteIn, ExtendIn, CancelIn)],
        ref_template="#/components/schemas/{model}",
    )
    task = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "privacy_request_id": {"type": "string"},
            "connection_key": {"type": "string"},
            "connection_name": {"type": "string"},
            "assignee_id": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "assignee": STRING_OR_NULL,
            "state": {"type": "string", "enum": ["open", "done", "closed"]},
            "due_date": TIME,
            "request_status": {"type": "string"},
            "systems_done": {"type": "integer"},
            "systems": {"type": "integer"},
        },
        "required": ["id", "privacy_request_id", "connection_key", "assignee_id", "state"],
    }
    note = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "privacy_request_id": {"type": "string"},
            "author": {"type": "string"},
            "body": {"type": "string"},
            "created_at": TIME,
        },
        "required": ["id", "privacy_request_id", "author", "body", "created_at"],
    }
    extension = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "preset": {"type": "string", "enum": ["gdpr", "ccpa", "custom"]},
            "previous_due_date": TIME,
            "new_due_date": TIME,
            "subject_told_at": TIME,
        },
        "required": ["id", "preset", "previous_due_date", "new_due_date", "subject_told_at"],
    }
    components = {
        **defs.get("$defs", {}),
        "Task": task,
        "TaskPage": _page_schema("Task"),
        "Note": note,
        "DeadlineExtension": extension,
        "BulkAssignResult": {
            "type": "object",
            "properties": {
                "assigned": {"type": "integer"},
                "failed": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["assigned", "failed"],
        },
    }
    task_id = {**_path_param("task_id", "Task id"), "schema": {"type": "integer", "minimum": 1}}
    note_id = {**_path_param("note_id", "Note id"), "schema": {"type": "integer", "minimum": 1}}
    query = [
        {"name": "view", "in": "query", "schema": {"type": "string", "enum": ["mine", "unassigned", "all"]}},
        {"name": "due", "in": "query", "schema": {"type": "string", "enum": ["soon", "overdue"]}},
        {"name": "connection_key", "in": "query", "schema": {"type": "string"}},
        {"name": "assignee_id", "in": "query", "schema": {"type": "integer"}, "description": "With view=all"},
    ]
    conflict = {"400": _json(ref("Error"), "Claimed by someone else (named), or the task is no longer open")}
    owner_only = {"403": _json(ref("Error"), "The token lacks the scope, or it is not the caller's task")}
    paths = {
        "/task": {
            "get": _op(
                "List open tasks, soonest deadline first",
                s.TASK_READ,
                {"200": _json(ref("TaskPage"))},
                params=[*query, *PAGING],
                description="`due=soon`: within PORTAL_DUE_SOON_DAYS.",
            )
        },
        "/task/{task_id}/claim": {
            "post": _op(
                "Claim an unassigned task",
                s.TASK_UPDATE,
                {"200": _json(ref("Task")), **conflict, **NOT_FOUND},
                params=[task_id],
            )
        },
        "/task/{task_id}/release": {
            "post": _op(
                "Give a task back (unassigned)",
                s.TASK_UPDATE,
                {"200": _json(ref("Task")), **NOT_FOUND},
                params=[task_id],
                extra=owner_only,
                description="The assignee or an admin.",
            )
        },
        "/task/{task_id}/assign": {
            "post": _op(
                "Hand a task to another user",
                s.TASK_UPDATE,
                {"200": _json(ref("Task")), **conflict, **NOT_FOUND},
                body=ref("AssignIn"),
                params=[task_id],
                extra={**BODY_ERRORS, **owner_only},
                description="The assignee or an admin; to an active staff member or admin.",
            )
        },
        "/task/assign": {
            "post": _op(
                "Assign tasks in bulk",
                s.TASK_ASSIGN,
                {"200": _json(ref("BulkAssignResult"))},
                body=ref("BulkAssignIn"),
                extra=BODY_ERRORS,
                description="Admins.",
            )
        },
        "/privacy-request/{request_id}/note": {
            "get": _op(
                "The request's notes, newest first",
                s.NOTE_READ,
                {"200": _json({"type": "array", "items": ref("Note")}), **NOT_FOUND},
                params=[REQUEST_ID],
            ),
            "post": _op(
                "Add a note (plain text, up to 5,000 characters)",
                s.NOTE_CREATE,
                {"201": _json(ref("Note"), "Created"), **NOT_FOUND},
                body=ref("NoteIn"),
                params=[REQUEST_ID],
                extra=BODY_ERRORS,
            ),
        },
        "/privacy-request/{request_id}/note/{note_id}": {
            "delete": _op(
                "Delete a note",
                s.NOTE_DELETE,
                {"204": {"description": "Deleted"}, **NOT_FOUND},
                params=[REQUEST_ID, note_id],
                extra=owner_only,
                description="Its author or an admin; the deletion is audited.",
            )
        },
        "/privacy-request/{request_id}/extend": {
            "post": _op(
                "Extend the deadline",
                s.PRIVACY_REQUEST_EXTEND,
                {"200": _json(ref("DeadlineExtension")), **NOT_FOUND},
                body=ref("ExtendIn"),
                params=[REQUEST_ID],
                extra={**BODY_ERRORS, **owner_only},
                description="An admin or an assignee of the request. gdpr: up to two further months, only within "
                "the first month after the request; ccpa: once, up to 45 more days; custom: a later date. "
                "A refused extension is a 400 naming the rule.",
            )
        },
        "/privacy-request/{request_id}/cancel": {
            "post": _op(
                "Cancel a request (withdrawn by the subject)",
                s.PRIVACY_REQUEST_CANCEL,
                {"200": _json(ref("PrivacyRequest")), **NOT_FOUND},
                body=ref("CancelIn"),
                params=[REQUEST_ID],
                extra=BODY_ERRORS,
                description="Its open tasks close; what was entered stays until retention purges it.",
            )
        },
    }
    for methods in paths.values():
        for operation in methods.values():
            _addition(operation)
    return paths, components
