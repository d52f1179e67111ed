import hmac

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.auth import bp, signed_in_user_record
from portal.auth.forms import ChangePasswordForm, LoginForm
from portal.extensions import db, rate_limited
from portal.models.audit import Actor, record
from portal.security import safe_next_url
from portal.services import ValidationFailed, users
from portal.web import refusable


def _account_limit_key() -> str:
    """The address and a keyed hash of the account: Flask-Limiter logs keys, and Redis keeps them."""
    email = (request.form.get("email") or "").strip().lower()[:254]
    secret = current_app.secret_key
    secret = secret if isinstance(secret, bytes) else secret.encode()
    account = hmac.new(secret, email.encode(), "sha256").hexdigest()[:32]
    return f"login:{request.remote_addr}:{account}"


def _address_limit_key() -> str:
    return f"login-address:{request.remote_addr}"


def _login_failed(response) -> bool:
    return response.status_code != 302


# Both are checked before the form is read, so while either is exceeded even the right password gets 429;
# only failures count (a 429 is one too).
@bp.route("/login", methods=["GET", "POST"])
@rate_limited(
    lambda: current_app.config["LOGIN_IP_RATE_LIMIT"],
    key_func=_address_limit_key,
    methods=["POST"],
    deduct_when=_login_failed,
)
@rate_limited(
    lambda: current_app.config["LOGIN_RATE_LIMIT"],
    key_func=_account_limit_key,
    methods=["POST"],
    deduct_when=_login_failed,
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        db.session.commit()
        if user is not None:
            session.clear()  # a fresh session at sign-in: nothing from before carries over
            login_user(user)
            return redirect(safe_next_url(form.next.data))
        form.password.errors.append("Wrong email or password, or the account is deactivated.")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = signed_in_user_record()
    user.session_version += 1  # the old cookie stops working even if someone kept a copy
    record(Actor.for_user(user), "logout")
    db.session.commit()
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = signed_in_user_record()
        with refusable() as outcome:
            users.change_password(
                user, form.current_password.data, form.new_password.data, Actor.for_user(user)
            )
        if exc := outcome.error:
            located = isinstance(exc, ValidationFailed) and exc.errors
            getattr(form, exc.errors[0][0][0] if located else "new_password").errors.append(exc.words)
        else:
            db.session.commit()
            login_user(user)  # the session id now carries the new session version
            flash("Your password has been changed.", "success")
            return redirect(url_for("dashboard.index"))
    return render_template("auth/change_password.html", form=form)
