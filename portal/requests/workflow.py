"""The team workflow on the request page: its tasks (claim, hand over, give back), notes in its timeline,
the deadline and its extensions, and canceling with a reason. Thin doors into ``services.tasks``,
``services.notes``, ``services.deadlines`` and ``services.privacy_requests``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import flash, redirect, url_for
from flask_login import current_user

from portal.extensions import db
from portal.models import PrivacyRequest, Role, lifecycle, utcnow
from portal.requests import bp
from portal.requests.forms import CancelForm, ExtendForm, NoteForm
from portal.requests.views import confirmed
from portal.security import roles_required
from portal.services import deadlines, notes, privacy_requests, tasks
from portal.web import current_actor, refusable

WORKERS = (Role.ADMIN, Role.STAFF)
EXTEND_PRESETS = tuple((choice.value, choice.label) for choice in ExtendForm.preset.kwargs["choices"])


@dataclass(frozen=True)
class NoteEntry:
    """A note as a timeline entry (the attribute names of an audit event's row, plus the note)."""

    id: int
    created_at: datetime
    actor_label: str
    body: Any
    deletable: bool
    action: str = "note"
    connection_key: None = None
    details: dict | None = None

    @property
    def note(self) -> bool:
        return True


def timeline(request_id: str, events: list, limit: int) -> list:
    """The audit events with the request's notes among them, newest first, at most ``limit``."""
    is_admin = current_user.role == Role.ADMIN
    entries = [
        NoteEntry(n.id, n.created_at, n.author_label, n.body, is_admin or n.author_id == current_user.id)
        for n in notes.list_notes(request_id, limit=limit)
    ]
    merged = sorted([*events, *entries], key=lambda entry: entry.created_at, reverse=True)
    return merged[:limit]


def detail_context(privacy_request: PrivacyRequest) -> dict[str, Any]:
    """What the request page shows of the workflow, and the forms the current user may use."""
    worker = current_user.role in WORKERS
    is_admin = current_user.role == Role.ADMIN
    request_tasks = tasks.request_tasks(privacy_request.id)
    extensions = deadlines.extensions_of(privacy_request.id)
    is_open = privacy_request.status not in lifecycle.CLOSED
    may_extend = (
        is_open
        and worker
        and (is_admin or any(t.assignee_id == current_user.id and t.status == "open" for t in request_tasks))
    )
    # Whom a task can go to, as (id, name): the tasks' buttons and the hand-over form show only to workers
    # of a request with an open task.
    hand_to = None
    if worker and any(t.status == "open" for t in request_tasks):
        hand_to = tasks.assignable_choices()
    # The open tasks one may hand over, as (task id, system name): an admin any, staff their own.
    handable = [
        (t.id, t.connection_name)
        for t in request_tasks
        if t.status == "open" and (is_admin or t.assignee_id == current_user.id)
    ]
    cancelable = worker and privacy_request.status in lifecycle.TRANSITIONS["cancel"].sources
    return {
        "request_tasks": request_tasks,
        "extensions": extensions,
        "original_due": deadlines.original_due_date(privacy_request, extensions),
        "hand_to": hand_to,
        "handable": handable,
        "may_extend": may_extend,
        "extend_presets": EXTEND_PRESETS,
        # The extend, note and cancel forms are written out in the templates (building them cost more than
        # the rest); the forms validate the POSTs.
        "may_cancel": cancelable,
        "may_note": worker and privacy_request.purged_at is None,
        "may_record_told": worker and (is_admin or may_extend),
    }


def _back(request_id: str, anchor: str = ""):
    return redirect(url_for(".detail", request_id=request_id) + anchor)


def _flash_errors(form) -> None:
    for field in form:
        for message in field.errors:
            flash(f"{field.label.text}: {message}", "error")


@bp.route("/<request_id>/notes", methods=["POST"])
@roles_required(*WORKERS)
def add_note(request_id: str):
    privacy_requests.get_request(request_id)  # 404 first
    form = NoteForm(prefix="note")
    if not form.validate_on_submit():
        _flash_errors(form)
        return _back(request_id, "#notes-heading")
    with refusable() as outcome:
        notes.add_note(request_id, form.body.data, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash("Note added.", "success")
    return _back(request_id, "#timeline-heading")


@bp.route("/<request_id>/notes/<id:note_id>/delete", methods=["POST"])
@roles_required(*WORKERS)
def delete_note(request_id: str, note_id: int):
    privacy_requests.get_request(request_id)
    confirmed()
    with refusable() as outcome:
        notes.delete_note(request_id, note_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash("Note deleted; the deletion is in the audit trail.", "success")
    return _back(request_id, "#timeline-heading")


@bp.route("/<request_id>/cancel", methods=["POST"])
@roles_required(*WORKERS)
def cancel(request_id: str):
    privacy_requests.get_request(request_id)
    form = CancelForm(prefix="cancel")
    if not form.validate_on_submit():
        _flash_errors(form)
        return _back(request_id)
    with refusable() as outcome:
        privacy_requests.cancel_request(request_id, current_actor(), form.reason.data)
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash(
            "Canceled: its tasks are closed; what was entered stays until the retention period ends.",
            "success",
        )
    return _back(request_id)


@bp.route("/<request_id>/extend", methods=["POST"])
@roles_required(*WORKERS)
def extend(request_id: str):
    privacy_requests.get_request(request_id)
    form = ExtendForm(prefix="extend")
    if not form.validate_on_submit():
        _flash_errors(form)
        return _back(request_id, "#deadline-heading")
    with refusable() as outcome:
        extension = deadlines.extend(
            request_id,
            current_actor(),
            preset=form.preset.data,
            reason=form.reason.data,
            new_due=form.new_due_date.data,
            subject_told=form.subject_told.data,
        )
    if outcome.error:
        flash(f"Not extended: {outcome.error.words}", "error")
    else:
        db.session.commit()
        flash(f"Deadline extended to {extension.new_due_date:%Y-%m-%d}.", "success")
    return _back(request_id, "#deadline-heading")


@bp.route("/<request_id>/extensions/<id:extension_id>/told", methods=["POST"])
@roles_required(*WORKERS)
def subject_told(request_id: str, extension_id: int):
    privacy_requests.get_request(request_id)
    confirmed()
    with refusable() as outcome:
        deadlines.mark_subject_told(request_id, extension_id, current_actor(), now=utcnow())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash("Recorded that the data subject was told.", "success")
    return _back(request_id, "#deadline-heading")
