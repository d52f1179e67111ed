"""Jinja filters and globals shared by every page: times, masks, status badges."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import pass_environment
from jinja2.filters import do_truncate
from markupsafe import Markup

from portal.crypto import is_undecryptable
from portal.models import utcnow

STATUS_BADGES = {
    "identity_unverified": ("secondary", "Identity unverified"),
    "pending": ("secondary", "Pending approval"),
    "approved": ("info", "Approved"),
    "denied": ("dark", "Denied"),
    "in_processing": ("primary", "In processing"),
    "requires_input": ("warning", "Requires input"),
    "paused": ("secondary", "Paused"),
    "complete": ("success", "Complete"),
    "canceled": ("dark", "Canceled"),
    "error": ("danger", "Error"),
}


def absolute_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Formatted by hand: strftime was a third of the timeline's cost (70 times on a request page).
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d} UTC"


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    now = now or utcnow()
    seconds = int((now - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = email.partition("@")
    name, _, tld = domain.rpartition(".")
    return f"{local[:1]}•••@{name[:1]}•••.{tld}" if name else f"{local[:1]}•••@•••"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = [c for c in phone if c.isdigit()]
    return "•••" + "".join(digits[-2:])


# (endpoint, text, roles): shown to those roles once the endpoint exists.
# (endpoint, text, roles, menu): a menu groups links under one button so the bar fits a laptop's width.
NAV_ITEMS = (
    ("tasks.index", "My tasks", ("admin", "staff"), None),
    ("requests.queue", "Requests", ("admin", "staff", "reviewer"), None),
    ("packages.index", "Packages", ("admin", "reviewer"), None),
    ("admin.connections", "Connections", ("admin",), None),
    ("admin.users", "Users", ("admin",), "Admin"),
    ("admin.storage_configs", "Storage destinations", ("admin",), "Admin"),
    ("admin.policies_index", "Policies", ("admin",), "Admin"),
    ("admin.tokens", "API tokens", ("admin",), "Admin"),
    ("admin.audit", "Audit log", ("admin",), "Admin"),
    ("dashboard.api_docs", "API", ("admin", "staff", "reviewer"), None),
)


def _per_app_cache(name: str) -> dict:
    from flask import current_app

    cache = current_app.extensions.setdefault(name, {})
    if len(cache) > 1_000:  # bounded: keys are few (roles × endpoints × mount points)
        cache.clear()
    return cache


def layout_nav(user) -> Markup:
    """The navigation links of ``base.html`` for ``user``'s role on this endpoint.

    The same for everyone with that role on that page, so it is rendered once per process and reused:
    it is most of the layout's cost, and every page has it.
    """
    from flask import render_template, request

    cache = _per_app_cache("portal_layout_nav")
    key = (user.role, request.endpoint, request.script_root)
    markup = cache.get(key)
    if markup is None:
        markup = cache[key] = Markup(render_template("_partials/nav_items.html"))  # noqa: S704 - a template
    return markup


def layout_assets(kind: str) -> Markup:
    """Bootstrap's stylesheet (``css``) or scripts (``js``) tags, built once per process and mount point."""
    from flask import current_app, request

    cache = _per_app_cache("portal_layout_assets")
    key = (kind, request.script_root)
    markup = cache.get(key)
    if markup is None:
        bootstrap = current_app.extensions["bootstrap"]
        markup = cache[key] = bootstrap.load_css() if kind == "css" else bootstrap.load_js()
    return markup


def nav_extra_items(user) -> list[tuple[str, list[tuple[str, str]]]]:
    """The bar's entries for ``user``'s role, in order: (menu name or "", [(endpoint, text), ...])."""
    from flask import current_app

    entries: list[tuple[str, list[tuple[str, str]]]] = []
    for endpoint, text, roles, menu in NAV_ITEMS:
        if user.role not in roles or endpoint not in current_app.view_functions:
            continue
        if menu and entries and entries[-1][0] == menu:
            entries[-1][1].append((endpoint, text))
        else:
            entries.append((menu or "", [(endpoint, text)]))
    return entries


# --- lists of 50, in Python ---------------------------------------------------------------------------
# The places the portal builds HTML in Python, because a measurement pays for each: the queue's 50 rows as
# f-strings take 3.7 ms a page in-process (SQLite), against 4.7 ms as a Jinja loop over the helpers below
# and 5.5 ms as the Jinja macros they replaced; the request page's 50 system cards and its 20 timeline
# entries (below ``queue_rows``), lists of people (``options``) and the package report's table rows
# (``services.reports.report_rows``) have their own figures. Everything else is Jinja (``templates/``); the
# request page and the dashboard call ``status_badge``, ``due`` and ``identity_masked`` too, so each row
# piece's markup exists once. Pieces are plain strings escaped with ``_h`` (``html.escape``: the same
# characters as markupsafe, without a Markup per value); only finished HTML becomes Markup.

