"""Sending the logged mails after the commit that logged them, and never in the way of the work.

After a commit that logged mails: with the celery backend a ``portal.send_notifications`` task is queued
(``portal.worker``); inline, they are sent after the response has gone out (``call_on_close``). Beat (or
``flask send-notifications`` from cron) runs the same sender every minute, which also builds the daily
digest, logs the unassigned-task reminders (``reminders``) and retries what failed. A sender claims rows (``outbox.claim_due``), so two never send one row.

A failure is recorded on the row — the exception's type and SMTP code, never the server's text — and the
row is tried again after an exponential backoff; a permanent refusal (5xx) or too many attempts mark it
failed, which admins see on their dashboard.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import threading
from dataclasses import dataclass
from datetime import datetime

from flask import after_this_request, current_app, has_request_context, request
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from portal.extensions import db, mail
from portal.models import DeliveryMode, Notification, NotificationPreference, PrivacyRequest, User, utcnow
from portal.notifications import digest, outbox, reminders
from portal.notifications.kinds import DIGEST, KINDS, UNASSIGNED_TASK
from portal.notifications.mail import SUBJECT_KINDS, Recipient, build_message, build_subject_message

log = logging.getLogger(__name__)

SEND_TASK = "portal.send_notifications"
BATCH = 50
_AFTER_RESPONSE = "portal_notifications_after_response"


@dataclass
class Report:
    built: int = 0  # digest rows offered
    reminded: int = 0  # unassigned-task reminders offered
    sent: int = 0
    failed: int = 0  # attempts that failed (the row is retried, or given up)
    skipped: int = 0
    retry_in: float | None = None  # seconds until the earliest failed row is due again
    unreachable: bool = False  # the server could not be reached: the rest waits for the next run


class ConnectionFailed(Exception):
    """The server could not be reached or dropped us: every message of the batch waits for the next try."""


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """(what the log keeps, whether it is permanent): the exception type and SMTP code only."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"{name} {'/'.join(map(str, codes))}", bool(codes) and min(codes) >= 500
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{name} {exc.smtp_code}", exc.smtp_code >= 500
    return name, False


def _recipients(user_ids: set[int]) -> dict[int, tuple[Recipient, bool, dict[str, str]]]:
    """user id → (recipient, active, stored modes), in two queries."""
    users = db.session.execute(
        select(User.id, User.email, User.role, User.active).where(User.id.in_(user_ids))
    )
    found = {u.id: (Recipient(u.id, u.email, u.role), u.active, {}) for u in users}
    for user_id, kind, mode in db.session.execute(
        select(
            NotificationPreference.user_id, NotificationPreference.kind, NotificationPreference.mode
        ).where(NotificationPreference.user_id.in_(user_ids))
    ):
        found[user_id][2][kind] = mode
    return found


def _still_wanted(
    kind: str, context: dict, recipient: Recipient, active: bool, modes: dict[str, str]
) -> bool:
    """Deactivated users get nothing; a kind turned off (or a role changed) since the row was logged is not
    sent, except an error mail sent to every admin because nobody else would get it."""
    if not active:
        return False
    if kind == DIGEST or context.get("fallback"):
        return True
    spec = KINDS.get(kind)
    if spec is None or not spec.allows(recipient.role):
        return False
    return modes.get(kind, spec.default_for(recipient.role)) == DeliveryMode.IMMEDIATE


def _due_dates(contexts: list[dict]) -> dict[str, datetime | None]:
    ids = {c["request_id"] for c in contexts if c.get("request_id")}
    if not ids:
        return {}
    return dict(
        db.session.execute(
            select(PrivacyRequest.id, PrivacyRequest.due_date).where(PrivacyRequest.id.in_(ids))
        ).all()
    )


