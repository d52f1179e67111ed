"""Admin: access policies (name, key, timeframe). Thin doors into ``services.policies``."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from portal.admin import bp
from portal.admin.policy_forms import NewPolicyForm, PolicyForm
from portal.extensions import db
from portal.models import Policy
from portal.services import NotFound, ValidationFailed, policies
from portal.web import current_actor, refusable


def _show(form, exc) -> None:
    location = exc.errors[0][0] if isinstance(exc, ValidationFailed) and exc.errors else ()
    field = {("name",): form.name, ("days_to_respond",): form.days_to_respond}.get(tuple(location))
    if field is None and hasattr(form, "key"):
        field = form.key
    field = field or form.name
    field.errors = [*field.errors, exc.words]


@bp.route("/policies")
def policies_index():
    return render_template("admin/policies/index.html", policies=policies.list_policies())


@bp.route("/policies/new", methods=["GET", "POST"])
def new_policy():
    form = NewPolicyForm()
    if form.validate_on_submit():
        days = form.days()
        if days is None:
            form.days_to_respond.errors = ["Choose a preset or type the timeframe."]
        else:
            with refusable() as outcome:
                policy = policies.create_policy(
                    name=form.name.data, key=form.key.data, days_to_respond=days, actor=current_actor()
                )
            if outcome.error:
                _show(form, outcome.error)
            else:
                db.session.commit()
                flash(f"Policy “{policy.name}” created: {policy.days_to_respond} days.", "success")
                return redirect(url_for(".policies_index"))
    return render_template("admin/policies/form.html", form=form, policy=None)


@bp.route("/policies/<id:policy_id>", methods=["GET", "POST"])
def edit_policy(policy_id: int):
    policy = db.session.get(Policy, policy_id)
    if policy is None:
        raise NotFound(f"No policy with id {policy_id}.")
    form = PolicyForm(obj=policy)
    if form.validate_on_submit():
        days = form.days()
        if days is None:
            form.days_to_respond.errors = ["Choose a preset or type the timeframe."]
        else:
            with refusable() as outcome:
                policies.update_policy(
                    policy, name=form.name.data, days_to_respond=days, actor=current_actor()
                )
            if outcome.error:
                _show(form, outcome.error)
            else:
                db.session.commit()
                flash(
                    f"Policy “{policy.name}” saved: {policy.days_to_respond} days for new requests.",
                    "success",
                )
                return redirect(url_for(".policies_index"))
    return render_template("admin/policies/form.html", form=form, policy=policy)