_h = html.escape


def _status_badge_html(status: str) -> str:
    colour, text = STATUS_BADGES.get(status, ("secondary", status))
    return f'<span class="badge text-bg-{_h(colour)}">{_h(text)}</span>'


_STATUS_BADGE_HTML = {status: _status_badge_html(status) for status in STATUS_BADGES}


def status_badge(status: str) -> Markup:
    # Prebuilt per status: a queue row's badge costs a dict lookup.
    return Markup(_STATUS_BADGE_HTML.get(status) or _status_badge_html(status))  # noqa: S704 - escaped


def _due_html(privacy_request, now: datetime, due_badge) -> str:
    badge = due_badge(privacy_request, now)
    due_date = privacy_request.due_date
    # Dates as isoformat and strftime write them: digits and punctuation, nothing to escape.
    text = (
        f'<time class="d-block small text-body-secondary" datetime="{due_date.isoformat()}">'
        f"{absolute_time(due_date)}</time>"
    )
    if badge:
        border = " border" if badge[0] == "light" else ""
        text = f'<span class="badge text-bg-{_h(badge[0])}{border}">{_h(badge[1])}</span>\n' + text
    return text


def due(privacy_request, now: datetime, due_badge) -> Markup:
    """The deadline badge (``due_badge(request, now)`` → (colour, text) or None) and the due date."""
    return Markup(_due_html(privacy_request, now, due_badge))  # noqa: S704 - escaped


def _identity_html(identity) -> str:
    if is_undecryptable(identity):
        return '<span class="d-block text-danger">Cannot be decrypted</span>'
    text = ""
    if identity.get("email"):
        text += f'<span class="d-block">{_h(mask_email(identity["email"]))}</span>'
    if identity.get("phone_number"):
        text += f'<span class="d-block">{_h(mask_phone(identity["phone_number"]))}</span>'
    return text


_UNDECRYPTABLE_HTML = '<span class="text-danger">Cannot be decrypted</span>'


@pass_environment
def decrypted(env, value, length: int | None = None) -> Markup | str:
    """An encrypted text column (external id, denial reason), truncated to ``length`` like ``truncate``,
    or an error in place of a value that cannot be decrypted: never a blank, never a failed page."""
    if is_undecryptable(value):
        return Markup(_UNDECRYPTABLE_HTML)  # noqa: S704 - a constant, shared with the queue's rows
    return do_truncate(env, value, length) if length else value


def identity_masked(identity) -> Markup:
    return Markup(_identity_html(identity))  # noqa: S704 - escaped


def queue_rows(items, *, done: dict[str, int], systems: int, now: datetime, due_badge) -> Markup:
    """The staff queue's table rows (``requests/queue.html``; ``items`` are ``RequestSummary``), one
    f-string per row: 1 ms of a 3.7 ms page saved against a Jinja loop (see above). Every value from the
    database goes through ``_h`` (or one of the helpers above, which escape theirs).
    """
    from flask import current_app

    env = current_app.jinja_env
    request_url = request_urls()
    plural = "s" if systems != 1 else ""
    rows = []
    for pr in items:
        request_id = _h(pr.id)
        external = ""
        if pr.external_id is not None:
            shown = pr.external_id
            shown = _UNDECRYPTABLE_HTML if is_undecryptable(shown) else _h(do_truncate(env, shown, 40))
            external = f'<div class="small text-body-secondary text-break">External: {shown}</div>'
        if systems:
            n = done.get(pr.id, 0)
            warn = ' class="text-warning-emphasis"' if n < systems else ""
            progress = f"<span{warn}>{n} of {systems} system{plural} done</span>"
        else:
            progress = '<span class="text-body-secondary">No manual systems</span>'
        badge = _STATUS_BADGE_HTML.get(pr.status) or _status_badge_html(pr.status)
        rows.append(
            "<tr>\n"
            '<th scope="row" class="fw-normal">'
            f'<a class="font-monospace small text-nowrap" href="{_h(request_url(pr.id))}" title="{request_id}">'
            f'<span aria-hidden="true">{_h(pr.id[:13])}…</span>'
            f'<span class="visually-hidden">{request_id}</span></a>{external}'
            f'<div class="small text-body-secondary text-nowrap">{_h(pr.policy_name)}</div></th>\n'
            f'<td class="text-nowrap" data-label="Data subject">{_identity_html(pr.identity)}</td>\n'
            f'<td class="text-nowrap" data-label="Status">{badge}</td>\n'
            f'<td class="text-nowrap stack-second" data-label="Manual input">{progress}</td>\n'
            f'<td class="text-nowrap stack-first" data-label="Due">{_due_html(pr, now, due_badge)}</td>\n'
            "</tr>"
        )
    return Markup("\n".join(rows))  # noqa: S704 - every interpolated value is escaped above


