"""Sign-in, sign-out, own password; the Flask-Login wiring and the idle timeout."""

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy import bindparam, select

from portal.extensions import db, login_manager
from portal.models import User, utcnow

bp = Blueprint("auth", __name__, url_prefix="/auth")

PUBLIC_ENDPOINTS = {"auth.login", "static", "bootstrap.static", "healthz"}
ACTIVITY_RESOLUTION_SECONDS = 60


# Every signed-in request loads its user: a statement built once costs half of ``Session.get``'s.
_USER = select(User).where(User.id == bindparam("id"))


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Session ids are ``<user id>:<session_version>``; bumping the version ends every session."""
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    user = db.session.execute(_USER, {"id": user_id}).scalar_one_or_none()
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def init_login(app) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    app.permanent_session_lifetime = timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"])

    @app.before_request
    def _idle_timeout_and_forced_password_change():
        if request.endpoint in PUBLIC_ENDPOINTS or not current_user.is_authenticated:
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
