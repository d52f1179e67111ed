"""Notification settings (every signed-in user) and the one-click unsubscribe link (no sign-in).

The unsubscribe link carries a token signed with the secret key naming the user and the kinds of mail;
opening it shows a confirmation page (a mail scanner following links changes nothing), and the POST it
makes, with a CSRF token, turns those kinds off.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.extensions import db
from portal.models import User
from portal.models.audit import Actor
from portal.notifications import mail, preferences
from portal.notifications.forms import MODE_LABELS, UnsubscribeForm, settings_form
from portal.notifications.kinds import KINDS, offered_to
from portal.security import guard_blueprint
from portal.services import DomainError

bp = Blueprint("notifications", __name__, url_prefix="/notifications")
guard_blueprint(bp)  # any signed-in role
public_bp = Blueprint("unsubscribe", __name__, url_prefix="/notifications/unsubscribe")

INVALID_LINK = (
    "This unsubscribe link is not valid (it may have been cut short). Sign in and open Notification "
    "settings to choose which emails you get."
)


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    kinds = offered_to(current_user.role)
    current = preferences.modes_for(current_user)
    form = settings_form(kinds)(data={name: mode.value for name, mode in current.items()})
    if form.validate_on_submit():
        choices = {kind.name: form[kind.name].data for kind in kinds}
        try:
            changed = preferences.set_modes(current_user, choices, Actor.for_user(current_user))
        except DomainError as exc:
            db.session.rollback()
            field = (
                form[preferences.REQUEST_ERROR.name] if preferences.REQUEST_ERROR.name in choices else None
            )
            if isinstance(exc, preferences.LastErrorRecipient) and field is not None:
                field.errors = [*field.errors, exc.words]
            else:
                flash(exc.words, "danger")
            return render_template("notifications/settings.html", form=form, kinds=kinds), 400
        db.session.commit()
        flash("Notification settings saved." if changed else "Nothing changed.", "success")
        return redirect(url_for(".settings"))
    return render_template("notifications/settings.html", form=form, kinds=kinds)


@public_bp.route("/<token>", methods=["GET", "POST"])
def confirm(token: str):
    found = mail.read_unsubscribe_token(token)
    user = db.session.get(User, found[0]) if found else None
    if user is None:
        abort(404, INVALID_LINK)
    kinds = found[1]
    form = UnsubscribeForm()
    if form.validate_on_submit():
        actor = Actor("user", user.email, user_id=user.id)
        done, kept = preferences.turn_off(user, kinds, actor)
        db.session.commit()
        return render_template(
            "notifications/unsubscribed.html",
            done=[KINDS[k].label for k in done],
            kept=[KINDS[k].label for k in kept],
            last_admin=preferences.LAST_ERROR_RECIPIENT,
        )
    return render_template(
        "notifications/unsubscribe.html", form=form, labels=[KINDS[k].label for k in kinds], modes=MODE_LABELS
    )
