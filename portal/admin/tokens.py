"""Admin: API tokens — create (the secret is shown once), list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import abort, current_app, flash, make_response, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from portal.admin import bp
from portal.admin.token_forms import NewTokenForm
from portal.extensions import db
from portal.models import ApiToken, User
from portal.routing import page_number
from portal.scopes import effective_scopes
from portal.services import tokens
from portal.web import current_actor, refusable


def _user_choices() -> list[SelectChoice]:
    rows = db.session.execute(
        select(User.id, User.email, User.role).where(User.active).order_by(User.email)
    ).all()
    return [SelectChoice(uid, f"{email} ({role})") for uid, email, role in rows]


@bp.route("/tokens", methods=["GET", "POST"], endpoint="tokens")
def tokens_index():
    form = NewTokenForm()
    form.user_id.choices = _user_choices()
    if form.validate_on_submit():
        user = db.session.get(User, form.user_id.data)
        expires = (
            datetime.combine(form.expires_on.data, time.min, tzinfo=UTC) if form.expires_on.data else None
        )
        with refusable() as outcome:
            token, secret = tokens.create_token(
                user, form.name.data, current_actor(), scopes=form.scopes.data or None, expires_at=expires
            )
        if outcome.error:
            form.name.errors = [*form.name.errors, outcome.error.words]
        else:
            db.session.commit()
            response = make_response(render_template("admin/tokens/created.html", token=token, secret=secret))
            response.headers["Cache-Control"] = "no-store"
            return response
    elif not form.is_submitted():
        form.user_id.data = current_user.id
    pagination = db.paginate(
        select(ApiToken)
        .options(selectinload(ApiToken.user))
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc()),
        page=page_number(),
        per_page=current_app.config["PAGE_SIZE"],
        error_out=False,
    )
    return render_template(
        "admin/tokens/index.html", form=form, pagination=pagination, effective_scopes=effective_scopes
    )


@bp.post("/tokens/<id:token_id>/revoke")
def revoke_token(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    tokens.revoke_token(token, current_actor())
    db.session.commit()
    flash(f"Token “{token.name}” revoked: it stops working at once.", "success")
    return redirect(url_for("admin.tokens"))
