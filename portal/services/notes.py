"""Internal notes on a request: plain text written by staff and admins, shown in its timeline.

A note may hold personal data: its text is encrypted at rest, deleted with the request's other personal
data by retention, re-encrypted by key rotation (every ``EncryptedText`` column is), and never logged nor
put in the audit trail (the trail names the note by id only). Only its author or an admin deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select

from portal.extensions import db, run
from portal.models import RequestNote, Role, utcnow
from portal.models.audit import Actor, record
from portal.services import Forbidden, NotFound, ValidationFailed, text_problem
from portal.services.privacy_requests import get_request
from portal.services.tasks import acting_user

MAX_NOTE_LENGTH = 5000


@dataclass(frozen=True)
class Note:
    id: int
    privacy_request_id: str
    author_id: int | None
    author_label: str
    body: Any  # str, or an UndecryptableValue
    created_at: datetime


def _clean(body: Any) -> str:
    if not isinstance(body, str) or text_problem(body):
        raise ValidationFailed("A note must be plain text.", [(("body",), "not text")])
    body = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not body:
        raise ValidationFailed("The note is empty.", [(("body",), "empty")])
    if len(body) > MAX_NOTE_LENGTH:
        message = f"A note must be at most {MAX_NOTE_LENGTH:,} characters (this one has {len(body):,})."
        raise ValidationFailed(message, [(("body",), message)])
    return body


def add_note(request_id: str, body: Any, actor: Actor) -> Note:
    """Add a note to the request (staff and admins); audited without its text."""
    user = acting_user(actor)
    privacy_request = get_request(request_id)
    if privacy_request.purged_at is not None:
        raise ValidationFailed(
            "This request's personal data was purged: no notes can be added.", [((), "purged")]
        )
    note = RequestNote(
        privacy_request_id=request_id,
        author_id=user.id,
        author_label=user.display_name,
        body=_clean(body),
        created_at=utcnow(),
    )
    db.session.add(note)
    db.session.flush()
    record(actor, "note.added", privacy_request_id=request_id, note_id=note.id, length=len(note.body))
    return _as_note(note)


def _as_note(note: RequestNote) -> Note:
    return Note(
        note.id, note.privacy_request_id, note.author_id, note.author_label, note.body, note.created_at
    )


_NOTES = (
    select(
        RequestNote.id,
        RequestNote.privacy_request_id,
        RequestNote.author_id,
        RequestNote.author_label,
        RequestNote.body,
        RequestNote.created_at,
    )
    .where(RequestNote.privacy_request_id == bindparam("request_id"))
    .order_by(RequestNote.created_at.desc(), RequestNote.id.desc())
    .limit(bindparam("limit"))
)


def list_notes(request_id: str, limit: int = 1000) -> list[Note]:
    """The request's notes, newest first (one query)."""
    return [Note(*row) for row in run(_NOTES, {"request_id": request_id, "limit": limit})]


def delete_note(request_id: str, note_id: int, actor: Actor) -> None:
    """Delete a note: its author or an admin; the deletion is audited (without the text)."""
    user = acting_user(actor)
    note = db.session.get(RequestNote, note_id) if isinstance(note_id, int) else None
    if note is None or note.privacy_request_id != request_id:
        raise NotFound(f"No note {note_id} on privacy request '{request_id}'.")
    if user.role != Role.ADMIN and note.author_id != user.id:
        raise Forbidden("Only the note's author or an admin can delete it.")
    author, own = note.author_label, note.author_id == user.id
    db.session.expunge(note)
    run(delete(RequestNote.__table__).where(RequestNote.__table__.c.id == note_id))
    record(actor, "note.deleted", privacy_request_id=request_id, note_id=note_id, author=author, own=own)
