"""A small populated portal for the adversarial suites: users and tokens of every role, a manual
webhook, and requests in the states the routes care about."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, User
from portal.models.audit import Actor
from portal.scopes import ROLE_SCOPES
from portal.services import manual_inputs, oauth_clients, policies, privacy_requests, storage, tokens
from tests.factories import make_connection, make_user
from tests.workflow_helpers import STAFF, add_webhook, new_request
from tests.workflow_helpers import field as webhook_field

SUBJECT_EMAIL = "jane.subject@example.com"
WEBHOOK_KEY = "crm"
FIELDS = [webhook_field("First Name"), webhook_field("Last Name"), webhook_field("Notes", type="textarea")]
TEST_ACTOR = Actor.system("test")
ROLES = ("reviewer", "staff", "admin")
# A policy with an access rule and a target; its rule writes to a destination of its own, so that the
# world's other destination can still be deleted.
POLICY_KEY, RULE_KEY, TARGET_KEY = "archive_policy", "archive_rule", "archive_target"
CLOSED_PORT = 9  # discard: nothing listens, so a storage test fails at once without leaving the machine


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]  # role → bearer secret
    token_ids: dict[str, int]
    revoked_token: str
    waiting_id: str  # requires_input; the crm entry is saved, so it can be resumed
    empty_waiting_id: str  # requires_input, nothing entered yet
    complete_id: str  # complete, with a package
    spare_key: str  # a manual connection without a webhook
    storage_key: str  # an s3 destination whose endpoint is a closed localhost port: never the network
    oauth_client_id: str = ""  # an OAuth client of the admin, with every admin scope
    extra: dict = field(default_factory=dict)

    def headers(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        secret = self.revoked_token if role == "revoked" else self.tokens[role]
        return {"Authorization": f"Bearer {secret}"}


def complete_request(email: str = SUBJECT_EMAIL, values: dict | None = None) -> str:
    request_id = new_request(email=email)
    manual_inputs.save_manual_input(request_id, WEBHOOK_KEY, values or {"first_name": "Jane"}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    assert db.session.get(PrivacyRequest, request_id).status == RequestStatus.COMPLETE
    return request_id


def build_world() -> World:
    users = {role: make_user(role=role, name=f"{role.title()} Person") for role in ROLES}
    secrets, ids = {}, {}
    for role, user in users.items():
        token, secret = tokens.create_token(user, f"{role} token", TEST_ACTOR)
        secrets[role], ids[role] = secret, token.id
    revoked, revoked_secret = tokens.create_token(users["admin"], "revoked token", TEST_ACTOR)
    tokens.revoke_token(revoked, TEST_ACTOR)
    admin_scopes = ROLE_SCOPES["admin"]
    client, _ = oauth_clients.create_client(
        users["admin"], sorted(admin_scopes), TEST_ACTOR, granted_by=admin_scopes
    )
    db.session.commit()
    add_webhook(WEBHOOK_KEY, FIELDS, name="CRM")
    spare = make_connection("Spare System", key="spare")
    complete_id = complete_request()
    waiting_id = new_request(email="waiting@example.com")
    manual_inputs.save_manual_input(waiting_id, WEBHOOK_KEY, {"first_name": "Wanda"}, STAFF)
    db.session.commit()
    empty_waiting_id = new_request(email="empty@example.com")
    destination = storage.create_storage_config(
        name="Package archive",
        storage_type="s3",
        details={"bucket": "package-archive", "endpoint_url": f"http://127.0.0.1:{CLOSED_PORT}"},
        actor=TEST_ACTOR,
    )
    _policy_with_a_rule()
    db.session.commit()
    return World(
        users=users,
        tokens=secrets,
        token_ids=ids,
        revoked_token=revoked_secret,
        waiting_id=waiting_id,
        empty_waiting_id=empty_waiting_id,
        complete_id=complete_id,
        spare_key=spare.key,
        storage_key=destination.key,
        oauth_client_id=client.id,
    )


def _policy_with_a_rule() -> None:
    rule_destination = storage.create_storage_config(
        name="Rule archive",
        storage_type="s3",
        details={"bucket": "rule-archive", "endpoint_url": f"http://127.0.0.1:{CLOSED_PORT}"},
        actor=TEST_ACTOR,
    )
    policy = policies.upsert_policy(
        name="Archive policy", key=POLICY_KEY, drp_action=None, execution_timeframe=30, actor=TEST_ACTOR
    )
    rule = policies.upsert_rule(
        policy,
        name="Archive rule",
        key=RULE_KEY,
        action_type="access",
        storage_destination_key=rule_destination.key,
        masking_strategy=None,
        actor=TEST_ACTOR,
    )
    policies.upsert_target(rule, name=None, key=TARGET_KEY, data_category="user", actor=TEST_ACTOR)


def sign_in(client, user: User) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


# --- walking the url_map ---------------------------------------------------------------------------


def params_for(world, endpoint: str) -> dict:
    """URL parameters: real objects, chosen so that an allowed caller reaches the view's own logic."""
    from portal.notifications.mail import unsubscribe_token

    workflow = _workflow_params(world, endpoint)
    packages = endpoint.startswith("packages.") or endpoint in (
        "api.get_package",
        "api.get_delivery",
        "api.approve_package",
        "api.send_back_package",
        "api.resend_delivery_link",
        "api.revoke_delivery_link",
    )
    request_id = world.complete_id if packages else world.waiting_id
    key = world.spare_key if endpoint in ("api.delete_connection", "api.create_webhook") else WEBHOOK_KEY
    if "storage" in endpoint:
        key = world.storage_key
    return {
        "request_id": request_id,
        "key": key,
        "connection_key": WEBHOOK_KEY,
        "policy_key": POLICY_KEY,
        "rule_key": RULE_KEY,
        "target_key": TARGET_KEY,
        "user_id": world.users["staff"].id,
        "token_id": world.token_ids["staff"],
        "client_id": world.oauth_client_id,
        "fides_key": "no_such_dataset",
        "token": unsubscribe_token(world.users["reviewer"].id, ["package_ready"]),
        "filename": "css/bootstrap.min.css" if endpoint == "bootstrap.static" else "css/portal.css",
        "attachment_id": "att_" + "0" * 32,  # no such file: the routes answer 404 after their checks
        **workflow,
    }


