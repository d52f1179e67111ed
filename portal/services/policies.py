"""Policies (S2): what a request does and how many days the company has to answer it. Admins list,
create and edit them; new requests choose among them. Changing a policy's timeframe applies to requests
created afterwards: a request's due date is set when it is created (and moved only by an extension).

A policy's rules and their targets (fidesops' ``Rule`` and ``RuleTarget``) live here too, for the API and
the admin pages alike: access rules only (erasure is out of scope), each naming the storage destination
its packages are written to, each target a data category of fideslang's default taxonomy.

Over 400 lines because policies, rules and targets are one aggregate with one set of key and wording
rules (fidesops'); split, each part would import the others' lookups.
"""

from __future__ import annotations

import functools
import re

from fideslang.default_taxonomy import DEFAULT_TAXONOMY
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import (
    DEFAULT_ACCESS_POLICY_KEY,
    Policy,
    PolicyRule,
    PrivacyRequest,
    RuleTarget,
    StorageConfig,
)
from portal.models.audit import Actor, record
from portal.models.policies import ACTION_TYPES, RULE_ACTION_TYPE
from portal.services import (
    Conflict,
    InvalidState,
    NotFound,
    ValidationFailed,
    text_problem,
)
from portal.services import keys as naming

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_DAYS = 3650
# name → (timeframe in days, what it is): the presets of the admin page
PRESETS = {
    "gdpr": (30, "GDPR: one month (30 days), extendable by two further months"),
    "ccpa": (45, "CCPA: 45 days, extendable once by 45 more"),
}


def list_policies() -> list[Policy]:
    return list(db.session.scalars(select(Policy).order_by(Policy.name)))


def get_policy(policy_key: str) -> Policy:
    valid = isinstance(policy_key, str) and not text_problem(policy_key)
    policy = db.session.scalar(select(Policy).where(Policy.key == policy_key)) if valid else None
    if policy is None:
        raise NotFound(f"Policy with key {policy_key} does not exist.")
    return policy


def _check(name: str, days: int) -> str:
    if not isinstance(name, str) or text_problem(name) or not name.strip():
        raise ValidationFailed("Give the policy a name.", [(("name",), "required")])
    if len(name.strip()) > 200:
        raise ValidationFailed("The name must be at most 200 characters.", [(("name",), "too long")])
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        message = f"The timeframe must be a whole number of days from 1 to {MAX_DAYS}."
        raise ValidationFailed(message, [(("days_to_respond",), message)])
    return name.strip()


def create_policy(
    *, name: str, key: str, days_to_respond: int, actor: Actor, action_type: str = "access"
) -> Policy:
    name = _check(name, days_to_respond)
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or len(key) > 200:
        message = "The key may hold only letters, digits, '_', '.' and '-' (at most 200)."
        raise ValidationFailed(message, [(("key",), message)])
    if action_type not in ACTION_TYPES:
        raise ValidationFailed(
            f"action_type must be one of {', '.join(ACTION_TYPES)}", [(("action_type",), "unknown")]
        )
    if db.session.scalar(select(Policy.id).where(Policy.key == key)) is not None:
        raise Conflict(f"A policy with key {key} already exists.")
    policy = Policy(key=key, name=name, action_type=action_type, days_to_respond=days_to_respond)
    db.session.add(policy)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"A policy with key {key} already exists.") from exc
    record(actor, "policy.created", policy=key, days_to_respond=days_to_respond, action_type=action_type)
    return policy


def update_policy(policy: Policy, *, name: str, days_to_respond: int, actor: Actor) -> Policy:
    """Rename it or change its timeframe (for requests created from now on); the key stays."""
    name = _check(name, days_to_respond)
    changes = {}
    if name != policy.name:
        changes["name_changed"] = True
        policy.name = name
    if days_to_respond != policy.days_to_respond:
        changes["days_to_respond"] = [policy.days_to_respond, days_to_respond]
        policy.days_to_respond = days_to_respond
    if changes:
        db.session.flush()
        record(actor, "policy.changed", policy=policy.key, **changes)
    return policy


