"""Admin: users — list, create, change role / name, deactivate / reactivate, reset password (S3).

Generated passwords are rendered straight into the POST response (never stored, never put in the signed
but readable session cookie), with ``Cache-Control: no-store``: they are shown exactly once.
"""

from __future__ import annotations

from flask import current_app, flash, make_response, redirect, render_template, url_for
from sqlalchemy import select

from portal.admin import bp
from portal.admin.user_forms import ConfirmForm, EditUserForm, NewUserForm, ResetPasswordForm
from portal.extensions import db
from portal.models import User
from portal.routing import page_number
from portal.security import generate_password
from portal.services import DomainError, ValidationFailed, users
from portal.web import current_actor, refusable


def _show_error(form, exc: DomainError, default_field: str | None = None) -> None:
    """Attach the service's message to the field it names (or ``default_field``)."""
    field_name = default_field
    if isinstance(exc, ValidationFailed) and exc.errors:
        field_name = exc.errors[0][0][0]
    field = getattr(form, field_name, None) if field_name else None
    if field is not None:
        field.errors = [*field.errors, exc.words]
    else:
        flash(exc.words, "danger")


def _tokens_revoked_text(count: int) -> str:
    """What a password reset did to the user's API tokens, as a sentence."""
    if count == 0:
        return "They had no API tokens to revoke."
    return f"Their {count} API token{'s were' if count > 1 else ' was'} revoked; issue new ones if needed."


def _password_shown_once(user: User, password: str, *, created: bool, tokens_revoked: int = 0):
    response = make_response(
        render_template(
            "admin/users/password_shown.html",
            user=user,
            password=password,
            created=created,
            tokens_revoked=_tokens_revoked_text(tokens_revoked),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _render_edit(user: User, form: EditUserForm | None = None, reset_form: ResetPasswordForm | None = None):
    form = form or EditUserForm(obj=user, formdata=None)
    reset_form = reset_form or ResetPasswordForm(prefix="reset", formdata=None)
    return render_template("admin/users/edit.html", user=user, form=form, reset_form=reset_form)


@bp.route("/users", endpoint="users")
def list_users():
    pagination = db.paginate(
        select(User).order_by(User.email),
        page=page_number(),
        per_page=current_app.config["PAGE_SIZE"],
        max_per_page=current_app.config["PAGE_SIZE"],
        error_out=False,
    )
    return render_template("admin/users/index.html", pagination=pagination)


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    form = NewUserForm()
    if form.validate_on_submit():
        chosen = form.chosen_password
        password = chosen if chosen is not None else generate_password()
        with refusable() as outcome:
            user = users.create_user(
                form.email.data,
                form.role.data,
                password,
                current_actor(),
                name=form.name.data or "",
                must_change_password=chosen is None or form.must_change_password.data,
            )
        if outcome.error:
            _show_error(form, outcome.error, default_field="email")
        else:
            db.session.commit()
            if chosen is None:
                return _password_shown_once(user, password, created=True)
            flash(f"User {user.email} created.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/users/new.html", form=form)


@bp.route("/users/<id:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    user = users.get_user(user_id)
    form = EditUserForm(obj=user)
    if form.validate_on_submit():
        with refusable() as outcome:
            updated = users.update_user(
                user, current_actor(), role=form.role.data, name=form.name.data or "", active=user.active
            )
        if outcome.error:
            _show_error(form, outcome.error, default_field="role")
        else:
            db.session.commit()
            if updated.tasks_unassigned:
                flash(unassigned_message(updated.tasks_unassigned), "warning")
            flash(f"Changes to {user.email} saved.", "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return _render_edit(user, form=form)


def unassigned_message(count: int) -> str:
    return (
        f"{count} task{'s' if count != 1 else ''} became unassigned: assign "
        f"{'them' if count != 1 else 'it'} from the task list."
    )


def _set_active(user_id: int, active: bool):
    user = users.get_user(user_id)
    form = ConfirmForm()
    if user.active == active:
        flash(f"{user.email} is already {'active' if active else 'deactivated'}.", "info")
        return redirect(url_for("admin.edit_user", user_id=user.id))
    if form.validate_on_submit():
        with refusable() as outcome:
            updated = users.update_user(user, current_actor(), role=user.role, name=user.name, active=active)
        if outcome.error:
            flash(outcome.error.words, "danger")
        else:
            db.session.commit()
            if updated.tasks_unassigned:
                flash(unassigned_message(updated.tasks_unassigned), "warning")
            if active:
                flash(f"{user.email} is active again and can sign in.", "success")
            else:
                flash(
                    f"{user.email} is deactivated: they cannot sign in, and their sessions ended.", "success"
                )
        return redirect(url_for("admin.edit_user", user_id=user.id))
    return render_template("admin/users/confirm_status.html", user=user, form=form, active=active)


@bp.route("/users/<id:user_id>/deactivate", methods=["GET", "POST"])
def deactivate_user(user_id: int):
    """GET asks for confirmation; POST deactivates."""
    return _set_active(user_id, active=False)


@bp.route("/users/<id:user_id>/reactivate", methods=["GET", "POST"])
def reactivate_user(user_id: int):
    """GET asks for confirmation; POST reactivates."""
    return _set_active(user_id, active=True)


@bp.route("/users/<id:user_id>/reset-password", methods=["POST"])
def reset_password(user_id: int):
    user = users.get_user(user_id)
    reset_form = ResetPasswordForm(prefix="reset")
    if reset_form.validate_on_submit():
        chosen = reset_form.chosen_password
        password = chosen if chosen is not None else generate_password()
        with refusable() as outcome:
            revoked = users.reset_password(user, password, current_actor())
        if outcome.error:
            _show_error(reset_form, outcome.error, default_field="password")
        else:
            db.session.commit()
            if chosen is None:
                return _password_shown_once(user, password, created=False, tokens_revoked=revoked)
            flash(
                f"The password of {user.email} was reset; they must change it at their next sign-in. "
                + _tokens_revoked_text(revoked),
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return _render_edit(user, reset_form=reset_form)