def _workflow_params(world, endpoint: str) -> dict:
    """The empty waiting request's task (open, unassigned), and a note (by staff) or a deadline extension
    (by the admin) on the waiting request when the route takes one: made here, so other suites' worlds hold
    none."""
    from portal.models import Policy, Task
    from portal.services import DomainError, deadlines, notes

    params = {
        "task_id": db.session.scalar(
            select(Task.id).where(Task.privacy_request_id == world.empty_waiting_id)
        ),
        "policy_id": db.session.scalar(select(Policy.id)),
    }
    try:
        if endpoint.endswith("delete_note"):
            note = notes.add_note(world.waiting_id, "A note", Actor.for_user(world.users["staff"]))
            params["note_id"] = note.id
        if endpoint.endswith("subject_told"):
            admin = Actor.for_user(world.users["admin"])
            params["extension_id"] = deadlines.extend(
                world.waiting_id, admin, preset="ccpa", reason="Backlog"
            ).id
    except DomainError:  # a walk over every route may have closed the request earlier: any id will do
        db.session.rollback()
        params.update(note_id=1, extension_id=1)
    params.setdefault("note_id", 1)
    params.setdefault("extension_id", 1)
    if params["task_id"] is None:  # the walk deleted the connection, and its tasks with it
        params["task_id"] = 1
    db.session.commit()
    return params