# --- the API's view of policies (fidesops' ``/policy``) ----------------------------------------------------

# fidesops' DRP actions: ``access`` maps to an access policy; the rest are refused with a reason.
DRP_ACTIONS = ("access", "deletion", "sale:opt_out", "sale:opt_in", "access:categories", "access:specific")
DEFAULT_DAYS = 30  # a policy created without ``execution_timeframe`` (the portal needs a due date)


def _with_rules(query):
    return query.options(selectinload(Policy.rules).selectinload(PolicyRule.targets))


def list_policies_page(page: int, size: int) -> tuple[list[Policy], int]:
    """Newest first, as fidesops lists them, with their rules and targets in two more queries."""
    total = db.session.scalar(select(func.count()).select_from(Policy))
    if (page - 1) * size >= total:
        return [], total
    query = _with_rules(select(Policy)).order_by(Policy.created_at.desc(), Policy.id.desc())
    return list(db.session.scalars(query.limit(size).offset((page - 1) * size))), total


def find_policy(policy_key: str) -> Policy:
    """A policy for the policy endpoints, with fidesops' wording there ("No Policy found..."); request
    creation keeps its own ("Policy with key ... does not exist.", ``get_policy``)."""
    valid = isinstance(policy_key, str) and not text_problem(policy_key)
    policy = db.session.scalar(_with_rules(select(Policy)).where(Policy.key == policy_key)) if valid else None
    if policy is None:
        raise NotFound(f"No Policy found for key {policy_key}.")
    return policy


def _check_drp_action(drp_action: str | None, policy_key: str) -> str | None:
    if drp_action is None:
        return None
    if drp_action not in DRP_ACTIONS:
        raise ValidationFailed(
            f"drp_action must be one of {', '.join(DRP_ACTIONS)} (or null).", [(("drp_action",), "unknown")]
        )
    if drp_action == "deletion":
        raise InvalidState(
            "deletion action is out of scope: the portal answers access requests only (erasure is not "
            "part of the manual-webhook guide)."
        )
    if drp_action != "access":
        raise InvalidState(f"{drp_action} action is not supported at this time.")
    holder = db.session.scalar(select(Policy.key).where(Policy.drp_action == drp_action))
    if holder is not None and holder != policy_key:
        raise Conflict(f"DRP Action {drp_action} already exists in policy {holder}.")
    return drp_action


def upsert_policy(
    *, name: str, key: str | None, drp_action: str | None, execution_timeframe: int | None, actor: Actor
) -> Policy:
    """fidesops' create-or-update by key (generated from the name when absent). A new policy without a
    timeframe gets ``DEFAULT_DAYS``; an existing one keeps its own."""
    name = naming.clean_name(name)
    key = naming.key_or_generated(key, name)
    policy = db.session.scalar(select(Policy).where(Policy.key == key))
    drp_action = _check_drp_action(drp_action, key)
    if policy is None:
        policy = create_policy(
            name=name,
            key=key,
            days_to_respond=DEFAULT_DAYS if execution_timeframe is None else execution_timeframe,
            actor=actor,
        )
    else:
        update_policy(
            policy,
            name=name,
            days_to_respond=policy.days_to_respond if execution_timeframe is None else execution_timeframe,
            actor=actor,
        )
    if policy.drp_action != drp_action:
        previous, policy.drp_action = policy.drp_action, drp_action
        try:
            with db.session.begin_nested():
                db.session.flush()
        except IntegrityError as exc:  # another policy took this DRP action at the same moment
            raise Conflict(f"DRP Action {drp_action} already exists in another policy.") from exc
        record(actor, "policy.changed", policy=key, drp_action=[previous, drp_action])
    return policy


