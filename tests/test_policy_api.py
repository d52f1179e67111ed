"""/api/v1/policy, rules and targets: fidesops 1.8.2's request and response shapes, bulk answers and
messages; access rules only; targets checked against fideslang's taxonomy; a request under any access
policy works like one under the default policy, due after the policy's timeframe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Policy, PolicyRule, PrivacyRequest, RuleTarget
from portal.models.audit import Actor
from portal.services import storage, tokens
from tests.workflow_helpers import add_webhook, field

V1 = "/api/v1"
ACTOR = Actor.system("test")
# fidesops 1.8.2, fidesops/ops/schemas/policy.py: PolicyResponse, RuleResponse, RuleTarget; and
# fidesops/ops/schemas/storage/storage.py: StorageDestinationResponse.
POLICY_KEYS = {"name", "key", "drp_action", "execution_timeframe", "rules"}
RULE_KEYS = {"name", "key", "action_type", "storage_destination", "masking_strategy", "targets"}
TARGET_KEYS = {"name", "key", "data_category"}
STORAGE_KEYS = {"name", "type", "details", "key", "format"}
PAGE_KEYS = {"items", "total", "page", "size"}


@pytest.fixture
def app_config(app_config, tmp_path):
    root = tmp_path / "exports"
    root.mkdir()
    return {**app_config, "STORAGE_LOCAL_ROOT": str(root)}


def _caller(client, user):
    _, secret = tokens.create_token(user, "test", ACTOR)
    db.session.commit()

    def call(method: str, path: str, body=None):
        kwargs = {"json": body} if body is not None else {}
        return client.open(V1 + path, method=method, headers={"Authorization": f"Bearer {secret}"}, **kwargs)

    return call


@pytest.fixture
def admin(client, make_user):
    return _caller(client, make_user(role="admin"))


@pytest.fixture
def destination(app):
    config = storage.create_storage_config(name="Exports", key="exports", storage_type="local", actor=ACTOR)
    db.session.commit()
    return config.key


@pytest.fixture
def policy(admin, destination):
    """A policy with an access rule writing to ``exports`` and one target, made through the API."""
    body = [{"name": "Shop access", "key": "shop_access", "execution_timeframe": 14}]
    assert admin("PATCH", "/policy/", body).get_json()["failed"] == []
    rule = [
        {
            "name": "Access rule",
            "key": "access_rule",
            "action_type": "access",
            "storage_destination_key": destination,
        }
    ]
    assert admin("PATCH", "/policy/shop_access/rule/", rule).get_json()["failed"] == []
    target = [{"name": "Contact", "key": "contact", "data_category": "user.contact"}]
    assert admin("PATCH", "/policy/shop_access/rule/access_rule/target/", target).get_json()["failed"] == []
    return "shop_access"


def test_patch_creates_and_updates_policies_in_fidesops_shapes(admin):
    body = [
        {"name": "Shop access", "key": "shop_access", "drp_action": "access", "execution_timeframe": 14},
        {"name": "Generated Key Policy"},
    ]
    answer = admin("PATCH", "/policy", body)
    assert answer.status_code == 200
    data = answer.get_json()
    assert set(data) == {"succeeded", "failed"} and data["failed"] == []
    first, second = data["succeeded"]
    assert set(first) == POLICY_KEYS
    assert first == {
        "name": "Shop access",
        "key": "shop_access",
        "drp_action": "access",
        "execution_timeframe": 14,
        "rules": [],
    }
    assert second["key"] == "generated_key_policy" and second["execution_timeframe"] == 30

    update = admin(
        "PATCH", "/policy", [{"name": "Shop access (EU)", "key": "shop_access", "execution_timeframe": 30}]
    )
    assert update.get_json()["succeeded"][0]["name"] == "Shop access (EU)"
    stored = db.session.scalar(select(Policy).where(Policy.key == "shop_access"))
    db.session.refresh(stored)
    assert (stored.name, stored.days_to_respond, stored.drp_action) == ("Shop access (EU)", 30, None)
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("policy.%"))).all()
    assert actions.count("policy.created") == 2 and "policy.changed" in actions


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "Deletion", "drp_action": "deletion"}, "deletion action is out of scope"),
        (
            {"name": "Opt out", "drp_action": "sale:opt_out"},
            "sale:opt_out action is not supported at this time.",
        ),
        ({"name": "Odd", "drp_action": "delete-all"}, "drp_action must be one of"),
        ({"name": "Too long", "execution_timeframe": 0}, "The timeframe must be a whole number of days"),
        ({"name": "Bad key", "key": "has space"}, "Invalid key 'has space'"),
    ],
)
def test_invalid_policies_fail_one_by_one_in_failed(admin, item, message):
    data = admin("PATCH", "/policy", [item, {"name": "Fine"}]).get_json()
    assert [p["key"] for p in data["succeeded"]] == ["fine"]
    (failure,) = data["failed"]
    assert message in failure["message"]
    assert failure["data"]["name"] == item["name"]


def test_one_policy_per_drp_action(admin):
    admin("PATCH", "/policy", [{"name": "First", "drp_action": "access"}])
    failure = admin("PATCH", "/policy", [{"name": "Second", "drp_action": "access"}]).get_json()["failed"][0]
    assert failure["message"] == "DRP Action access already exists in policy first."


def test_list_is_paginated_newest_first_and_one_policy_shows_its_rules(admin, policy, destination):
    listed = admin("GET", "/policy/?page=1&size=1").get_json()
    assert set(listed) == PAGE_KEYS
    assert listed["total"] == 2 and listed["size"] == 1  # the migration's default policy and ours
    assert [p["key"] for p in listed["items"]] == ["shop_access"]

    one = admin("GET", f"/policy/{policy}").get_json()
    assert set(one) == POLICY_KEYS
    (rule,) = one["rules"]
    assert set(rule) == RULE_KEYS
    assert rule["action_type"] == "access" and rule["masking_strategy"] is None
    assert (
        set(rule["storage_destination"]) == STORAGE_KEYS and rule["storage_destination"]["key"] == destination
    )
    assert rule["targets"] == [{"name": "Contact", "key": "contact", "data_category": "user.contact"}]

    missing = admin("GET", "/policy/nope")
    assert (missing.status_code, missing.get_json()) == (404, {"detail": "No Policy found for key nope."})


def test_rules_are_created_updated_and_read_by_key(admin, policy, destination):
    other = storage.create_storage_config(name="Other", key="other", storage_type="local", actor=ACTOR)
    db.session.commit()
    body = [
        {
            "name": "Access rule v2",
            "key": "access_rule",
            "action_type": "access",
            "storage_destination_key": "other",
        }
    ]
    data = admin("PATCH", f"/policy/{policy}/rule", body).get_json()
    assert data["failed"] == []
    assert data["succeeded"][0]["storage_destination"]["key"] == other.key
    assert data["succeeded"][0]["targets"] == [
        {"name": "Contact", "key": "contact", "data_category": "user.contact"}
    ]

    listed = admin("GET", f"/policy/{policy}/rule/").get_json()
    assert set(listed) == PAGE_KEYS and [r["key"] for r in listed["items"]] == ["access_rule"]
    assert admin("GET", f"/policy/{policy}/rule/access_rule").get_json()["name"] == "Access rule v2"
    missing = admin("GET", f"/policy/{policy}/rule/nope")
    assert missing.status_code == 404
    assert missing.get_json() == {"detail": f"No Rule found for key nope on Policy {policy}."}
    assert "policy.rule_changed" in db.session.scalars(select(AuditEvent.action)).all()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"action_type": "erasure", "masking_strategy": {"strategy": "null_rewrite", "configuration": {}}},
            "erasure is out of scope",
        ),
        ({"action_type": "consent"}, "consent Rules are not supported at this time."),
        ({"action_type": "update"}, "update Rules are not supported at this time."),
        (
            {"action_type": "access", "storage_destination_key": "nowhere"},
            "A StorageConfig with key nowhere does not exist",
        ),
        ({"action_type": "access"}, "Access Rules must have a storage destination."),
        (
            {
                "action_type": "access",
                "storage_destination_key": "exports",
                "masking_strategy": {"strategy": "x"},
            },
            "Access Rules cannot have masking strategies",
        ),
        ({"action_type": "delete"}, "action_type must be one of access, consent, erasure, update."),
    ],
)
def test_rules_other_than_access_rules_with_a_destination_fail_with_a_clear_message(
    admin, policy, item, message
):
    data = admin("PATCH", f"/policy/{policy}/rule", [{"name": "Refused", **item}]).get_json()
    assert data["succeeded"] == []
    (failure,) = data["failed"]
    assert message in failure["message"]
    assert failure["data"]["name"] == "Refused" and failure["data"]["action_type"] == item["action_type"]
    assert db.session.scalar(select(PolicyRule).where(PolicyRule.key == "refused")) is None


def test_a_rule_key_belongs_to_one_policy(admin, policy, destination):
    admin("PATCH", "/policy", [{"name": "Second", "key": "second"}])
    body = [
        {
            "name": "Steal",
            "key": "access_rule",
            "action_type": "access",
            "storage_destination_key": destination,
        }
    ]
    failure = admin("PATCH", "/policy/second/rule", body).get_json()["failed"][0]
    assert failure["message"] == "Rule with identifier access_rule belongs to another policy."
    unknown = admin("PATCH", "/policy/none/rule", body)
    assert (unknown.status_code, unknown.get_json()["detail"]) == (404, "No Policy found for key none.")


def test_targets_are_checked_against_fideslangs_taxonomy(admin, policy):
    path = f"/policy/{policy}/rule/access_rule/target"
    data = admin(
        "PATCH",
        path + "/",
        [
            {"key": "email", "data_category": "user.contact.email"},
            {"name": "Old name", "key": "old", "data_category": "user.provided.identifiable.contact.email"},
            {"name": "Made up", "data_category": "user.favourite_colour"},
            {"name": "Twice", "key": "twice", "data_category": "user.contact"},
        ],
    ).get_json()
    (email,) = data["succeeded"]
    assert set(email) == TARGET_KEYS
    assert email == {
        "name": "access_rule-user.contact.email",
        "key": "email",
        "data_category": "user.contact.email",
    }
    old, made_up, twice = data["failed"]
    assert "The data category user.provided.identifiable.contact.email is not supported" in old["message"]
    assert "user.contact.email" in old["message"]  # the hint names the renamed category
    assert "The data category user.favourite_colour is not supported" in made_up["message"]
    assert twice["message"] == "DataCategory user.contact is already specified on Rule with key access_rule."
    categories = db.session.scalars(select(RuleTarget.data_category).order_by(RuleTarget.id)).all()
    assert categories == ["user.contact", "user.contact.email"]
    created = db.session.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "policy.target_created").order_by(AuditEvent.id)
    ).all()
    assert [event["data_category"] for event in created] == categories  # the refused ones wrote nothing


def test_deletes_answer_204_and_404_with_fidesops_messages(admin, policy):
    base = f"/policy/{policy}/rule/access_rule"
    missing = admin("DELETE", base + "/target/nope")
    assert missing.status_code == 404
    assert (
        missing.get_json()["detail"]
        == f"No RuleTarget found for key nope at Rule access_rule on Policy {policy}."
    )
    assert admin("DELETE", base + "/target/contact/").status_code == 204
    assert db.session.scalar(select(RuleTarget)) is None
    assert admin("DELETE", base + "/").status_code == 204
    assert db.session.scalar(select(PolicyRule)) is None
    assert admin("DELETE", f"/policy/{policy}/").status_code == 204
    assert admin("GET", f"/policy/{policy}").status_code == 404
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"policy.target_deleted", "policy.rule_deleted", "policy.deleted"} <= actions


def test_deleting_a_policy_deletes_its_rules_and_targets(admin, policy):
    assert admin("DELETE", f"/policy/{policy}").status_code == 204
    assert db.session.scalar(select(PolicyRule)) is None and db.session.scalar(select(RuleTarget)) is None


def test_a_policy_in_use_and_the_default_policy_are_not_deleted(admin, policy):
    answer = admin(
        "POST", "/privacy-request", [{"identity": {"email": "a@example.com"}, "policy_key": policy}]
    )
    assert answer.get_json()["failed"] == []
    used = admin("DELETE", f"/policy/{policy}")
    assert used.status_code == 400
    assert used.get_json()["detail"] == (
        f"Policy {policy} cannot be deleted: 1 privacy request uses it. Create a new policy for new requests instead."
    )
    default = admin("DELETE", "/policy/default_access_policy")
    assert (
        default.status_code == 400
        and "privacy requests sent without a policy_key use it" in default.get_json()["detail"]
    )


def test_a_destination_that_a_rule_writes_to_is_not_deleted(admin, policy, destination):
    answer = admin("DELETE", f"/storage/config/{destination}")
    assert answer.status_code == 400
    assert answer.get_json()["detail"] == (
        f"StorageConfig {destination} cannot be deleted: the rule access_rule (policy {policy}) writes to it. "
        "Point the policy's rules at another destination, or delete them, first."
    )


def test_a_request_under_another_access_policy_waits_and_is_due_after_its_timeframe(admin, policy):
    add_webhook("crm", [field("Email")])
    db.session.commit()
    answer = admin(
        "POST", "/privacy-request/", [{"identity": {"email": "a@example.com"}, "policy_key": policy}]
    )
    (created,) = answer.get_json()["succeeded"]
    assert created["status"] == "requires_input"  # as under default_access_policy: the manual system waits
    assert created["policy"]["key"] == policy and created["policy"]["execution_timeframe"] == 14
    assert set(created["policy"]) == POLICY_KEYS
    (rule,) = created["policy"]["rules"]
    assert set(rule) == RULE_KEYS and rule["key"] == "access_rule"
    assert [set(target) for target in rule["targets"]] == [TARGET_KEYS]
    assert created["days_left"] == 14
    stored = db.session.get(PrivacyRequest, created["id"])
    assert stored.due_date - stored.created_at == timedelta(days=14)


def test_scopes_are_fidesops_names_and_staff_may_only_read(client, make_user, admin, policy):
    staff = _caller(client, make_user(role="staff"))
    assert staff("GET", "/policy").status_code == 200
    refused = staff("PATCH", "/policy", [{"name": "Mine"}])
    assert refused.status_code == 403 and "policy:create_or_update" in refused.get_json()["detail"]
    assert staff("GET", f"/policy/{policy}/rule").status_code == 200
    refused = staff("PATCH", f"/policy/{policy}/rule/access_rule/target", [{"data_category": "user"}])
    assert refused.status_code == 403 and "rule:create_or_update" in refused.get_json()["detail"]
    assert staff("DELETE", f"/policy/{policy}").status_code == 403
    scopes = admin("GET", "/oauth/scope").get_json()
    assert {
        "policy:create_or_update",
        "policy:read",
        "policy:delete",
        "rule:create_or_update",
        "rule:read",
        "rule:delete",
    } <= set(scopes)
