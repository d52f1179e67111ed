"""Policies (S2): what a request does and how many days the company has to answer it. Admins list,
create and edit them; new requests choose among them. Changing a policy's timeframe applies to requests
created afterwards: a request's due date is set when it is created (and moved only by an extension)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Policy
from portal.models.audit import Actor, record
from portal.models.policies import ACTION_TYPES
from portal.services import Conflict, NotFound, ValidationFailed, text_problem

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