def deliver_due(now: datetime | None = None, limit: int | None = None) -> Report:
    """Claim up to ``limit`` (``BATCH``) due rows and send them over one connection; commits after each
    outcome."""
    now = now or utcnow()
    limit = limit or BATCH
    config = current_app.config
    report = Report()
    token, ids = outbox.claim_due(now, limit)
    if not ids:
        return report
    rows = db.session.execute(
        select(
            Notification.id,
            Notification.user_id,
            Notification.kind,
            Notification.subject_key,
            Notification.context,
            Notification.attempts,
            Notification.recipient,
            Notification.private_context,
        )
        .where(Notification.id.in_(ids))
        .order_by(Notification.id)
    ).all()
    people = _recipients({row.user_id for row in rows if row.user_id is not None})
    due_dates = _due_dates([row.context for row in rows])
    taken = reminders.taken_since([row.subject_key for row in rows if row.kind == UNASSIGNED_TASK.name])
    connection = mail.get_connection()
    opened = False

    def failed(row, error: str, permanent: bool) -> None:
        outbox.mark_failed_attempt(
            row.id,
            token,
            attempts=row.attempts + 1,
            error=error,
            now=now,
            permanent=permanent,
            max_attempts=config["NOTIFICATION_MAX_ATTEMPTS"],
            retry_seconds=config["NOTIFICATION_RETRY_SECONDS"],
        )
        db.session.commit()
        report.failed += 1
        log.warning("Mail %s (%s) not sent: %s (attempt %d).", row.id, row.kind, error, row.attempts + 1)

    try:
        for row in rows:
            person = people.get(row.user_id)
            subject_mail = row.user_id is None and row.kind in SUBJECT_KINDS
            if subject_mail and not (
                isinstance(row.recipient, str) and isinstance(row.private_context, dict)
            ):
                failed(row, "UndecryptableValue", True)  # the address or its secret cannot be read
                continue
            if not subject_mail and (
                person is None
                or not _still_wanted(row.kind, row.context, *person)
                or (row.kind == UNASSIGNED_TASK.name and row.subject_key in taken)
            ):
                outbox.mark_skipped(row.id, token)
                db.session.commit()
                report.skipped += 1
                continue
            try:
                if subject_mail:
                    message = build_subject_message(
                        row.kind, row.context, row.private_context, row.recipient, connection=connection
                    )
                else:
                    message = build_message(
                        row.kind, row.context, person[0], due_dates, connection=connection
                    )
            except Exception as exc:  # noqa: BLE001 - one broken mail must not hold up the others
                failed(row, type(exc).__name__, False)
                continue
            if not opened:
                try:
                    connection.open()
                except Exception as exc:  # refused, timed out, TLS or login failed: all wait
                    raise ConnectionFailed(describe_error(exc)[0]) from exc
                opened = True
            try:
                message.send()
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
                failed(row, *describe_error(exc))  # this message was refused; the connection still works
                continue
            except (OSError, smtplib.SMTPException) as exc:
                raise ConnectionFailed(describe_error(exc)[0]) from exc
            outbox.mark_sent(row.id, token, utcnow())
            db.session.commit()
            report.sent += 1
    except ConnectionFailed as exc:
        report.unreachable = True
        for waiting in rows:
            if waiting.id >= row.id:  # this one and the ones after it (rows are in id order)
                failed(waiting, str(exc), False)
    finally:
        if opened:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing left to save
                connection.close()
    return report


def run(now: datetime | None = None) -> Report:
    """One sender run: build today's digest when due and log the unassigned-task reminders not yet sent
    today, then send everything due, batch after batch."""
    now = now or utcnow()
    report = Report(built=digest.build_if_due(now), reminded=reminders.enqueue_unassigned(now))
    db.session.info.pop(outbox.PENDING_KEY, None)  # sent just below, not by another sender
    db.session.commit()
    while True:
        batch = deliver_due(now)
        report.sent += batch.sent
        report.failed += batch.failed
        report.skipped += batch.skipped
        report.unreachable = report.unreachable or batch.unreachable
        # A server that cannot be reached is not tried again for every further batch (each could wait
        # for MAIL_TIMEOUT): the rows left wait for the next run.
        if batch.unreachable or batch.sent + batch.failed + batch.skipped < BATCH:
            break
    if report.failed:
        upcoming = outbox.next_attempt_at()
        if upcoming is not None:
            report.retry_in = max((upcoming - utcnow()).total_seconds(), 1.0)
    db.session.commit()
    return report


# --- after the commit that logged mails -------------------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: the mails are not committed until its transaction is
    if session.info.pop(outbox.PENDING_KEY, False):
        send_soon()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(outbox.PENDING_KEY, None)


def send_soon() -> None:
    """Hand what was just committed to a sender: a Celery task, or this process after the response.

    Outside a request with the inline backend (CLI commands) nothing is started here: the next sender run
    (cron, or the next response that logged mail) sends them.
    """
    try:
        app = current_app._get_current_object()
    except RuntimeError:
        return
    if app.config["TASK_BACKEND"] == "celery":
        try:
            app.extensions["celery"].send_task(SEND_TASK, kwargs={"retry": True})
        except Exception as exc:  # noqa: BLE001 - the broker is down: beat's next run sends them
            log.warning(
                "Could not queue the notification sender (%s); beat will send them.", type(exc).__name__
            )
        return
    # Marked on the request itself (not ``g``, which an app context pushed around requests would share):
    # each request that committed mail sends it after its own response.
    if has_request_context() and not request.environ.get(_AFTER_RESPONSE):
        request.environ[_AFTER_RESPONSE] = True
        after_this_request(_deliver_after_response)


def _deliver_after_response(response):
    app = current_app._get_current_object()

    def deliver() -> None:
        with app.app_context():
            try:
                deliver_due()
            except Exception as exc:  # noqa: BLE001 - the response is out; the next run retries
                log.error("Sending notifications after a response failed (%s).", type(exc).__name__)

    if request.environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug/"):
        # The development server (``make run``) calls a response's close only once the client has closed
        # its side of the connection, which a browser may put off for minutes: send from a thread instead.
        threading.Thread(target=deliver, name="portal-mail-after-response", daemon=True).start()
        return response
    response.call_on_close(deliver)  # gunicorn, the test client: right after the response is written
    return response
