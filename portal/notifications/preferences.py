"""Each user's choice per kind of mail: immediately, in the daily digest, or off.

Without a stored choice a user gets the kind's default for their role (``kinds``), so a role change
brings the new role's defaults. Error mails cannot be turned off for everyone: turning them off is
refused for the last active admin who receives them (and should that admin be deactivated or demoted
anyway, the next error goes to every active admin, see ``outbox.enqueue_for_kind``).
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from portal.extensions import db
from portal.models import DeliveryMode, NotificationPreference, Role, User, utcnow
from portal.models.audit import Actor, record
from portal.notifications.kinds import KINDS, REQUEST_ERROR, Kind, offered_to
from portal.services import DomainError, ValidationFailed

LAST_ERROR_RECIPIENT = (
    "You are the last active admin who receives error mails, so they cannot be turned off: someone must "
    "hear when a request fails. Ask another admin to turn them on first."
)
PREFERENCES = NotificationPreference.__table__


class LastErrorRecipient(DomainError):
    """Turning error mails off would leave no active admin receiving them."""


def effective_mode(kind: Kind):
    """SQL (over ``users`` outer-joined to the user's preference row for ``kind``): their stored choice,
    else the default for their role."""
    default = case(
        *((User.role == role, literal(mode.value)) for role, mode in kind.defaults.items()),
        else_=literal(DeliveryMode.OFF.value),
    )
    return func.coalesce(PREFERENCES.c.mode, default)


def receivers(kind: Kind, modes: tuple[DeliveryMode, ...]):
    """SELECT the ids of active users of a role allowed ``kind`` whose mode for it is one of ``modes``."""
    return (
        select(User.id)
        .outerjoin(PREFERENCES, and_(PREFERENCES.c.user_id == User.id, PREFERENCES.c.kind == kind.name))
        .where(
            User.active.is_(True),
            User.role.in_(list(kind.defaults)),
            effective_mode(kind).in_([mode.value for mode in modes]),
        )
    )


def modes_for(user: User) -> dict[str, DeliveryMode]:
    """The user's mode for every kind offered to their role (stored choice, else the default)."""
    stored = dict(
        db.session.execute(
            select(NotificationPreference.kind, NotificationPreference.mode).where(
                NotificationPreference.user_id == user.id
            )
        ).all()
    )
    modes = {}
    for kind in offered_to(user.role):
        mode = stored.get(kind.name)
        modes[kind.name] = DeliveryMode(mode) if mode in kind.modes else kind.default_for(user.role)
    return modes


def _upsert(user_id: int, kind: str, mode: str) -> None:
    insert = (postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert)(
        PREFERENCES
    )
    now = utcnow()
    db.session.execute(
        insert.values(user_id=user_id, kind=kind, mode=mode, updated_at=now).on_conflict_do_update(
            index_elements=[PREFERENCES.c.user_id, PREFERENCES.c.kind], set_={"mode": mode, "updated_at": now}
        )
    )


def set_modes(user: User, choices: dict[str, str], actor: Actor) -> dict[str, str]:
    """Store ``choices`` (kind → mode) for ``user``; returns what changed. Never commits.

    Raises ``ValidationFailed`` for a kind or mode the user's role cannot choose, and
    ``LastErrorRecipient`` when it would leave no active admin receiving error mails.
    """
    offered = {kind.name: kind for kind in offered_to(user.role)}
    current = modes_for(user)
    changes = {}
    for name, mode in choices.items():
        kind = offered.get(name)
        if kind is None or mode not in kind.modes:
            label = KINDS[name].label if name in KINDS else name
            raise ValidationFailed(f"“{label}” cannot be set to {mode!r}.", [((name,), "not allowed")])
        if current[name] != mode:
            changes[name] = str(mode)
    if not changes:
        return {}
    turning_off_errors = changes.get(REQUEST_ERROR.name) == DeliveryMode.OFF
    if turning_off_errors:
        # Admin rows locked first (PostgreSQL), so two admins turning theirs off at once are taken in turn
        # and the second sees the first's choice; SQLite has one writer at a time anyway.
        db.session.scalars(
            select(User.id).where(User.role == Role.ADMIN, User.active).with_for_update()
        ).all()
    for name, mode in changes.items():
        _upsert(user.id, name, mode)
    if turning_off_errors:
        still = db.session.scalar(
            select(func.count()).select_from(
                receivers(REQUEST_ERROR, (DeliveryMode.IMMEDIATE, DeliveryMode.DIGEST)).subquery()
            )
        )
        if not still:
            raise LastErrorRecipient(LAST_ERROR_RECIPIENT)
    record(actor, "notification.preferences_changed", target_user=user.email, **changes)
    return changes


def turn_off(user: User, kinds: list[str], actor: Actor) -> tuple[list[str], list[str]]:
    """The unsubscribe link: turn each of ``kinds`` off for ``user`` where their role has it; returns
    (turned off, kept on because they are the last admin receiving error mails). Never commits."""
    offered = {kind.name for kind in offered_to(user.role)}
    done, kept = [], []
    for name in kinds:
        if name not in offered:
            continue
        try:
            with db.session.begin_nested():
                if set_modes(user, {name: DeliveryMode.OFF.value}, actor):
                    done.append(name)
        except LastErrorRecipient:
            kept.append(name)
    return done, kept
