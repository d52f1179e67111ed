"""Password hashing, the role decorator and the blueprint guard (S3)."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, request, url_for
from flask_login import current_user

# --- passwords -------------------------------------------------------------------------------------


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    memory_cost = cfg["PASSWORD_HASH_MEMORY_COST"]
    # Argon2 needs memory_cost (KiB) >= 8 x parallelism.
    return PasswordHasher(
        time_cost=cfg["PASSWORD_HASH_TIME_COST"],
        memory_cost=memory_cost,
        parallelism=max(1, min(cfg["PASSWORD_HASH_PARALLELISM"], memory_cost // 8)),
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the configured ones."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    """A hash of a random password with these settings (a pure builder: any such hash does)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism).hash(
        secrets.token_urlsafe(16)
    )


def burn_password_check(password: str) -> None:
    """Verify against a dummy hash when the email is unknown, so the time taken does not tell."""
    hasher = _hasher()
    verify_password(_dummy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism), password)


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters


# --- roles -----------------------------------------------------------------------------------------


ROLE_NAMES = {"admin": "admins", "staff": "staff", "reviewer": "reviewers"}


def needed_roles_message(roles: tuple[str, ...]) -> str:
    """Who may open a page, in words ("... It is for admins and staff; you are signed in as reviewer. ...")."""
    names = [ROLE_NAMES.get(role, role) for role in sorted(roles, key=list(ROLE_NAMES).index)]
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"You don't have permission to open this page. It is for {who}; you are signed in as "
        f"{current_user.role}. Ask an admin if you need it."
    )


def _deny_unless(roles: tuple[str, ...]):
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if roles and current_user.role not in roles:
        abort(403, needed_roles_message(roles))
    return None


def roles_required(*roles: str) -> Callable:
    """Signed-in users with one of ``roles`` pass (any role when none given); others 302 → login / 403."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            denied = _deny_unless(roles)
            if denied is not None:
                return denied
            return view(*args, **kwargs)

        return wrapped

    return decorator


def guard_blueprint(bp, *roles: str) -> None:
    """Every route of ``bp`` requires sign-in (and one of ``roles``), so a new route cannot forget."""

    @bp.before_request
    def _guard():
        return _deny_unless(roles)


# --- redirects -------------------------------------------------------------------------------------


def _has_control_character(text: str) -> bool:
    # CR/LF would split the Location header (Werkzeug refuses to send it); browsers drop tabs and newlines
    # from URLs, so "/\t/evil.example" would lead to another site.
    return any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text)


def safe_next_url(target: str | None, fallback_endpoint: str = "dashboard.index") -> str:
    """Only same-site relative paths are followed after login (no open redirects); anything else, or a
    path with a control character in it, goes to ``fallback_endpoint``."""
    if target and not _has_control_character(target):
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith("//")
            and "\\" not in target
        ):
            return target
    return url_for(fallback_endpoint)


# --- hostile input ---------------------------------------------------------------------------------


def reject_null_bytes():
    """No NUL characters in paths, query strings or form fields: databases cannot store them (400)."""
    values = [request.path, *request.args.values(), *(request.view_args or {}).values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values.extend(request.form.values())
    if any(isinstance(v, str) and "\x00" in v for v in values):
        abort(400, "The request contains a null character (\\u0000), which is not allowed.")