# The request page: its manual systems (up to 50) and its timeline (20 entries) as Jinja macros took
# 0.46 ms each of a 4.4 ms page (in-process, SQLite; an attribute lookup and a Markup per value); as
# f-strings, 0.18 ms and 0.28 ms.


def _card_status(card) -> str:
    entry = card.entry
    if entry is None:
        return '<span class="badge text-bg-secondary">Not started</span>'
    by, at = _h(entry.entered_by_label), absolute_time(entry.entered_at)  # a time: nothing to escape
    state = card.state
    if state == "sent_back":
        return (
            '<span class="badge text-bg-warning">Needs re-review: sent back by a reviewer</span>\n'
            f'<span class="d-block text-body-secondary">Last entered by {by} at {at}</span>'
        )
    if state == "stale":
        return (
            '<span class="badge text-bg-warning">Needs re-review: fields changed</span>\n'
            f'<span class="d-block text-body-secondary">Last entered by {by} at {at}</span>'
        )
    if is_undecryptable(entry.values):
        return (
            '<span class="badge text-bg-danger">Cannot be decrypted</span>\n'
            f"The data entered by {by} at {at} is corrupted or was encrypted with a key that is not configured."
        )
    if card.nothing_found:
        return f'<span class="badge text-bg-success">Done</span>\nNothing found — confirmed by {by} at {at}'
    return f'<span class="badge text-bg-success">Done</span>\nEntered by {by} at {at}'


def manual_cards(cards, entry_url: Callable[[str], str] | None = None) -> Markup:
    """The manual systems of ``requests/detail.html`` (``manual_inputs.Card``), one ``<li>`` each, with a
    link to each system's form when ``entry_url`` (connection key → URL) is given."""
    items = []
    for card in cards:
        conn = card.gated.connection
        name = _h(conn.name)
        description = (
            f'<p class="small text-body-secondary mb-1 text-break">{_h(conn.description)}</p>\n'
            if conn.description
            else ""
        )
        button = ""
        if entry_url is not None:
            url = _h(entry_url(conn.key))
            if card.entry is None:
                button = (
                    f'<a class="btn btn-primary btn-sm" href="{url}">Enter data'
                    f'<span class="visually-hidden"> for {name}</span></a>\n'
                )
            else:
                button = (
                    f'<a class="btn btn-outline-primary btn-sm" href="{url}">Review'
                    f'<span class="visually-hidden"> {name}</span></a>\n'
                )
        items.append(
            '<li class="border rounded p-3 mb-2">\n'
            '<div class="d-flex flex-wrap justify-content-between align-items-start gap-2">\n'
            f'<div class="me-auto">\n<h3 class="h6 mb-1 text-break">{name}</h3>\n{description}'
            f'<p class="small mb-0">\n{_card_status(card)}\n</p>\n</div>\n{button}</div>\n</li>'
        )
    return Markup("\n".join(items))  # noqa: S704 - every interpolated value is escaped above


def timeline_items(events, describe: Callable[[Any], str], now: datetime, note_delete_url=None) -> Markup:
    """The timeline of ``requests/detail.html``, newest first: audit events (``describe(event)`` is its
    sentence) and notes (``event.note``; a deletable one gets a form posting to ``note_delete_url(id)``)."""
    from flask_wtf.csrf import generate_csrf

    items = []
    token = None  # the CSRF token of the delete forms, signed once for the page
    for n, event in enumerate(events):
        at = event.created_at
        when = (
            f'by {_h(event.actor_label)} · <time datetime="{at.isoformat()}">{absolute_time(at)}</time> '
            f"({relative_time(at, now)})"  # times and their words: nothing to escape
        )
        top = " border-top" if n else ""
        if event.action == "note":  # a note (``workflow.NoteEntry``); no audit event has this action
            body = event.body
            body = _UNDECRYPTABLE_HTML if is_undecryptable(body) else _h(body)
            delete = ""
            if event.deletable and note_delete_url is not None:
                token = token or _h(generate_csrf())
                delete = (
                    f'<form method="post" action="{_h(note_delete_url(str(event.id)))}" class="d-inline" '
                    'data-confirm="Delete this note? The deletion is recorded.">'
                    f'<input type="hidden" name="csrf_token" value="{token}">'
                    '<button type="submit" class="btn btn-sm btn-link p-0">Delete note</button></form>'
                )
            items.append(
                f'<li class="py-2{top}">\n<span class="d-block"><strong>Note</strong></span>\n'
                f'<span class="d-block note-body text-break">{body}</span>\n'
                f'<span class="d-block small text-body-secondary text-break">{when}</span>\n{delete}</li>'
            )
            continue
        key = f" — <code>{_h(event.connection_key)}</code>" if event.connection_key else ""
        items.append(
            f'<li class="py-2{top}">\n<span class="d-block">{_h(describe(event))}{key}</span>\n'
            f'<span class="d-block small text-body-secondary text-break">{when}</span>\n</li>'
        )
    return Markup("\n".join(items))  # noqa: S704 - every interpolated value is escaped above


