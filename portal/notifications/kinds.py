"""The kinds of mail the portal sends, who may receive each, and what they get by default (S10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from portal.models import DeliveryMode, Role

M = DeliveryMode
ALL_MODES = (M.IMMEDIATE, M.DIGEST, M.OFF)
DIGEST = "digest"  # the kind of the daily digest's own rows
# An open task nobody has taken for this long is brought to its system's owners (else the admins).
UNASSIGNED_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # shown on the settings page and in the unsubscribe page
    help: str
    defaults: dict[str, DeliveryMode]  # role → mode; a role not listed never receives this kind
    modes: tuple[DeliveryMode, ...] = ALL_MODES
    # False until something sends it: such kinds are not offered on the settings page yet.
    wired: bool = True

    def default_for(self, role: str) -> DeliveryMode:
        return self.defaults.get(role, M.OFF)

    def allows(self, role: str) -> bool:
        return role in self.defaults


TASK_ASSIGNED = Kind(
    "task_assigned",
    "A task is assigned to me",
    "When a request starts waiting on a system you own and its task goes to you, or a task is handed to you.",
    {Role.ADMIN: M.IMMEDIATE, Role.STAFF: M.IMMEDIATE},
    modes=(M.IMMEDIATE, M.OFF),
)
DUE_SOON = Kind(
    "due_soon",
    "My tasks due soon or overdue",
    "Your open tasks that are overdue or due within the next days, and the unassigned ones of the systems "
    "you own (admins: of systems without an owner), in the daily digest.",
    {Role.STAFF: M.DIGEST, Role.ADMIN: M.DIGEST},
    modes=(M.DIGEST, M.OFF),
)
PACKAGE_READY = Kind(
    "package_ready",
    "A package is ready for review",
    "When a request completes and its access package can be reviewed.",
    {Role.REVIEWER: M.IMMEDIATE, Role.ADMIN: M.OFF},
)
REQUEST_ERROR = Kind(
    "request_error",
    "A request fell into error",
    "When a run fails and the request needs a retry. At least one active admin always receives these.",
    {Role.ADMIN: M.IMMEDIATE},
)
UNASSIGNED_TASK = Kind(
    "unassigned_task",
    "A task has waited unassigned for over a day",
    "Once a day per task nobody has taken for over a day: to the system's owners, or to the admins when "
    "it has none.",
    {Role.ADMIN: M.IMMEDIATE, Role.STAFF: M.IMMEDIATE},
)

PACKAGE_SENT_BACK = Kind(
    "package_sent_back",
    "A package was sent back for re-review",
    "When a reviewer sends a package back naming the systems to enter again (all staff, until tasks have "
    "assignees).",
    {Role.STAFF: M.IMMEDIATE, Role.ADMIN: M.OFF},
    modes=(M.IMMEDIATE, M.OFF),
)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (TASK_ASSIGNED, DUE_SOON, PACKAGE_READY, REQUEST_ERROR, UNASSIGNED_TASK, PACKAGE_SENT_BACK)
}


def offered_to(role: str) -> list[Kind]:
    """The kinds a user with ``role`` can choose for on the settings page, in a stable order."""
    return [kind for kind in KINDS.values() if kind.wired and kind.allows(role)]
