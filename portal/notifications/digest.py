"""The daily digest: one mail per person listing what their digest kinds have to say today.

``build_if_due(now)`` runs from every sender run (Celery beat, ``flask send-notifications``); from
``DIGEST_HOUR`` (UTC) on it builds the day's digests once. Its cost does not grow with the number of
users: one query per kind finds who reads that kind in the digest, each *section provider* runs its own
few indexed queries once for everyone, and the rows go in with one INSERT (batched by the driver). Two
runs at once both build, and the log's unique key (user, "digest", "daily", date) keeps one of each row.

Providers are pluggable: ``PROVIDERS[kind](now, user_ids)`` returns a ``Section`` shared by those users,
a dict of user id → ``Section`` for content that differs per person (tasks by assignee), or None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, exists, func, select

from portal.execution import gate
from portal.extensions import db
from portal.models import DeliveryMode, ManualInput, Notification, PrivacyRequest, RequestStatus
from portal.notifications import outbox
from portal.notifications.kinds import DIGEST, DUE_SOON, KINDS, PACKAGE_READY, REQUEST_ERROR
from portal.notifications.preferences import receivers

S = RequestStatus
PR = PrivacyRequest
ITEM_LIMIT = 25  # rows listed per section; the rest is counted and linked


@dataclass(frozen=True)
class Item:
    request_id: str
    due_date: str | None = None  # ISO date
    note: str = ""  # "overdue", "completed 2026-12-07"
    systems: tuple[str, ...] = ()  # the manual systems still waiting for input


@dataclass(frozen=True)
class Section:
    kind: str
    title: str
    summary: str  # "3 requests due this week": the digest's subject is made of these
    total: int
    items: tuple[Item, ...] = ()
    link: tuple[str, dict[str, Any]] = ("dashboard.index", {})  # endpoint and values of "see all"
    item_endpoint: str = "requests.detail"  # each item links there with its request_id
    more: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "more", max(self.total - len(self.items), 0))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["link"] = {"endpoint": self.link[0], "values": self.link[1]}
        return data


Provider = Callable[[datetime, list[int]], "Section | dict[int, Section] | None"]
PROVIDERS: dict[str, Provider] = {}


def provider(kind: str) -> Callable[[Provider], Provider]:
    """Register the section builder of ``kind`` (one per kind; a later one replaces it)."""

    def register(function: Provider) -> Provider:
        PROVIDERS[kind] = function
        return function

    return register


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def start_of_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


@provider(DUE_SOON.name)
def due_soon(now: datetime, user_ids: list[int]) -> Section | None:
    """Requests waiting for input that are overdue or due within ``DUE_SOON_DAYS`` calendar days (UTC),
    with the systems each still waits on. Four queries, all on indexes."""
    days = current_app.config["DUE_SOON_DAYS"]
    today = start_of_day(now)
    waiting = (PR.status == S.REQUIRES_INPUT.value, PR.due_date < today + timedelta(days=days + 1))
    counts = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((PR.due_date < today, 1), else_=0)), 0)).where(
            *waiting
        )
    ).one()
    total, overdue = int(counts[0]), int(counts[1])
    if not total:
        return None
    rows = db.session.execute(
        select(PR.id, PR.due_date).where(*waiting).order_by(PR.due_date, PR.id).limit(ITEM_LIMIT)
    ).all()
    webhooks = gate.gated_webhooks()
    current = {(w.connection.id, w.webhook.version) for w in webhooks}
    done: dict[str, set[int]] = {}
    for request_id, connection_id, version in db.session.execute(
        select(ManualInput.privacy_request_id, ManualInput.connection_config_id, ManualInput.version).where(
            ManualInput.privacy_request_id.in_([row.id for row in rows])
        )
    ):
        if (connection_id, version) in current:
            done.setdefault(request_id, set()).add(connection_id)
    items = tuple(
        Item(
            row.id,
            row.due_date.date().isoformat(),
            "overdue" if row.due_date < today else "",
            tuple(w.connection.name for w in webhooks if w.connection.id not in done.get(row.id, set())),
        )
        for row in rows
    )
    soon = total - overdue
    when = "this week" if days == 7 else f"in the next {_plural(days, 'day')}"
    parts = ([f"{_plural(overdue, 'request')} overdue"] if overdue else []) + (
        [f"{_plural(soon, 'request')} due {when}"] if soon else []
    )
    return Section(
        DUE_SOON.name,
        "Waiting for input: overdue or due soon",
        ", ".join(parts),
        total,
        items,
        ("requests.queue", {"status": S.REQUIRES_INPUT.value}),
    )


@provider(REQUEST_ERROR.name)
def requests_in_error(now: datetime, user_ids: list[int]) -> Section | None:
    condition = PR.status == S.ERROR.value
    total = db.session.scalar(select(func.count()).select_from(PR).where(condition))
    if not total:
        return None
    rows = db.session.execute(
        select(PR.id, PR.due_date).where(condition).order_by(PR.due_date, PR.id).limit(ITEM_LIMIT)
    )
    items = tuple(Item(row.id, row.due_date.date().isoformat(), "needs a retry") for row in rows)
    return Section(
        REQUEST_ERROR.name,
        "Requests in error",
        f"{_plural(total, 'request')} in error",
        total,
        items,
        ("requests.queue", {"status": S.ERROR.value}),
    )


@provider(PACKAGE_READY.name)
def packages_ready(now: datetime, user_ids: list[int]) -> Section | None:
    """Requests completed in the last day (review states come with package review)."""
    condition = (PR.status == S.COMPLETE.value, PR.finished_processing_at >= now - timedelta(days=1))
    total = db.session.scalar(select(func.count()).select_from(PR).where(*condition))
    if not total:
        return None
    rows = db.session.execute(
        select(PR.id, PR.due_date, PR.finished_processing_at)
        .where(*condition)
        .order_by(PR.finished_processing_at.desc(), PR.id.desc())
        .limit(ITEM_LIMIT)
    )
    items = tuple(
        Item(
            row.id,
            row.due_date.date().isoformat(),
            f"completed {row.finished_processing_at:%Y-%m-%d %H:%M} UTC",
        )
        for row in rows
    )
    return Section(
        PACKAGE_READY.name,
        "Packages ready for review",
        f"{_plural(total, 'package')} ready for review",
        total,
        items,
        ("packages.index", {}),
        "packages.detail",
    )


def digest_rows(now: datetime) -> list[dict[str, Any]]:
    """The day's digest rows (user, context), one per person with anything to read; nothing is written."""
    sections: dict[int, list[Section]] = {}
    for kind_name, build in PROVIDERS.items():
        user_ids = list(db.session.scalars(receivers(KINDS[kind_name], (DeliveryMode.DIGEST,))))
        if not user_ids:
            continue
        built = build(now, user_ids)
        if built is None:
            continue
        for user_id in user_ids:
            section = built.get(user_id) if isinstance(built, dict) else built
            if section is not None:
                sections.setdefault(user_id, []).append(section)
    period = now.astimezone(UTC).date().isoformat()
    as_json: dict[int, dict[str, Any]] = {}  # each section converted once, however many read it
    rows = []
    for user_id, own in sections.items():
        context = {
            "subject": "; ".join(section.summary for section in own),
            "date": period,
            "sections": [as_json.get(id(s)) or as_json.setdefault(id(s), s.as_json()) for s in own],
        }
        rows.append(
            {"user_id": user_id, "kind": DIGEST, "subject_key": "daily", "period": period, "context": context}
        )
    return rows


def build_if_due(now: datetime) -> int:
    """From ``DIGEST_HOUR`` (UTC) on, log today's digests unless a run did already; returns how many rows
    it offered (the log keeps one per person and day). Never commits."""
    now = now.astimezone(UTC)
    if now.hour < current_app.config["DIGEST_HOUR"]:
        return 0
    period = now.date().isoformat()
    built = db.session.scalar(
        select(exists().where(Notification.kind == DIGEST, Notification.period == period))
    )
    if built:
        return 0
    rows = digest_rows(now)
    outbox.enqueue(rows, now=now)  # due at once: the run that built them sends them
    return len(rows)
