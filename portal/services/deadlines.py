"""Deadlines: a request's due date comes from its policy's timeframe; an admin or the assignee of one of
its open tasks may extend it, with a reason, under a legal preset or to a date of their own.

- GDPR Art. 12(3): by up to two further months in all, and only within the first month after the request
  was received (the subject must be told of the extension, and why, within that month).
- CCPA §7021 (Cal. Code Regs. tit. 11): once, by up to 45 more days.
- custom: any later date.

An extension the rule does not allow is refused with the reason. Each is kept (from, to, rule, reason,
whether and when the subject was told) and audited without its reason, which is free text about the
request and so encrypted and purged by retention.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from portal.extensions import db, run
from portal.models import DeadlineExtension, PrivacyRequest, Role, Task, lifecycle, utcnow
from portal.models.audit import Actor, record
from portal.services import Forbidden, InvalidState, ValidationFailed, text_problem
from portal.services.privacy_requests import get_request
from portal.services.tasks import acting_user, is_assignee

PRESETS = {
    "gdpr": "GDPR Art. 12(3): up to two further months",
    "ccpa": "CCPA §7021: once, up to 45 more days",
    "custom": "Another date",
}
CCPA_DAYS = 45
GDPR_MONTHS = 2
MAX_REASON_LENGTH = 2000


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it has no such day)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Extension:
    id: int
    preset: str
    previous_due_date: datetime
    new_due_date: datetime
    reason: Any
    subject_told_at: datetime | None
    created_by_label: str
    created_at: datetime


_EXTENSIONS = (
    select(
        DeadlineExtension.id,
        DeadlineExtension.preset,
        DeadlineExtension.previous_due_date,
        DeadlineExtension.new_due_date,
        DeadlineExtension.reason,
        DeadlineExtension.subject_told_at,
        DeadlineExtension.created_by_label,
        DeadlineExtension.created_at,
    )
    .where(DeadlineExtension.privacy_request_id == bindparam("request_id"))
    .order_by(DeadlineExtension.created_at, DeadlineExtension.id)
)  # built once: every request page reads it


def extensions_of(request_id: str) -> list[Extension]:
    return [Extension(*row) for row in run(_EXTENSIONS, {"request_id": request_id})]


def original_due_date(privacy_request: PrivacyRequest, extensions: list[Extension]) -> datetime:
    return extensions[0].previous_due_date if extensions else privacy_request.due_date


def limit_for(privacy_request: PrivacyRequest, preset: str, extensions: list[Extension]) -> datetime | None:
    """The latest due date ``preset`` allows (None: no limit)."""
    original = original_due_date(privacy_request, extensions)
    if preset == "gdpr":
        return add_months(original, GDPR_MONTHS)
    if preset == "ccpa":
        return original + timedelta(days=CCPA_DAYS)
    return None


def refusal(
    privacy_request: PrivacyRequest, preset: str, extensions: list[Extension], now: datetime
) -> str | None:
    """Why ``preset`` cannot extend this request now (None: it can)."""
    if privacy_request.status in lifecycle.CLOSED:
        return f"The request is {privacy_request.status}: its deadline no longer runs."
    if preset == "gdpr":
        first_month_end = add_months(privacy_request.created_at, 1)
        if now > first_month_end:
            return (
                "GDPR Art. 12(3) allows an extension only within one month of receiving the request "
                f"(until {first_month_end:%Y-%m-%d}), when the subject must also be told."
            )
        limit = limit_for(privacy_request, preset, extensions)
        if privacy_request.due_date >= limit:
            return "The deadline is already extended by the two further months GDPR Art. 12(3) allows."
    if preset == "ccpa" and any(extension.preset == "ccpa" for extension in extensions):
        return "CCPA §7021 allows one extension only, and this request already had it."
    return None


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def extend(
    request_id: str,
    actor: Actor,
    *,
    preset: str,
    reason: Any,
    new_due: date | None = None,
    subject_told: bool = False,
    now: datetime | None = None,
) -> Extension:
    """Extend the request's deadline (admins, and the assignee of one of its open tasks).

    ``new_due``: the new due date (a day, UTC); a preset without one extends as far as it allows.
    """
    user = acting_user(actor)
    now = now or utcnow()
    privacy_request = get_request(request_id)
    if user.role != Role.ADMIN and not is_assignee(request_id, user.id):
        raise Forbidden(
            "Only an admin or the assignee of one of the request's tasks can extend its deadline."
        )
    if preset not in PRESETS:
        raise ValidationFailed(f"preset must be one of {', '.join(PRESETS)}", [(("preset",), "unknown")])
    if not isinstance(reason, str) or text_problem(reason) or not reason.strip():
        raise ValidationFailed("Give the reason for the extension.", [(("reason",), "required")])
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        message = f"The reason must be at most {MAX_REASON_LENGTH} characters."
        raise ValidationFailed(message, [(("reason",), message)])
    extensions = extensions_of(request_id)
    refused = refusal(privacy_request, preset, extensions, now)
    if refused:
        raise InvalidState(refused)
    limit = limit_for(privacy_request, preset, extensions)
    if new_due is None:
        if limit is None:
            raise ValidationFailed("Choose the new due date.", [(("new_due_date",), "required")])
        target = limit
    else:
        target = _end_of_day(new_due)
        if limit is not None and target.date() > limit.date():
            raise InvalidState(
                f"{PRESETS[preset].split(':')[0]} allows a due date up to {limit:%Y-%m-%d}, not {new_due:%Y-%m-%d}."
            )
        if limit is not None and target > limit:
            target = limit
    if target <= privacy_request.due_date:
        raise InvalidState(
            f"The new due date must be later than the current one ({privacy_request.due_date:%Y-%m-%d})."
        )
    previous = privacy_request.due_date
    extension = DeadlineExtension(
        privacy_request_id=request_id,
        preset=preset,
        previous_due_date=previous,
        new_due_date=target,
        reason=reason,
        subject_told_at=now if subject_told else None,
        created_by_id=user.id,
        created_by_label=user.display_name,
        created_at=now,
    )
    db.session.add(extension)
    run(
        update(PrivacyRequest.__table__)
        .where(PrivacyRequest.__table__.c.id == request_id)
        .values(due_date=target)
    )
    run(
        update(Task.__table__)
        .where(Task.__table__.c.privacy_request_id == request_id)
        .values(due_date=target)
    )
    db.session.flush()
    db.session.expire(privacy_request, ["due_date"])
    record(
        actor,
        "request.deadline_extended",
        privacy_request_id=request_id,
        preset=preset,
        previous_due_date=previous.date().isoformat(),
        new_due_date=target.date().isoformat(),
        subject_told=subject_told,
    )
    return Extension(
        extension.id, preset, previous, target, reason, extension.subject_told_at, user.display_name, now
    )


def mark_subject_told(request_id: str, extension_id: int, actor: Actor, now: datetime | None = None) -> None:
    """Record that the subject was told of an extension (admins and the request's assignees)."""
    user = acting_user(actor)
    get_request(request_id)
    if user.role != Role.ADMIN and not is_assignee(request_id, user.id):
        raise Forbidden("Only an admin or the assignee of one of the request's tasks can record this.")
    extension = db.session.get(DeadlineExtension, extension_id) if isinstance(extension_id, int) else None
    if extension is None or extension.privacy_request_id != request_id:
        raise InvalidState(f"No extension {extension_id} on privacy request '{request_id}'.")
    if extension.subject_told_at is None:
        extension.subject_told_at = now or utcnow()
        db.session.flush()
        record(actor, "request.subject_told", privacy_request_id=request_id, extension_id=extension_id)
