"""Request bodies of the API (pydantic), body parsing, and the JSON shapes of responses."""

from __future__ import annotations

import json
from typing import Annotated, Any

from flask import request
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from portal.crypto import require_decrypted
from portal.models import ConnectionConfig, ManualWebhook, utcnow
from portal.models.base import iso
from portal.routing import MAX_PAGE, bounded_int
from portal.services import text_problem
from portal.services.webhooks import MAX_FIELDS

MAX_BULK = 50
# Python's own default (sys.get_int_max_str_digits): converting longer digit strings costs quadratic time.
MAX_JSON_INTEGER_DIGITS = 4300


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=10_000)


class ConnectionIn(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    key: Annotated[str | None, Field(max_length=200)] = None
    connection_type: str
    access: str = "read"
    disabled: bool = False
    description: Annotated[str | None, Field(max_length=2000)] = None


ConnectionListIn = TypeAdapter(Annotated[list[ConnectionIn], Field(max_length=MAX_BULK)])


class WebhookIn(ApiModel):
    # The limit is the service's rule (one message for the API and the field editor); here it is documented.
    fields: list[Any] = Field(
        description=f"Field definitions (at most {MAX_FIELDS}): pii_field (required), dsr_package_label, and "
        "the extensions type (text|textarea|email|number|date|boolean), required, help_text.",
        json_schema_extra={"maxItems": MAX_FIELDS},
    )


class IdentityIn(ApiModel):
    email: str | None = None
    phone_number: str | None = None


class PrivacyRequestIn(ApiModel):
    identity: IdentityIn
    policy_key: str = "default_access_policy"
    external_id: Annotated[str | None, Field(max_length=200)] = None


PrivacyRequestListIn = TypeAdapter(Annotated[list[PrivacyRequestIn], Field(max_length=MAX_BULK)])


class SearchIdentityIn(ApiModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str | None, Field(max_length=254)] = None
    phone_number: Annotated[str | None, Field(max_length=40)] = None


class PrivacyRequestSearchIn(ApiModel):
    """The filters of ``GET /privacy-request`` in a body, so that an identity never sits in a URL.

    Unknown fields are refused rather than ignored: a filter silently dropped would widen the answer.
    """

    model_config = ConfigDict(extra="forbid")

    identity: SearchIdentityIn | None = Field(
        None,
        validation_alias=AliasChoices("identity", "identities"),
        description="One identity: {'email': ...} or {'phone_number': ...}. Also accepted as 'identities' "
        "(fides' name).",
    )
    status: Annotated[
        list[str] | None, BeforeValidator(lambda value: [value] if isinstance(value, str) else value)
    ] = Field(None, description="A status, or a list of them (any of).")
    request_id: Annotated[str | None, Field(max_length=200)] = None
    page: Annotated[int | None, Field(ge=1, le=MAX_PAGE)] = Field(
        None, description="Also accepted as a query parameter; the body's wins."
    )
    size: Annotated[int | None, Field(ge=1, le=100)] = Field(
        None, description="Also accepted as a query parameter; the body's wins."
    )
    include_identities: bool | None = Field(
        None, description="Each request's identity (email, phone number) in ``identity``; audited."
    )
    verbose: bool | None = Field(None, description="Each request's execution log in ``results``.")


class ReviewIn(ApiModel):
    request_ids: Annotated[list[str], Field(min_length=1, max_length=MAX_BULK)]
    reason: Annotated[str | None, Field(max_length=2000)] = None


class BodyError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _contains_null(data: Any) -> bool:
    """NUL characters, or lone surrogates (``"\\ud800"`` is valid JSON but no text a database stores)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if text_problem(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise BodyError(
            400,
            f"The body holds a number with more than {MAX_JSON_INTEGER_DIGITS:,} digits, which is not "
            "accepted.",
        )
    return int(text)


def json_body() -> Any:
    """The parsed JSON body; 415 for another content type, 400 for malformed JSON."""
    if request.mimetype != "application/json":
        raise BodyError(
            415, "Unsupported media type: send the body as JSON with 'Content-Type: application/json'."
        )
    raw = request.get_data(cache=False)
    try:
        data = json.loads(raw, parse_int=_json_integer)
    except UnicodeDecodeError:
        raise BodyError(400, "Malformed JSON body: it is not valid UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            400, f"Malformed JSON body: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise BodyError(400, "Malformed JSON body: it is nested too deeply.") from None
    if _contains_null(data):
        raise BodyError(
            400,
            "The body contains a null character (\\u0000) or a lone surrogate (such as \\ud800), "
            "which is not allowed.",
        )
    return data


# --- responses -------------------------------------------------------------------------------------


def connection_json(conn: ConnectionConfig) -> dict[str, Any]:
    return {
        "name": conn.name,
        "key": conn.key,
        "description": conn.description,
        "connection_type": conn.connection_type,
        "access": conn.access,
        "disabled": conn.disabled,
        "disabled_at": iso(conn.disabled_at),
        "created_at": iso(conn.created_at),
        "updated_at": iso(conn.updated_at),
        "last_test_timestamp": iso(conn.last_test_timestamp),
        "last_test_succeeded": conn.last_test_succeeded,
        "saas_config": None,  # no SaaS connectors in the portal
    }


def webhook_json(conn: ConnectionConfig, webhook: ManualWebhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "fields": webhook.fields,
        "version": webhook.version,
        "connection_config": connection_json(conn),
    }


RESUME_ENDPOINTS = {"requires_input": "/privacy-request/{id}/resume_from_requires_input"}


def storage_json(config) -> dict[str, Any]:
    """fidesops' ``StorageDestinationResponse``: never the secrets."""
    return {
        "name": config.name,
        "type": config.type,
        "details": config.details,
        "key": config.key,
        "format": config.format,
    }


def target_json(target) -> dict[str, Any]:
    """fidesops' ``RuleTarget``."""
    return {"name": target.name, "key": target.key, "data_category": target.data_category}


def rule_json(rule) -> dict[str, Any]:
    """fidesops' ``RuleResponse``: access rules have no masking strategy."""
    destination = rule.storage_destination
    return {
        "name": rule.name,
        "key": rule.key,
        "action_type": rule.action_type,
        "storage_destination": storage_json(destination) if destination is not None else None,
        "masking_strategy": None,
        "targets": [target_json(target) for target in rule.targets],
    }


def policy_json(policy) -> dict[str, Any]:
    """fidesops' ``PolicyResponse``, as the policy endpoints answer it and as a privacy request nests it."""
    return {
        "name": policy.name,
        "key": policy.key,
        "drp_action": policy.drp_action,
        "execution_timeframe": policy.days_to_respond,
        "rules": [rule_json(rule) for rule in policy.rules],
    }


def privacy_request_json(
    pr, *, policy, identity: dict[str, Any] | None = None, results: dict | None = None
) -> dict[str, Any]:
    """A request in fidesops' shape (``PrivacyRequestResponse``) plus this portal's keys (``due_date``,
    ``denial_reason``, ``error_message``). ``pr`` is a ``RequestSummary``; ``policy`` its ``Policy``
    (or ``nested_policies.NestedPolicy``) with its rules; ``identity`` is given only when the caller asked for it (``include_identities``) and ``results``
    only with ``verbose``."""
    due = pr.due_date
    body = {
        "id": pr.id,
        "external_id": require_decrypted(pr.external_id),  # a corrupted value answers 500, never null
        "status": pr.status,
        "policy": policy_json(policy),
        "created_at": iso(pr.created_at),
        "due_date": iso(due),
        "days_left": (due.date() - utcnow().date()).days if due is not None else None,
        "started_processing_at": iso(pr.started_processing_at),
        "finished_processing_at": iso(pr.finished_processing_at),
        "identity_verified_at": None,  # the portal does not verify identities by code (fidesops' optional step)
        "paused_at": None,  # nothing in the portal pauses a request: a manual gate is ``requires_input``
        "reviewed_at": iso(pr.reviewed_at),
        "reviewed_by": pr.reviewed_by.email if pr.reviewed_by else None,
        "reviewer": (
            {"id": str(pr.reviewer_id), "username": pr.reviewer_email} if pr.reviewer_id is not None else None
        ),
        "identity": identity,
        "action_required_details": None,
        "resume_endpoint": (
            RESUME_ENDPOINTS[pr.status].format(id=pr.id) if pr.status in RESUME_ENDPOINTS else None
        ),
        "denial_reason": require_decrypted(pr.denial_reason),
        "error_message": pr.error_message,
    }
    if results is not None:
        body["results"] = results
    return body


def page_params(default_size: int = 50, max_size: int = 100) -> tuple[int, int]:
    """``page`` and ``size`` from the query string; 422 (as ValidationFailed) when not positive integers."""
    from portal.services import ValidationFailed

    values = {}
    for name, default in (("page", 1), ("size", default_size)):
        value = bounded_int(request.args.get(name, str(default)), 1, MAX_PAGE)
        if value is None:
            message = f"must be an integer from 1 to {MAX_PAGE}"
            raise ValidationFailed(f"{name} {message}", [(("query", name), message)])
        values[name] = value
    if values["size"] > max_size:
        raise ValidationFailed(
            f"size must be at most {max_size}", [(("query", "size"), f"must be at most {max_size}")]
        )
    return values["page"], values["size"]


def page_json(items: list, total: int, page: int, size: int) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "size": size}
