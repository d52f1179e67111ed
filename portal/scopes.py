"""API scopes (S6): fidesops' names plus ours, and what each role may hold."""

from __future__ import annotations

from portal.models import Role

CONNECTION_CREATE_OR_UPDATE = "connection:create_or_update"
CONNECTION_READ = "connection:read"
CONNECTION_DELETE = "connection:delete"
WEBHOOK_CREATE_OR_UPDATE = "webhook:create_or_update"
WEBHOOK_READ = "webhook:read"
WEBHOOK_DELETE = "webhook:delete"
DATASET_CREATE_OR_UPDATE = "dataset:create_or_update"
DATASET_READ = "dataset:read"
DATASET_DELETE = "dataset:delete"
STORAGE_CREATE_OR_UPDATE = "storage:create_or_update"
STORAGE_READ = "storage:read"
STORAGE_DELETE = "storage:delete"
POLICY_CREATE_OR_UPDATE = "policy:create_or_update"
POLICY_READ = "policy:read"
POLICY_DELETE = "policy:delete"
RULE_CREATE_OR_UPDATE = "rule:create_or_update"  # rules and their targets, as in fidesops
RULE_READ = "rule:read"
RULE_DELETE = "rule:delete"
PRIVACY_REQUEST_CREATE = "privacy-request:create"
PRIVACY_REQUEST_READ = "privacy-request:read"
PRIVACY_REQUEST_REVIEW = "privacy-request:review"
PRIVACY_REQUEST_UPLOAD_DATA = "privacy-request:upload_data"
PRIVACY_REQUEST_VIEW_DATA = "privacy-request:view_data"
PRIVACY_REQUEST_RESUME = "privacy-request:resume"
PRIVACY_REQUEST_DOWNLOAD_PACKAGE = "privacy-request:download_package"
# Review and delivery (this portal's): approve or send back a package; re-issue or revoke the subject's link.
PACKAGE_REVIEW = "package:review"
PACKAGE_DELIVER = "package:deliver"
# OAuth clients (fidesops' names): manage client credentials, and list the scopes there are.
CLIENT_CREATE = "client:create"
CLIENT_READ = "client:read"
CLIENT_UPDATE = "client:update"
CLIENT_DELETE = "client:delete"
SCOPE_READ = "scope:read"
# This portal's own: the team workflow (tasks, notes, deadline extensions, cancel).
TASK_READ = "task:read"
TASK_UPDATE = "task:update"  # claim, give back, hand over (the service: one's own task, or an admin)
TASK_ASSIGN = "task:assign"  # assign in bulk (admins)
NOTE_READ = "privacy-request-note:read"
NOTE_CREATE = "privacy-request-note:create"
NOTE_DELETE = "privacy-request-note:delete"  # the service: one's own note, or an admin
PRIVACY_REQUEST_EXTEND = "privacy-request:extend"  # the service: an assignee of the request, or an admin
PRIVACY_REQUEST_CANCEL = "privacy-request:cancel"

ALL_SCOPES = (
    CONNECTION_CREATE_OR_UPDATE,
    CONNECTION_READ,
    CONNECTION_DELETE,
    WEBHOOK_CREATE_OR_UPDATE,
    WEBHOOK_READ,
    WEBHOOK_DELETE,
    DATASET_CREATE_OR_UPDATE,
    DATASET_READ,
    DATASET_DELETE,
    STORAGE_CREATE_OR_UPDATE,
    STORAGE_READ,
    STORAGE_DELETE,
    POLICY_CREATE_OR_UPDATE,
    POLICY_READ,
    POLICY_DELETE,
    RULE_CREATE_OR_UPDATE,
    RULE_READ,
    RULE_DELETE,
    PRIVACY_REQUEST_CREATE,
    PRIVACY_REQUEST_READ,
    PRIVACY_REQUEST_REVIEW,
    PRIVACY_REQUEST_UPLOAD_DATA,
    PRIVACY_REQUEST_VIEW_DATA,
    PRIVACY_REQUEST_RESUME,
    PRIVACY_REQUEST_DOWNLOAD_PACKAGE,
    PACKAGE_REVIEW,
    PACKAGE_DELIVER,
    CLIENT_CREATE,
    CLIENT_READ,
    CLIENT_UPDATE,
    CLIENT_DELETE,
    SCOPE_READ,
    TASK_READ,
    TASK_UPDATE,
    TASK_ASSIGN,
    NOTE_READ,
    NOTE_CREATE,
    NOTE_DELETE,
    PRIVACY_REQUEST_EXTEND,
    PRIVACY_REQUEST_CANCEL,
)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(ALL_SCOPES),
    Role.STAFF: frozenset(
        {
            CONNECTION_READ,
            WEBHOOK_READ,
            DATASET_READ,
            POLICY_READ,  # staff choose a policy when they create a request
            RULE_READ,  # a policy's rules are in its body already
            PRIVACY_REQUEST_CREATE,
            PRIVACY_REQUEST_READ,
            PRIVACY_REQUEST_UPLOAD_DATA,
            PRIVACY_REQUEST_VIEW_DATA,
            PRIVACY_REQUEST_RESUME,
            PACKAGE_DELIVER,
            TASK_READ,
            TASK_UPDATE,
            NOTE_READ,
            NOTE_CREATE,
            NOTE_DELETE,
            PRIVACY_REQUEST_EXTEND,
            PRIVACY_REQUEST_CANCEL,
        }
    ),
    Role.REVIEWER: frozenset(
        {
            PRIVACY_REQUEST_READ,
            PRIVACY_REQUEST_VIEW_DATA,
            PRIVACY_REQUEST_DOWNLOAD_PACKAGE,
            PACKAGE_REVIEW,
            PACKAGE_DELIVER,
            NOTE_READ,
        }
    ),
}


def effective_scopes(role: str, token_scopes: list[str] | None) -> frozenset[str]:
    """The owner's role scopes, narrowed to the token's explicit scopes when it has any.

    Computed on every call, so a role change or demotion takes effect on existing tokens at once.
    """
    allowed = ROLE_SCOPES.get(role, frozenset())
    return allowed if token_scopes is None else allowed & frozenset(token_scopes)
