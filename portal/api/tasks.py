"""/api/v1 additions of this portal (not in fidesops): tasks and their assignment, notes on a request,
deadline extensions and canceling with a reason. The same service calls as the HTML views."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from flask import g, jsonify, request
from pydantic import Field
from sqlalchemy import select

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import ApiModel, iso, json_body, page_json, page_params, privacy_request_json
from portal.crypto import require_decrypted
from portal.execution import dispatch
from portal.extensions import db
from portal.models import ConnectionConfig
from portal.routing import MAX_DATABASE_ID, bounded_int
from portal.services import (
    NotFound,
    ValidationFailed,
    deadlines,
    nested_policies,
    notes,
    privacy_requests,
    request_lists,
    tasks,
)


class AssignIn(ApiModel):
    user_id: Annotated[int, Field(ge=1, le=MAX_DATABASE_ID)]


class BulkAssignIn(AssignIn):
    task_ids: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_DATABASE_ID)]], Field(min_length=1, max_length=tasks.MAX_BULK)
    ]


class NoteIn(ApiModel):
    body: Annotated[
        str, Field(max_length=notes.MAX_NOTE_LENGTH * 2)
    ]  # the service says why a note is refused


class ExtendIn(ApiModel):
    preset: Literal["gdpr", "ccpa", "custom"]
    reason: Annotated[str, Field(max_length=deadlines.MAX_REASON_LENGTH * 2)]
    new_due_date: date | None = None
    subject_told: bool = False


class CancelIn(ApiModel):
    reason: Annotated[str | None, Field(max_length=2000)] = None


def task_json(row: Any, state: str = "open") -> dict[str, Any]:
    return {
        "id": row.id,
        "privacy_request_id": row.privacy_request_id,
        "connection_key": row.connection_key,
        "connection_name": row.connection_name,
        "assignee_id": row.assignee_id,
        "assignee": row.assignee_label,
        "state": getattr(row, "state", state),
    }


def _path_id(text: str, what: str) -> int:
    """A database id from the path (paths are plain, as fidesops' are); an invalid one is not found."""
    value = bounded_int(text, 1, MAX_DATABASE_ID)
    if value is None:
        raise NotFound(f"No {what} with id {text}.")
    return value


def _query_id(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value = bounded_int(raw, 1, MAX_DATABASE_ID)
    if value is None:
        raise ValidationFailed(f"{name} must be a positive integer", [(("query", name), "not an id")])
    return value


@bp.get("/task")
@requires_scope(scopes.TASK_READ)
def list_tasks():
    """Open tasks, soonest deadline first: ``view`` mine (default) | unassigned | all, ``due`` soon | overdue,
    ``connection_key``, ``assignee_id`` (with view=all)."""
    page, size = page_params()
    user = tasks.acting_user(g.api_actor)
    connection_id = None
    key = request.args.get("connection_key")
    if key is not None:
        connection_id = db.session.scalar(select(ConnectionConfig.id).where(ConnectionConfig.key == key))
        if connection_id is None:
            raise NotFound(f"No connection config with key '{key}'")
    result = tasks.list_tasks(
        view=request.args.get("view", "mine"),
        user_id=user.id,
        due=request.args.get("due") or None,
        connection_id=connection_id,
        assignee_id=_query_id("assignee_id"),
        page=page,
        size=size,
    )
    items = [
        {
            **task_json(row),
            "due_date": iso(row.due_date),
            "request_status": row.status,
            "systems_done": result.done.get(row.privacy_request_id, 0),
            "systems": result.systems,
        }
        for row in result.items
    ]
    return jsonify(page_json(items, result.total, page, size))


@bp.post("/task/<task_id>/claim")
@requires_scope(scopes.TASK_UPDATE)
def claim_task(task_id: str):
    """Take an unassigned task; 400 naming who has it when someone else claimed it first."""
    ref = tasks.claim(_path_id(task_id, "task"), g.api_actor)
    db.session.commit()
    return jsonify(task_json(ref))


@bp.post("/task/<task_id>/release")
@requires_scope(scopes.TASK_UPDATE)
def release_task(task_id: str):
    ref = tasks.release(_path_id(task_id, "task"), g.api_actor)
    db.session.commit()
    return jsonify(task_json(ref))


@bp.post("/task/<task_id>/assign")
@requires_scope(scopes.TASK_UPDATE)
def assign_task(task_id: str):
    body = AssignIn.model_validate(json_body())
    ref = tasks.assign(_path_id(task_id, "task"), body.user_id, g.api_actor)
    db.session.commit()
    return jsonify(task_json(ref))


@bp.post("/task/assign")
@requires_scope(scopes.TASK_ASSIGN)
def bulk_assign_tasks():
    body = BulkAssignIn.model_validate(json_body())
    changed, problems = tasks.bulk_assign(body.task_ids, body.user_id, g.api_actor)
    db.session.commit()
    return jsonify(assigned=changed, failed=problems)


def note_json(note: notes.Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "privacy_request_id": note.privacy_request_id,
        "author": note.author_label,
        "body": require_decrypted(note.body),
        "created_at": iso(note.created_at),
    }


@bp.get("/privacy-request/<request_id>/note")
@requires_scope(scopes.NOTE_READ)
def list_notes(request_id: str):
    privacy_requests.get_request(request_id)
    return jsonify([note_json(note) for note in notes.list_notes(request_id)])


@bp.post("/privacy-request/<request_id>/note")
@requires_scope(scopes.NOTE_CREATE)
def add_note(request_id: str):
    body = NoteIn.model_validate(json_body())
    note = notes.add_note(request_id, body.body, g.api_actor)
    db.session.commit()
    return jsonify(note_json(note)), 201


@bp.delete("/privacy-request/<request_id>/note/<note_id>")
@requires_scope(scopes.NOTE_DELETE)
def delete_note(request_id: str, note_id: str):
    notes.delete_note(request_id, _path_id(note_id, "note"), g.api_actor)
    db.session.commit()
    return "", 204


@bp.post("/privacy-request/<request_id>/extend")
@requires_scope(scopes.PRIVACY_REQUEST_EXTEND)
def extend_deadline(request_id: str):
    """Extend the due date under a preset (gdpr, ccpa) or to a custom date; refused (400) with the rule's
    reason when it does not allow it."""
    body = ExtendIn.model_validate(json_body())
    extension = deadlines.extend(
        request_id,
        g.api_actor,
        preset=body.preset,
        reason=body.reason,
        new_due=body.new_due_date,
        subject_told=body.subject_told,
    )
    db.session.commit()
    return jsonify(
        {
            "id": extension.id,
            "preset": extension.preset,
            "previous_due_date": iso(extension.previous_due_date),
            "new_due_date": iso(extension.new_due_date),
            "subject_told_at": iso(extension.subject_told_at),
        }
    )


@bp.post("/privacy-request/<request_id>/cancel")
@requires_scope(scopes.PRIVACY_REQUEST_CANCEL)
def cancel_privacy_request(request_id: str):
    body = CancelIn.model_validate(json_body() if request.get_data() else {})
    privacy_requests.cancel_request(request_id, g.api_actor, body.reason)
    dispatch.commit_and_run()
    summary = request_lists.summaries([request_id])[0]
    policy = nested_policies.with_rules({summary.policy_key})[summary.policy_key]
    return jsonify(privacy_request_json(summary, policy=policy))