def delete_policy(policy: Policy, actor: Actor) -> None:
    """Delete a policy with its rules and targets; refused while requests use it (their due dates and
    packages were made under it) and for the default policy (requests without a policy key use it)."""
    if policy.key == DEFAULT_ACCESS_POLICY_KEY:
        raise InvalidState(
            f"Policy {policy.key} cannot be deleted: privacy requests sent without a policy_key use it."
        )
    used = db.session.scalar(
        select(func.count()).select_from(PrivacyRequest).where(PrivacyRequest.policy_id == policy.id)
    )
    if used:
        raise InvalidState(
            f"Policy {policy.key} cannot be deleted: {used} privacy request{'s use' if used > 1 else ' uses'} "
            "it. Create a new policy for new requests instead."
        )
    key, rules = policy.key, [rule.key for rule in policy.rules]
    db.session.delete(policy)
    db.session.flush()
    record(actor, "policy.deleted", policy=key, rules=rules)


# --- rules -------------------------------------------------------------------------------------------------

RULE_ACTION_TYPES_KNOWN = ("access", "consent", "erasure", "update")


def find_rule(policy: Policy, rule_key: str) -> PolicyRule:
    rule = next((rule for rule in policy.rules if rule.key == rule_key), None)
    if rule is None:
        raise NotFound(f"No Rule found for key {rule_key} on Policy {policy.key}.")
    return rule


def _check_action_type(action_type: str) -> None:
    if action_type == RULE_ACTION_TYPE:
        return
    if action_type == "erasure":
        raise InvalidState(
            "erasure is out of scope: the portal answers access requests only (the manual-webhook guide "
            "excludes erasure), so a policy can hold access rules only."
        )
    if action_type in RULE_ACTION_TYPES_KNOWN:
        raise InvalidState(f"{action_type} Rules are not supported at this time.")
    raise ValidationFailed(
        f"action_type must be one of {', '.join(RULE_ACTION_TYPES_KNOWN)}.", [(("action_type",), "unknown")]
    )


def _storage_destination(storage_destination_key: str | None) -> StorageConfig:
    if storage_destination_key is None:
        raise InvalidState("Access Rules must have a storage destination.")
    config = None
    if isinstance(storage_destination_key, str) and not text_problem(storage_destination_key):
        config = db.session.scalar(select(StorageConfig).where(StorageConfig.key == storage_destination_key))
    if config is None:
        raise NotFound(f"A StorageConfig with key {storage_destination_key} does not exist")
    return config


def upsert_rule(
    policy: Policy,
    *,
    name: str,
    key: str | None,
    action_type: str,
    storage_destination_key: str | None,
    masking_strategy: object | None,
    actor: Actor,
) -> PolicyRule:
    """fidesops' create-or-update of a rule by key (generated from the name when absent). A key names one
    rule across policies: a rule of another policy is not moved here."""
    _check_action_type(action_type)
    if masking_strategy is not None:
        raise InvalidState("Access Rules cannot have masking strategies: masking is for erasure rules.")
    config = _storage_destination(storage_destination_key)
    name = naming.clean_name(name)
    key = naming.key_or_generated(key, name)
    rule = db.session.scalar(select(PolicyRule).where(PolicyRule.key == key))
    if rule is not None and rule.policy_id != policy.id:
        raise Conflict(f"Rule with identifier {key} belongs to another policy.")
    if rule is None:
        rule = PolicyRule(
            policy=policy, key=key, name=name, action_type=action_type, storage_destination=config
        )
        db.session.add(rule)
        try:
            with db.session.begin_nested():
                db.session.flush()
        except IntegrityError as exc:  # a concurrent insert of the same key won the race
            raise Conflict(naming.duplicate_key_message(key, "Rule")) from exc
        record(actor, "policy.rule_created", policy=policy.key, rule=key, storage_key=config.key)
        return rule
    changes = {}
    if rule.name != name:
        changes["name_changed"] = True
        rule.name = name
    if rule.storage_config_id != config.id:
        changes["storage_key"] = [
            rule.storage_destination.key if rule.storage_destination else None,
            config.key,
        ]
        rule.storage_destination = config
    if changes:
        db.session.flush()
        record(actor, "policy.rule_changed", policy=policy.key, rule=key, **changes)
    return rule