_TASK_BADGES = {"done": "success", "closed": "secondary"}


def task_items(request_tasks, actions: dict | None, me: int, is_admin: bool) -> Markup:
    """The tasks of ``requests/_workflow.html`` (``tasks.TaskRow``), one ``<li>`` each. ``actions`` (the
    tasks' base URL, the page to come back to and the CSRF token; None: no buttons) adds Claim to an open
    unassigned task and Give back to one's own (an admin's: any). A request has up to 50 tasks: as a
    Jinja loop they took 0.5 ms of a request page (in-process, SQLite), as f-strings 0.12 ms."""
    items = []
    hidden = ""
    if actions is not None:
        hidden = (
            f'<input type="hidden" name="csrf_token" value="{_h(actions["token"])}">'
            f'<input type="hidden" name="next" value="{_h(actions["here"])}">'
        )
    for n, task in enumerate(request_tasks):
        name, status = _h(task.connection_name), task.status
        button = ""
        if actions is not None and status == "open":
            if task.assignee_id is None:
                button = ("claim", "btn-outline-primary", "Claim")
            elif task.assignee_id == me or is_admin:
                button = ("release", "btn-outline-secondary", "Give back")
            if button:
                action, css, words = button
                button = (
                    f'\n<form method="post" action="{_h(actions["tasks_url"])}{task.id}/{action}" class="mt-1">'
                    f'{hidden}<button type="submit" class="btn btn-sm {css}">{words}'
                    f'<span class="visually-hidden"> the {name} task</span></button></form>'
                )
        items.append(
            f'<li class="py-2{" border-top" if n else ""}">\n<span class="d-block"><strong>{name}</strong> · '
            f'<span class="badge text-bg-{_TASK_BADGES.get(status, "warning")}">{_h(status)}</span></span>\n'
            f'<span class="d-block small">{_h(task.assignee_label or "Unassigned")}</span>{button}\n</li>'
        )
    return Markup("\n".join(items))  # noqa: S704 - every interpolated value is escaped above


def options(pairs, selected=None) -> Markup:
    """``<option>`` elements for (value, label) pairs, ``selected`` marked: lists of people run to
    hundreds, and as a Jinja loop they cost a third of a request page with tasks."""
    return Markup(  # noqa: S704 - every value and label is escaped (an int needs no escaping)
        "".join(
            f'<option value="{value if type(value) is int else _h(str(value))}"'
            f"{' selected' if value == selected else ''}>{_h(str(label))}</option>"
            for value, label in pairs
        )
    )


def url_factory(endpoint: str, varying: str, **fixed: str) -> Callable[[str], str]:
    """value → ``url_for(endpoint, **fixed, varying=value)``.

    ``url_for`` once per list rather than once per row: on a page of 50 rows, 50 calls cost a millisecond.
    """
    from flask import url_for

    marker = "1234567890"  # taken by string and integer converters alike, and found once in a URL
    prefix, _, suffix = url_for(endpoint, **fixed, **{varying: marker}).rpartition(marker)
    return lambda value: prefix + quote(str(value), safe="!$&'()*+,/:;=@") + suffix


def request_urls() -> Callable[[str], str]:
    """request id → URL of its request page."""
    return url_factory("requests.detail", "request_id")


def init_app(app) -> None:
    app.jinja_env.filters.update(
        absolute_time=absolute_time,
        relative_time=relative_time,
        mask_email=mask_email,
        mask_phone=mask_phone,
        decrypted=decrypted,
    )
    app.jinja_env.tests["undecryptable"] = is_undecryptable
    app.jinja_env.globals.update(STATUS_BADGES=STATUS_BADGES, nav_extra_items=nav_extra_items, now_utc=utcnow)
    app.jinja_env.globals.update(
        status_badge=status_badge,
        due=due,
        identity_masked=identity_masked,
        url_factory=url_factory,
        queue_rows=queue_rows,
        options=options,
        manual_cards=manual_cards,
        timeline_items=timeline_items,
        task_items=task_items,
        layout_nav=layout_nav,
        layout_assets=layout_assets,
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