def route_methods(app):
    """(rule, method) for every route; HEAD is GET without a body, and Flask answers OPTIONS itself."""
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def url_for_rule(rule, params: dict) -> str:
    values = {name: params[name] for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


# Form data that an allowed caller would post (other forms need none to reach their view's logic).
FORM_DATA = {
    "requests.new": {"email": "form-made@example.com", "policy": "default_access_policy"},
    "requests.manual_input": {"field_0": "Jane", "version": "1"},
    "requests.add_note": {"note-body": "Called the subject back."},
    "requests.cancel": {"cancel-reason": "Withdrawn by the subject."},
    "requests.extend": {
        "extend-preset": "custom",
        "extend-reason": "Backlog",
        "extend-new_due_date": "2100-01-01",
    },
}


def api_body(world, endpoint: str):
    """The JSON body an allowed caller would send to an API route (None for routes without one)."""
    fields = {"fields": [{"pii_field": "Email"}]}
    return {
        "api.create_connections": [{"name": "Made By API", "connection_type": "manual_webhook"}],
        "api.upsert_connections": [
            {"name": "Upserted", "key": "upserted", "connection_type": "manual_webhook"}
        ],
        "api.create_webhook": fields,
        "api.patch_webhook": fields,
        "api.patch_datasets": [],
        "api.put_secrets": {"url": "sqlite:///nowhere.sqlite3"},
        "api.create_privacy_requests": [{"identity": {"email": "api-made@example.com"}}],
        "api.approve_privacy_requests": {"request_ids": [world.waiting_id]},
        "api.deny_privacy_requests": {"request_ids": [world.waiting_id]},
        "api.search_privacy_requests": {"identity": {"email": "subject@example.com"}},
        "api.upload_manual_input": {"first_name": "Jane"},
        "api.create_oauth_client": ["connection:read"],
        "api.set_client_scopes": ["connection:read"],
        "api.patch_storage_configs": [
            {"name": "Made By API", "type": "s3", "details": {"bucket": "made-by-api"}, "format": "json"}
        ],
        "api.put_storage_secrets": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "example"},
        "api.patch_policies": [{"name": "Made By API"}],
        "api.patch_rules": [
            {"name": "Made By API", "action_type": "access", "storage_destination_key": world.storage_key}
        ],
        "api.patch_targets": [{"data_category": "user.contact"}],
        "api.assign_task": {"user_id": world.users["staff"].id},
        "api.bulk_assign_tasks": {
            "user_id": world.users["staff"].id,
            "task_ids": [_workflow_params(world, endpoint)["task_id"]],
        },
        "api.add_note": {"body": "Called the subject back."},
        "api.extend_deadline": {"preset": "custom", "reason": "Backlog", "new_due_date": "2100-01-01"},
        "api.cancel_privacy_request": {"reason": "Withdrawn by the subject."},
    }.get(endpoint)


def path_with(rule, values: dict) -> str:
    """The rule's path with ``values`` put in as they are (``rule.build`` refuses what its converters
    would not produce, such as an id beyond 64 bits)."""
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", lambda m: quote(str(values[m.group(1)]), safe=""), rule.rule)


_LEAD = re.compile(r'<p class="lead">(.*?)</p>', re.S)
_FORM_ERROR = re.compile(
    r'<div[^>]*class="[^"]*\b(?:invalid-feedback|alert-danger)\b[^"]*"[^>]*>(.*?)</div>', re.S
)


def problem_of(response) -> str:
    """What a refused request says: the API's ``detail``, the error page's message, or the first form
    error of a form sent back ("" when none)."""
    if response.is_json:
        return str((response.get_json() or {}).get("detail") or "")
    page = response.get_data(as_text=True)
    match = _LEAD.search(page) or _FORM_ERROR.search(page)
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def server_error_or_silence(method: str, url: str, response) -> str | None:
    """None when ``response`` is a page or a 4xx that says what was wrong; else what went wrong."""
    shown = url if len(url) < 160 else url[:150] + f"…({len(url)} chars)"
    if response.status_code >= 500:
        return f"{method} {shown} → {response.status_code}"
    if response.status_code >= 400 and method != "HEAD" and not problem_of(response):
        return f"{method} {shown} → {response.status_code} without a message"
    return None
