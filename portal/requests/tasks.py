"""Tasks in the browser: "My tasks" (and the unassigned and all tabs), claiming, handing over, giving
back, and admins' bulk assignment. Thin doors into ``services.tasks``."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import routing
from portal.extensions import db
from portal.models import Role, utcnow
from portal.requests.forms import AssignForm, BulkAssignForm, ConfirmForm
from portal.requests.views import due_badge
from portal.security import guard_blueprint, roles_required, safe_next_url
from portal.services import tasks
from portal.web import current_actor, refusable

bp = Blueprint("tasks", __name__, url_prefix="/tasks")
guard_blueprint(bp, Role.ADMIN, Role.STAFF)  # reviewers do not work on tasks

VIEW_LABELS = {"mine": "My tasks", "unassigned": "Unassigned", "all": "All open tasks"}
DUE_LABELS = {"soon": "Due soon", "overdue": "Overdue"}


def user_choices(blank: str | None = None) -> list[SelectChoice]:
    choices = [SelectChoice(user_id, name) for user_id, name in tasks.assignable_choices()]
    return [SelectChoice(0, blank), *choices] if blank else choices


def _id_arg(name: str) -> int | None:
    return routing.bounded_int(request.args.get(name), 1, routing.MAX_DATABASE_ID)


@bp.route("/")
def index():
    view = request.args.get("view", "mine")
    view = view if view in VIEW_LABELS else "mine"
    due = request.args.get("due") if request.args.get("due") in DUE_LABELS else None
    system = _id_arg("system")
    assignee = _id_arg("assignee") if view == "all" else None
    filters = {
        key: value
        for key, value in (("view", view), ("due", due), ("system", system), ("assignee", assignee))
        if value
    }
    page_number = routing.page_number()
    page = tasks.list_tasks(
        view=view,
        user_id=current_user.id,
        due=due,
        connection_id=system,
        assignee_id=assignee,
        page=page_number,
        size=current_app.config["PAGE_SIZE"],
    )
    if page_number > page.pages:
        return redirect(url_for(".index", **filters, page=page.pages))
    is_admin = current_user.role == Role.ADMIN
    bulk_form = None
    if is_admin and page.items:
        bulk_form = BulkAssignForm(formdata=None)
        bulk_form.user_id.choices = user_choices()
    return render_template(
        "tasks/index.html",
        page=page,
        view=view,
        due=due,
        system=system,
        assignee=assignee,
        filters=filters,
        views=VIEW_LABELS,
        due_labels=DUE_LABELS,
        systems=tasks.manual_systems(),
        people=tasks.assignable_choices() if view == "all" else [],
        due_soon_days=tasks.due_soon_days(),
        is_admin=is_admin,
        bulk_form=bulk_form,
        now=utcnow(),
        due_badge=due_badge,
        full_path=request.full_path,
    )


def _back():
    return redirect(safe_next_url(request.form.get("next"), "tasks.index"))


def _confirmed() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was sent from another site. Go back, reload the page and try again.")


def _change(action, success: str):
    with refusable() as outcome:
        task = action()
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash(
            success.format(system=task.connection_name, assignee=task.assignee_label or "nobody"), "success"
        )
    return _back()


@bp.route("/<id:task_id>/claim", methods=["POST"])
def claim(task_id: int):
    _confirmed()
    return _change(lambda: tasks.claim(task_id, current_actor()), "You have the task for {system}.")


@bp.route("/<id:task_id>/release", methods=["POST"])
def release(task_id: int):
    _confirmed()
    return _change(
        lambda: tasks.release(task_id, current_actor()), "The task for {system} is unassigned now."
    )


@bp.route("/<id:task_id>/assign", methods=["POST"])
def assign(task_id: int):
    form = AssignForm()
    form.user_id.choices = user_choices()
    if not form.validate_on_submit():
        flash("Choose whom to hand the task to.", "error")
        return _back()
    return _change(
        lambda: tasks.assign(task_id, form.user_id.data, current_actor()),
        "The task for {system} went to {assignee}.",
    )


@bp.route("/hand-over", methods=["POST"])
def hand_over():
    """The request page's one hand-over form: the task is a field, not part of the address."""
    task_id = routing.bounded_int(request.form.get("task"), 1, routing.MAX_DATABASE_ID)
    if task_id is None:
        flash("Choose the task to hand over.", "error")
        return _back()
    return assign(task_id)


@bp.route("/assign", methods=["POST"])
@roles_required(Role.ADMIN)
def bulk_assign():
    form = BulkAssignForm()
    form.user_id.choices = user_choices()
    task_ids = [
        routing.bounded_int(value, 1, routing.MAX_DATABASE_ID) for value in request.form.getlist("task")
    ]
    if not form.validate_on_submit():
        flash("Choose whom to assign the selected tasks to.", "error")
        return _back()
    with refusable() as outcome:
        changed, problems = tasks.bulk_assign([i for i in task_ids if i], form.user_id.data, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
        return _back()
    db.session.commit()
    flash(f"{changed} task{'s' if changed != 1 else ''} assigned.", "success")
    for problem in problems[:10]:
        flash(problem, "warning")
    return _back()