def delete_rule(rule: PolicyRule, actor: Actor) -> None:
    """Delete a rule and its targets. Requests already created keep their packages and due dates."""
    policy_key, key, targets = rule.policy.key, rule.key, [t.key for t in rule.targets]
    rule.policy.rules.remove(rule)
    db.session.flush()
    record(actor, "policy.rule_deleted", policy=policy_key, rule=key, targets=targets)


def storage_destination_for(policy_id: int) -> StorageConfig | None:
    """Where a request under this policy has its released package written: its first access rule's
    destination (None when the policy has no rule)."""
    return db.session.scalar(
        select(StorageConfig)
        .join(PolicyRule, PolicyRule.storage_config_id == StorageConfig.id)
        .where(PolicyRule.policy_id == policy_id, PolicyRule.action_type == RULE_ACTION_TYPE)
        .order_by(PolicyRule.id)
        .limit(1)
    )


# --- targets -----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def data_categories() -> frozenset[str]:
    """The data categories of fideslang's default taxonomy (the pinned fideslang's)."""
    return frozenset(category.fides_key for category in DEFAULT_TAXONOMY.data_category)


def _check_data_category(data_category: str) -> str:
    if not isinstance(data_category, str) or data_category not in data_categories():
        hint = ""
        if isinstance(data_category, str) and data_category.startswith("user.provided"):
            hint = (
                " fideslang 2 renamed the user.provided.* categories: user.provided.identifiable.contact.email "
                "is now user.contact.email, for example."
            )
        raise ValidationFailed(
            f"The data category {data_category} is not supported: it is not in fideslang's default "
            f"taxonomy.{hint}",
            [(("data_category",), "not in fideslang's default taxonomy")],
        )
    return data_category


def find_target(rule: PolicyRule, target_key: str) -> RuleTarget:
    target = next((target for target in rule.targets if target.key == target_key), None)
    if target is None:
        raise NotFound(
            f"No RuleTarget found for key {target_key} at Rule {rule.key} on Policy {rule.policy.key}."
        )
    return target


def upsert_target(
    rule: PolicyRule, *, name: str | None, key: str | None, data_category: str, actor: Actor
) -> RuleTarget:
    """fidesops' create-or-update of a target by key; a data category once per rule. Without a name it is
    ``{rule key}-{data category}``, as in fidesops."""
    data_category = _check_data_category(data_category)
    name = naming.clean_name(name if name is not None else f"{rule.key}-{data_category}")
    key = naming.key_or_generated(key, name)
    target = db.session.scalar(select(RuleTarget).where(RuleTarget.key == key))
    if target is not None and target.rule_id != rule.id:
        raise Conflict(f"RuleTarget with identifier {key} belongs to another rule.")
    twin = next((t for t in rule.targets if t.data_category == data_category and t is not target), None)
    if twin is not None:
        raise Conflict(f"DataCategory {data_category} is already specified on Rule with key {rule.key}.")
    if target is None:
        target = RuleTarget(rule=rule, key=key, name=name, data_category=data_category)
        db.session.add(target)
        try:
            with db.session.begin_nested():
                db.session.flush()
        except IntegrityError as exc:  # a concurrent insert won the race
            raise Conflict(naming.duplicate_key_message(key, "RuleTarget")) from exc
        record(
            actor,
            "policy.target_created",
            policy=rule.policy.key,
            rule=rule.key,
            target=key,
            data_category=data_category,
        )
        return target
    if (target.name, target.data_category) != (name, data_category):
        changes = {"data_category": [target.data_category, data_category]}
        target.name, target.data_category = name, data_category
        db.session.flush()
        record(actor, "policy.target_changed", policy=rule.policy.key, rule=rule.key, target=key, **changes)
    return target


def delete_target(target: RuleTarget, actor: Actor) -> None:
    rule = target.rule
    details = {"policy": rule.policy.key, "rule": rule.key, "target": target.key}
    rule.targets.remove(target)
    db.session.flush()
    record(actor, "policy.target_deleted", **details, data_category=target.data_category)
