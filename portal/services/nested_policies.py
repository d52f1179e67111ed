"""Policies as a privacy request's body nests them (fidesops' ``policy`` with its ``rules``): read as rows
for a whole page of requests in one query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from portal.extensions import run
from portal.models import Policy, PolicyRule, RuleTarget, StorageConfig


@dataclass(frozen=True)
class NestedPolicy:
    """A policy as a request body nests it (the attributes of ``Policy`` the API reads), with its rules."""

    key: str
    name: str
    drp_action: str | None
    days_to_respond: int
    rules: list[NestedRule]


@dataclass(frozen=True)
class NestedRule:
    key: str
    name: str
    action_type: str
    storage_destination: NestedDestination | None
    targets: list[NestedTarget]


@dataclass(frozen=True)
class NestedDestination:
    key: str
    name: str
    type: str
    details: Any
    format: str


@dataclass(frozen=True)
class NestedTarget:
    key: str
    name: str
    data_category: str


_NESTED = (
    select(
        Policy.key,
        Policy.name,
        Policy.drp_action,
        Policy.days_to_respond,
        PolicyRule.id,
        PolicyRule.key,
        PolicyRule.name,
        PolicyRule.action_type,
        StorageConfig.key,
        StorageConfig.name,
        StorageConfig.type,
        StorageConfig.details,
        StorageConfig.format,
        RuleTarget.key,
        RuleTarget.name,
        RuleTarget.data_category,
    )
    .outerjoin(PolicyRule, PolicyRule.policy_id == Policy.id)
    .outerjoin(StorageConfig, StorageConfig.id == PolicyRule.storage_config_id)
    .outerjoin(RuleTarget, RuleTarget.rule_id == PolicyRule.id)
    .where(Policy.key.in_(bindparam("keys", expanding=True)))
    .order_by(Policy.key, PolicyRule.id, RuleTarget.id)
)


def with_rules(policy_keys: set[str]) -> dict[str, NestedPolicy]:
    """These policies with their rules, targets and destinations, in one query of rows: for the request
    bodies of a page, which nest each request's policy (loading them as objects took three queries and a
    fifth of an API list page)."""
    if not policy_keys:
        return {}
    policies: dict[str, NestedPolicy] = {}
    rules: dict[int, NestedRule] = {}
    for row in run(_NESTED, {"keys": sorted(policy_keys)}):
        policy = policies.get(row[0])
        if policy is None:
            policy = policies[row[0]] = NestedPolicy(row[0], row[1], row[2], row[3], [])
        if row[4] is None:
            continue
        rule = rules.get(row[4])
        if rule is None:
            destination = NestedDestination(*row[8:13]) if row[8] is not None else None
            rule = rules[row[4]] = NestedRule(row[5], row[6], row[7], destination, [])
            policy.rules.append(rule)
        if row[13] is not None:
            rule.targets.append(NestedTarget(*row[13:16]))
    return policies
