"""Accounts: creating users, roles, activation, passwords and sign-in checks (S3)."""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.crypto import keyring
from portal.execution.tasks import ASSIGNABLE_ROLES
from portal.extensions import db
from portal.models import Role, User, utcnow
from portal.models.audit import Actor, record
from portal.security import burn_password_check, hash_password, needs_rehash, verify_password
from portal.services import Conflict, DomainError, NotFound, ValidationFailed, tasks, tokens


def _common_passwords() -> frozenset[str]:
    text = resources.files("portal").joinpath("common_passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


COMMON_PASSWORDS = _common_passwords()


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Invalid email address: {exc}", [(("email",), str(exc))]) from exc


def password_problem(password: str, email: str) -> str | None:
    """The first rule ``password`` breaks, in words, or None."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return f"The password must be at least {minimum} characters long."
    lowered = password.strip().lower()
    if lowered == email.lower() or lowered == email.split("@")[0].lower():
        return "The password must not be your email address."
    if lowered in COMMON_PASSWORDS:
        return "This password is too common; choose another one."
    return None


def _check_password(password: str, email: str) -> None:
    problem = password_problem(password, email)
    if problem:
        raise ValidationFailed(problem, [(("password",), problem)])


def _check_role(role: str) -> None:
    if role not in {r.value for r in Role}:
        raise ValidationFailed(
            f"Unknown role '{role}'; choose admin, staff or reviewer.", [(("role",), "unknown role")]
        )


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def active_admin_exists() -> bool:
    """Whether anyone can administer the portal (an active admin)."""
    return db.session.scalar(select(User.id).where(User.role == Role.ADMIN, User.active).limit(1)) is not None


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def create_user(
    email: str,
    role: str,
    password: str,
    actor: Actor,
    *,
    name: str = "",
    must_change_password: bool = False,
) -> User:
    email = normalize_email(email)
    _check_role(role)
    _check_password(password, email)
    if find_by_email(email) is not None:
        raise Conflict(f"A user with email {email} already exists.")
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        password_hash=hash_password(password),
        must_change_password=must_change_password,
    )
    db.session.add(user)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"A user with email {email} already exists.") from exc
    record(actor, "user.created", target_user=email, role=role)
    return user


class Updated(NamedTuple):
    user: User
    tasks_unassigned: int  # open tasks that lost their assignee (deactivated, or no longer staff or admin)


def update_user(user: User, actor: Actor, *, role: str, name: str, active: bool) -> Updated:
    _check_role(role)
    if user.id == actor.user_id and (role != user.role or not active):
        raise DomainError("You cannot change your own role or deactivate yourself.")
    losing_an_admin = user.role == Role.ADMIN and user.active and (role != Role.ADMIN or not active)
    if losing_an_admin and _active_admins() <= 1:
        raise DomainError("The last active admin cannot be demoted or deactivated.")
    changes = {}
    if role != user.role:
        changes["role"] = [user.role, role]
        user.role = role
    if active != user.active:
        changes["active"] = [user.active, active]
        user.active = active
        if not active:
            user.session_version += 1  # end their sessions now
    if name.strip() != user.name:
        changes["name_changed"] = True
        user.name = name.strip()
    unassigned = 0
    if not user.active or user.role not in ASSIGNABLE_ROLES:
        unassigned = tasks.unassign_user(user, actor)
        if unassigned:
            changes["tasks_unassigned"] = unassigned
    if changes:
        record(actor, "user.changed", target_user=user.email, **changes)
    return Updated(user, unassigned)


def _active_admins() -> int:
    """Count the active admins, locking their rows (PostgreSQL) so two admins demoting or deactivating
    each other at the same moment cannot both succeed and leave none."""
    ids = db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.active).with_for_update()
    ).all()
    return len(ids)


def change_password(user: User, current: str, new: str, actor: Actor) -> None:
    if not verify_password(user.password_hash, current):
        raise ValidationFailed("Your current password is not correct.", [(("current_password",), "wrong")])
    if verify_password(user.password_hash, new):
        problem = "The new password must differ from the current one."
        raise ValidationFailed(problem, [(("new_password",), problem)])
    problem = password_problem(new, user.email)
    if problem:
        raise ValidationFailed(problem, [(("new_password",), problem)])
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.session_version += 1
    record(actor, "user.password_changed", target_user=user.email)


def reset_password(user: User, new: str, actor: Actor) -> int:
    """An admin sets a new password; the user must change it at next sign-in. Returns how many of the
    user's API tokens were revoked.

    A reset usually follows a lost or stolen password, so everything the old one could have opened stops:
    the user's sessions end and their API tokens are revoked (an admin issues new ones).
    """
    _check_password(new, user.email)
    user.password_hash = hash_password(new)
    user.must_change_password = True
    user.session_version += 1
    revoked = tokens.revoke_user_tokens(user, actor, reason="password_reset")
    record(actor, "user.password_reset", target_user=user.email, tokens_revoked=revoked)
    return revoked


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, or None; audits both outcomes."""
    user = find_by_email(email)
    if user is None:
        burn_password_check(password)
    elif verify_password(user.password_hash, password) and user.active:  # same work for inactive accounts
        if needs_rehash(user.password_hash):  # the hashing parameters changed since it was set
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        record(Actor.for_user(user), "login.succeeded")
        return user
    record(Actor.for_user(user) if user else unknown_account_actor(email), "login.failed")
    return None


UNKNOWN_ACCOUNT_PREFIX = "unknown:"


def unknown_account_actor(typed: str) -> Actor:
    """Who a failed sign-in with no such account is recorded as: never what was typed (it may be a password
    typed in the wrong box), but a keyed hash of it, so repeated attempts with the same text still match.

    The hash is keyed with the blind-index key: after a key rotation the same text hashes differently.
    """
    digest = keyring().blind_index(typed.strip().casefold(), purpose="sign-in")
    return Actor("user", f"{UNKNOWN_ACCOUNT_PREFIX}{digest[:16]}")
