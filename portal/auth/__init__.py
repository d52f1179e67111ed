"""Sign-in, sign-out, own password; the Flask-Login wiring and the idle timeout."""

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import UserMixin, current_user, logout_user
from sqlalchemy import bindparam, select

from portal.extensions import db, login_manager, run
from portal.models import User, utcnow

bp = Blueprint("auth", __name__, url_prefix="/auth")

PUBLIC_ENDPOINTS = {"auth.login", "static", "bootstrap.static", "healthz", "favicon"}
ACTIVITY_RESOLUTION_SECONDS = 60


_SIGNED_IN_COLUMNS = ("id", "email", "name", "role", "active", "must_change_password", "session_version")


class SignedInUser(UserMixin):
    """The signed-in user as one request reads it: plain values, not an ORM object (``current_user``).

    Every signed-in request loads its user, and an ORM object costs twice what the query does.
    A view that changes the user loads the ``User`` itself (``signed_in_user_record``).
    """

    __slots__ = _SIGNED_IN_COLUMNS

    def __init__(self, row) -> None:
        for name, value in zip(_SIGNED_IN_COLUMNS, row, strict=True):
            setattr(self, name, value)

    is_active = User.is_active
    get_id = User.get_id
    display_name = User.display_name
    has_role = User.has_role


_users = User.__table__
_SIGNED_IN = select(*(_users.c[name] for name in _SIGNED_IN_COLUMNS)).where(_users.c.id == bindparam("id"))


@login_manager.user_loader
def load_user(session_id: str) -> SignedInUser | None:
    """Session ids are ``<user id>:<session_version>``; bumping the version ends every session."""
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    row = run(_SIGNED_IN, {"id": user_id}).first()
    if row is None:
        return None
    user = SignedInUser(row)
    if not user.active or user.session_version != version:
        return None
    return user


def signed_in_user_record() -> User:
    """The signed-in user's ``User`` row, to change it (``current_user`` is a read-only snapshot)."""
    return db.session.get(User, current_user.id)


def _token_route() -> bool:
    """An API route, signed in by its bearer token: a browser's session cookie sent along is not read."""
    view = current_app.view_functions.get(request.endpoint or "")
    return hasattr(view, "required_scope")


def init_login(app) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    app.permanent_session_lifetime = timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"])

    @app.before_request
    def _idle_timeout_and_forced_password_change():
        if request.endpoint in PUBLIC_ENDPOINTS or _token_route():
            return None
        if not current_user.is_authenticated:
            return None
        now = int(utcnow().timestamp())
        last_seen = session.get("last_seen", now)
        if now - last_seen > current_app.config["IDLE_TIMEOUT_MINUTES"] * 60:
            logout_user()
            session.clear()
            flash("You were signed out after a period of inactivity. Please sign in again.", "info")
            return redirect(url_for("auth.login"))
        # Activity is recorded to the minute: the cookie is re-signed and re-sent (with a new expiry) once
        # a minute of activity, not on every request (SESSION_REFRESH_EACH_REQUEST is off).
        if "last_seen" not in session or now - last_seen >= ACTIVITY_RESOLUTION_SECONDS:
            session["last_seen"] = now
        if not session.permanent:
            session.permanent = True
        if current_user.must_change_password and request.endpoint not in (
            "auth.change_password",
            "auth.logout",
        ):
            flash("Please choose a new password before you continue.", "warning")
            return redirect(url_for("auth.change_password"))
        return None


from portal.auth import views  # noqa: E402,F401
