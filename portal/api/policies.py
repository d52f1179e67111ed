"""/api/v1/policy: policies, their rules and the rules' targets, in fidesops' shapes (``PolicyResponse``,
``RuleResponse``, ``RuleTarget``) and bulk answers. The rules live in ``services.policies``, shared with the
admin pages; here each item of a bulk PATCH succeeds or fails on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from flask import g, jsonify
from pydantic import Field, TypeAdapter

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import (
    MAX_BULK,
    ApiModel,
    json_body,
    page_json,
    page_params,
    policy_json,
    rule_json,
    target_json,
)
from portal.execution import dispatch
from portal.extensions import db
from portal.services import DomainError, policies

Key = Annotated[str | None, Field(max_length=200)]


class PolicyIn(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    key: Key = None
    drp_action: Annotated[str | None, Field(max_length=32)] = None
    execution_timeframe: int | None = Field(
        None, description="Days to answer a request under this policy (its due date); 30 when omitted."
    )


class RuleIn(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    key: Key = None
    action_type: Annotated[str, Field(max_length=16, description="access (erasure is out of scope)")]
    storage_destination_key: Key = None
    masking_strategy: dict[str, Any] | None = None


class TargetIn(ApiModel):
    name: Annotated[str | None, Field(max_length=200)] = None
    key: Key = None
    data_category: Annotated[str, Field(max_length=200, description="a data category of fideslang")]


PolicyListIn = TypeAdapter(Annotated[list[PolicyIn], Field(max_length=MAX_BULK)])
RuleListIn = TypeAdapter(Annotated[list[RuleIn], Field(max_length=MAX_BULK)])
TargetListIn = TypeAdapter(Annotated[list[TargetIn], Field(max_length=MAX_BULK)])


def _bulk(items: list, write: Callable, shape: Callable):
    """fidesops' bulk answer: what was written, and each refusal with the item as it was sent."""
    succeeded, failed = [], []
    for item in items:
        try:
            with db.session.begin_nested():
                succeeded.append(write(item))
        except DomainError as exc:
            failed.append({"message": str(exc), "data": item.model_dump()})
    dispatch.commit_and_run()
    return jsonify(succeeded=[shape(obj) for obj in succeeded], failed=failed)


@bp.get("/policy")
@requires_scope(scopes.POLICY_READ)
def list_policies():
    page, size = page_params()
    items, total = policies.list_policies_page(page, size)
    return jsonify(page_json([policy_json(p) for p in items], total, page, size))


@bp.patch("/policy")
@requires_scope(scopes.POLICY_CREATE_OR_UPDATE)
def patch_policies():
    """Create or update policies by key (generated from the name when absent)."""

    def write(item: PolicyIn):
        return policies.upsert_policy(
            name=item.name,
            key=item.key,
            drp_action=item.drp_action,
            execution_timeframe=item.execution_timeframe,
            actor=g.api_actor,
        )

    return _bulk(PolicyListIn.validate_python(json_body()), write, policy_json)


@bp.get("/policy/<policy_key>")
@requires_scope(scopes.POLICY_READ)
def get_policy(policy_key: str):
    return jsonify(policy_json(policies.find_policy(policy_key)))


@bp.delete("/policy/<policy_key>")
@requires_scope(scopes.POLICY_DELETE)
def delete_policy(policy_key: str):
    policies.delete_policy(policies.find_policy(policy_key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204


@bp.get("/policy/<policy_key>/rule")
@requires_scope(scopes.RULE_READ)
def list_rules(policy_key: str):
    page, size = page_params()
    rules = policies.find_policy(policy_key).rules
    items = rules[(page - 1) * size : page * size]
    return jsonify(page_json([rule_json(r) for r in items], len(rules), page, size))


@bp.patch("/policy/<policy_key>/rule")
@requires_scope(scopes.RULE_CREATE_OR_UPDATE)
def patch_rules(policy_key: str):
    """Create or update a policy's rules by key; access rules with a storage destination only."""
    policy = policies.find_policy(policy_key)
    items = RuleListIn.validate_python(json_body())

    def write(item: RuleIn):
        return policies.upsert_rule(
            policy,
            name=item.name,
            key=item.key,
            action_type=item.action_type,
            storage_destination_key=item.storage_destination_key,
            masking_strategy=item.masking_strategy,
            actor=g.api_actor,
        )

    return _bulk(items, write, rule_json)


@bp.get("/policy/<policy_key>/rule/<rule_key>")
@requires_scope(scopes.RULE_READ)
def get_rule(policy_key: str, rule_key: str):
    return jsonify(rule_json(policies.find_rule(policies.find_policy(policy_key), rule_key)))


@bp.delete("/policy/<policy_key>/rule/<rule_key>")
@requires_scope(scopes.RULE_DELETE)
def delete_rule(policy_key: str, rule_key: str):
    policies.delete_rule(policies.find_rule(policies.find_policy(policy_key), rule_key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204


@bp.patch("/policy/<policy_key>/rule/<rule_key>/target")
@requires_scope(scopes.RULE_CREATE_OR_UPDATE)
def patch_targets(policy_key: str, rule_key: str):
    """Create or update a rule's targets by key; each a data category of fideslang, once per rule."""
    rule = policies.find_rule(policies.find_policy(policy_key), rule_key)
    items = TargetListIn.validate_python(json_body())

    def write(item: TargetIn):
        return policies.upsert_target(
            rule, name=item.name, key=item.key, data_category=item.data_category, actor=g.api_actor
        )

    return _bulk(items, write, target_json)


@bp.delete("/policy/<policy_key>/rule/<rule_key>/target/<target_key>")
@requires_scope(scopes.RULE_DELETE)
def delete_target(policy_key: str, rule_key: str, target_key: str):
    rule = policies.find_rule(policies.find_policy(policy_key), rule_key)
    policies.delete_target(policies.find_target(rule, target_key), g.api_actor)
    dispatch.commit_and_run()
    return "", 204
