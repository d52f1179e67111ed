"""Building a mail from a notification row: subject, plain-text and HTML parts from ``templates/mail/``,
links into the portal (``BASE_URL``), and a signed one-click unsubscribe link.

A mail holds request ids, system names, dates and links: never an identity or an entered value (what it
can say is what the row's context holds, and rows are built without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, render_template
from flask_mailman import EmailMultiAlternatives
from itsdangerous import BadSignature, URLSafeSerializer

from portal.notifications.kinds import DIGEST, KINDS

UNSUBSCRIBE_SALT = "portal.notifications.unsubscribe"


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    role: str


def short_id(request_id: str) -> str:
    """``pri_1a2b3c4d…``: enough to tell requests apart in a subject line."""
    return request_id[:12] + "…" if len(request_id) > 12 else request_id


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute link into the portal, built from ``BASE_URL`` (no request needed: workers, cron)."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path.rstrip("/") or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: int, kinds: list[str]) -> str:
    return _serializer().dumps({"u": user_id, "k": sorted(kinds)})


def read_unsubscribe_token(token: str) -> tuple[int, list[str]] | None:
    """(user id, kinds) of a token this portal signed, or None for anything else."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("u"), int)
        or not isinstance(data.get("k"), list)
    ):
        return None
    kinds = [kind for kind in data["k"] if kind in KINDS]
    return (data["u"], kinds) if kinds else None


SUBJECTS = {
    "package_ready": "Package ready for review: {short}",
    "request_error": "Request in error: {short}",
    "task_assigned": "Task assigned: {system} — {short}",
    "unassigned_task": "Unassigned task: {system} — {short}",
    "package_sent_back": "Sent back for re-review: {short}",
}


def subject_of(kind: str, context: dict[str, Any]) -> str:
    if kind == DIGEST:
        return context["subject"]
    return SUBJECTS[kind].format(
        short=short_id(context.get("request_id", "")), system=context.get("system", "")
    )


def unsubscribe_kinds(kind: str, context: dict[str, Any]) -> list[str]:
    """The kinds an unsubscribe link in this mail turns off: its own, or every section of a digest."""
    if kind == DIGEST:
        return [section["kind"] for section in context.get("sections", [])]
    return [kind]


def build_message(
    kind: str,
    context: dict[str, Any],
    recipient: Recipient,
    due_dates: dict[str, datetime | None],
    *,
    connection=None,
) -> EmailMultiAlternatives:
    """The mail for one notification row; ``due_dates`` maps request ids to their current due date."""
    unsubscribe = external_url(
        "unsubscribe.confirm", token=unsubscribe_token(recipient.id, unsubscribe_kinds(kind, context))
    )
    page = {
        "kind": kind,
        "kind_label": KINDS[kind].label if kind in KINDS else "Daily digest",
        "context": context,
        "subject": subject_of(kind, context),
        "due_dates": due_dates,
        "link": external_url,
        "preferences_url": external_url("notifications.settings"),
        "unsubscribe_url": unsubscribe,
    }
    template = "digest" if kind == DIGEST else "request_event"
    message = EmailMultiAlternatives(
        subject=page["subject"],
        body=render_template(f"mail/{template}.txt", **page),
        to=[recipient.email],
        connection=connection,
        headers={"List-Unsubscribe": f"<{unsubscribe}>", "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_template(f"mail/{template}.html", **page), "text/html")
    message.portal_user_id = recipient.id  # for the console backend's log, instead of the address
    return message


# --- mails to a data subject -------------------------------------------------------------------------------
# Their package link and the code that opens it: to the request's email identity, never to a user. They say
# nothing about the request but that the data is ready (no identity, no values); ``private`` holds the
# link or code, read from the outbox row's encrypted column.

SUBJECT_KINDS = {
    "delivery_link": "Your personal data is ready to download",
    "delivery_code": "Your code to open your personal data",
}


def build_subject_message(
    kind: str, context: dict[str, Any], private: dict[str, Any], address: str, *, connection=None
) -> EmailMultiAlternatives:
    page = {
        "kind": kind,
        "subject": SUBJECT_KINDS[kind],
        "context": context,
        "private": private,
        "expires": datetime.fromisoformat(context["expires"]) if context.get("expires") else None,
    }
    message = EmailMultiAlternatives(
        subject=page["subject"],
        body=render_template("mail/subject.txt", **page),
        to=[address],
        connection=connection,
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_template("mail/subject.html", **page), "text/html")
    message.portal_user_id = "data subject"  # for the console backend's log, instead of the address
    message.portal_withhold_body = True  # the link or code is a secret: never in a log
    return message
