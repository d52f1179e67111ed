"""Review and delivery: a completed request's package is approved (or sent back), then released to the
data subject through an expiring link, and optionally written to a release storage destination.

The request's status stays ``complete``; the package has a delivery state of its own
(``models.deliveries``). Rules:
- A completed request's package is *ready for review* until a reviewer approves it or sends it back. With
  ``REQUIRE_PACKAGE_REVIEW`` off it is released as the request completes (a watcher of
  ``request.completed``).
- Sending back names systems (manual connections) and a reason: the request returns to ``requires_input``
  (``lifecycle`` transition ``send_back``) and only those systems' entries are marked (``sent_back_at``):
  they must be saved again before the request can resume; the others stay done.
- Releasing issues the subject's link: a 256-bit random token of which only the SHA-256 is stored, valid
  ``DELIVERY_LINK_DAYS``. With an email identity the link is mailed through the outbox (the address and the
  token are kept encrypted on the outbox row until it is sent); with a phone number only, staff are shown
  the link once to hand over. Issuing a new link (re-send) replaces the old one; revoking kills it.
- The subject proves they hold the address with a six-digit code mailed to it, stored as an HMAC, valid
  ``DELIVERY_CODE_MINUTES``; ``DELIVERY_CODE_ATTEMPTS`` wrong codes lock the link for good.
- A released package is also written to a storage destination: the one of the request's policy's access
  rule (fidesops' ``storage_destination_key``), else ``RELEASE_STORAGE_KEY`` when set; a failure leaves the delivery ``delivery_failed`` (the package and the subject's link are kept) until a
  retry succeeds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import (
    ConnectionConfig,
    ManualInput,
    PackageDelivery,
    PrivacyRequest,
    RequestStatus,
    StorageConfig,
    audit,
    lifecycle,
    utcnow,
)
from portal.models.audit import Actor, record
from portal.models.deliveries import DeliveryState
from portal.notifications import outbox
from portal.services import (
    InvalidState,
    NotFound,
    ValidationFailed,
    policies,
    privacy_requests,
    storage_export,
    text_problem,
)

log = logging.getLogger(__name__)

D = DeliveryState
SUBJECT = Actor("subject", "data subject")
RELEASE_WITHOUT_REVIEW = Actor.system(
    "release without review"
)  # the person the package is about, through their link
LINK_KIND = "delivery_link"
CODE_KIND = "delivery_code"
MAX_REASON_LENGTH = 2000
OPEN_STATES = (D.READY_FOR_REVIEW.value, D.SENT_BACK.value)  # not released yet


# --- the state ---------------------------------------------------------------------------------------------


def delivery_for(request_id: str) -> PackageDelivery | None:
    return db.session.scalar(select(PackageDelivery).where(PackageDelivery.privacy_request_id == request_id))


def state_of(privacy_request: PrivacyRequest, delivery: PackageDelivery | None) -> str | None:
    """The package's delivery state (None: the request is not complete, so there is no package to review)."""
    if privacy_request.status != RequestStatus.COMPLETE or privacy_request.purged_at is not None:
        return None
    if delivery is None or delivery.state == D.SENT_BACK:
        return D.READY_FOR_REVIEW.value
    return delivery.state


def states_of(request_ids: list[str]) -> dict[str, str]:
    """The delivery state of each of these complete requests that has one (none: ready for review), in one
    query."""
    if not request_ids:
        return {}
    rows = db.session.execute(
        select(PackageDelivery.privacy_request_id, PackageDelivery.state).where(
            PackageDelivery.privacy_request_id.in_(request_ids)
        )
    )
    return {
        request_id: (D.READY_FOR_REVIEW.value if state == D.SENT_BACK else state)
        for request_id, state in rows
    }


def review_required() -> bool:
    return bool(current_app.config["REQUIRE_PACKAGE_REVIEW"])


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Release:
    """What releasing (or re-sending) did: ``link`` is set only when staff must hand it over (phone only);
    ``url`` is the subject's link either way, never stored (the mail carries it; tests and the demo read it)."""

    emailed: bool
    link: str | None
    expires_at: datetime
    url: str = field(repr=False, default="")


def _reviewable(request_id: str) -> tuple[PrivacyRequest, PackageDelivery]:
    privacy_request = privacy_requests.get_request(request_id)
    if privacy_request.status != RequestStatus.COMPLETE or privacy_request.package is None:
        raise InvalidState(f"Privacy request '{request_id}' has no package to review: it is not complete.")
    if privacy_request.purged_at is not None:
        raise NotFound(privacy_requests.purged_message(privacy_request, "access package"))
    delivery = delivery_for(request_id)
    if delivery is None:
        # Two reviewers opening a package's first review at once both insert its row: the second insert
        # breaks the unique key in its savepoint and reads the first's row instead (then loses the swap).
        try:
            with db.session.begin_nested():
                delivery = PackageDelivery(privacy_request_id=request_id, state=D.READY_FOR_REVIEW.value)
                db.session.add(delivery)
        except IntegrityError:
            delivery = delivery_for(request_id)
    return privacy_request, delivery


def approve(request_id: str, actor: Actor) -> Release:
    """Approve the package and release it: the subject's link is issued (mailed, or returned for staff to
    hand over). A compare-and-swap on the state: of two reviewers approving at once, one wins."""
    privacy_request, delivery = _reviewable(request_id)
    released = _released_state(privacy_request)
    changed = db.session.execute(
        update(PackageDelivery)
        .where(PackageDelivery.id == delivery.id, PackageDelivery.state.in_(OPEN_STATES))
        .values(
            state=released,
            reviewed_by_label=actor.label,
            reviewed_at=utcnow(),
            sent_back_systems=None,
            send_back_reason=None,
            storage_error=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise InvalidState(f"The package of privacy request '{request_id}' was released already.")
    db.session.refresh(delivery)
    record(actor, "package.approved", privacy_request_id=request_id, review_required=review_required())
    return _issue_link(privacy_request, delivery, actor)


def _released_state(privacy_request: PrivacyRequest) -> str:
    """Released with nothing left to do, or still to be written to the release destination."""
    return D.APPROVED.value if release_storage_key(privacy_request) else D.DELIVERED.value


def send_back(request_id: str, connection_keys: list[str], reason: str, actor: Actor) -> list[str]:
    """Return the request to ``requires_input`` with the entries of ``connection_keys`` marked for
    re-review (saved again before it can resume); every other entry is kept. Returns the keys."""
    privacy_request, delivery = _reviewable(request_id)
    if delivery.state not in OPEN_STATES:
        raise InvalidState(f"The package of privacy request '{request_id}' was released already.")
    reason = (reason or "").strip()
    errors = []
    if not reason:
        errors.append((("reason",), "Say what is wrong, for the staff who check it again."))
    elif len(reason) > MAX_REASON_LENGTH or text_problem(reason):
        errors.append(
            (("reason",), f"The reason must be plain text of at most {MAX_REASON_LENGTH} characters.")
        )
    entries = dict(
        db.session.execute(
            select(ConnectionConfig.key, ManualInput.id)
            .join(ManualInput, ManualInput.connection_config_id == ConnectionConfig.id)
            .where(ManualInput.privacy_request_id == request_id)
        ).all()
    )
    keys = [key for key in dict.fromkeys(connection_keys or []) if key]
    if not keys:
        errors.append((("systems",), "Choose at least one system whose entry must be checked again."))
    unknown = [key for key in keys if key not in entries]
    if unknown:
        errors.append((("systems",), f"No entry by hand for: {', '.join(unknown)}."))
    if errors:
        raise ValidationFailed(" ".join(message for _, message in errors), errors)
    now = utcnow()
    if not lifecycle.change(request_id, "send_back", actor, details={"systems": keys}):
        raise InvalidState(f"Privacy request '{request_id}' is no longer complete.")
    db.session.execute(
        update(ManualInput)
        .where(ManualInput.id.in_([entries[key] for key in keys]))
        .values(sent_back_at=now)
        .execution_options(synchronize_session=False)
    )
    delivery.state = D.SENT_BACK.value
    delivery.sent_back_systems = keys
    delivery.send_back_reason = reason
    delivery.reviewed_by_label = actor.label
    delivery.reviewed_at = now
    db.session.flush()
    db.session.expire(privacy_request)
    return keys


def sent_back_note(request_id: str) -> str | None:
    """Why a reviewer sent the request back (shown beside the systems to check again), if they did."""
    delivery = delivery_for(request_id)
    if delivery is None or delivery.state != D.SENT_BACK:
        return None
    return delivery.send_back_reason


# --- the subject's link --------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _code_hash(delivery_id: int, code: str) -> str:
    secret = current_app.secret_key
    secret = secret if isinstance(secret, bytes) else str(secret).encode()
    return hmac.new(secret, f"delivery:{delivery_id}:{code}".encode(), "sha256").hexdigest()


def link_url(token: str) -> str:
    """The subject's delivery page, from ``BASE_URL`` as every link in a mail."""
    from portal.notifications.mail import external_url

    return external_url("delivery.page", token=token)


def _issue_link(privacy_request: PrivacyRequest, delivery: PackageDelivery, actor: Actor) -> Release:
    token = secrets.token_urlsafe(32)  # 256 bits
    now = utcnow()
    expires = now + timedelta(days=current_app.config["DELIVERY_LINK_DAYS"])
    delivery.token_hash = token_hash(token)
    delivery.token_expires_at = expires
    delivery.token_revoked_at = None
    delivery.locked_at = None
    delivery.code_hash = None
    delivery.code_expires_at = None
    delivery.code_attempts = 0
    db.session.flush()
    email = (privacy_request.identity or {}).get("email")
    url = link_url(token)
    if email:
        _mail_subject(privacy_request.id, LINK_KIND, email, {"url": url}, {"expires": expires})
        record(actor, "delivery.link_sent", privacy_request_id=privacy_request.id, channel="email")
        return Release(True, None, expires, url)
    record(actor, "delivery.link_issued", privacy_request_id=privacy_request.id, channel="staff")
    return Release(False, url, expires, url)


def _mail_subject(
    request_id: str, kind: str, address: str, private: dict[str, Any], context: dict[str, Any]
) -> None:
    """Log one mail to the data subject in the caller's transaction (sent after the commit, retried)."""
    now = utcnow()
    public = {"request_id": request_id, **{k: v.isoformat() for k, v in context.items()}}
    outbox.enqueue(
        [
            {
                "user_id": None,
                "kind": kind,
                "subject_key": request_id,
                "period": now.strftime("%Y%m%dT%H%M%S.%fZ"),
                "context": public,
                "recipient": address,
                "private_context": private,
            }
        ],
        now=now,
    )


def _released(request_id: str) -> tuple[PrivacyRequest, PackageDelivery]:
    privacy_request = privacy_requests.get_request(request_id)
    delivery = delivery_for(request_id)
    if state_of(privacy_request, delivery) not in (D.APPROVED, D.DELIVERED, D.DELIVERY_FAILED):
        raise InvalidState(f"The package of privacy request '{request_id}' has not been released.")
    return privacy_request, delivery


def resend_link(request_id: str, actor: Actor) -> Release:
    """A new link (the old one stops working), mailed again or shown once to staff."""
    privacy_request, delivery = _released(request_id)
    return _issue_link(privacy_request, delivery, actor)


def revoke_link(request_id: str, actor: Actor) -> None:
    _, delivery = _released(request_id)
    if delivery.token_hash is None or delivery.token_revoked_at is not None:
        raise InvalidState("The link was revoked already.")
    delivery.token_revoked_at = utcnow()
    record(actor, "delivery.link_revoked", privacy_request_id=request_id)


def link_status(delivery: PackageDelivery | None) -> str | None:
    """ "active", "expired", "revoked", "locked" (None: no link issued)."""
    if delivery is None or delivery.token_hash is None:
        return None
    if delivery.locked_at is not None:
        return "locked"
    if delivery.token_revoked_at is not None:
        return "revoked"
    if _aware(delivery.token_expires_at) <= utcnow():
        return "expired"
    return "active"


class LinkUnusable(NotFound):
    """Unknown, expired, revoked or locked: the subject is told the same in every case."""


def open_link(token: str) -> tuple[PrivacyRequest, PackageDelivery]:
    """The request and delivery a subject's token opens, or ``LinkUnusable`` (never saying why)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise LinkUnusable("This link cannot be used.")
    delivery = db.session.scalar(
        select(PackageDelivery).where(PackageDelivery.token_hash == token_hash(token))
    )
    if delivery is None or link_status(delivery) != "active":
        raise LinkUnusable("This link cannot be used.")
    privacy_request = db.session.get(PrivacyRequest, delivery.privacy_request_id)
    if privacy_request is None or state_of(privacy_request, delivery) not in (
        D.APPROVED,
        D.DELIVERED,
        D.DELIVERY_FAILED,
    ):
        raise LinkUnusable("This link cannot be used.")
    return privacy_request, delivery


def send_code(token: str) -> None:
    """Mail a fresh six-digit code to the address the link was sent to (valid DELIVERY_CODE_MINUTES)."""
    privacy_request, delivery = open_link(token)
    email = (privacy_request.identity or {}).get("email")
    if not email:
        raise LinkUnusable("This link cannot be used.")
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires = utcnow() + timedelta(minutes=current_app.config["DELIVERY_CODE_MINUTES"])
    delivery.code_hash = _code_hash(delivery.id, code)
    delivery.code_expires_at = expires
    _mail_subject(privacy_request.id, CODE_KIND, email, {"code": code}, {"expires": expires})
    record(SUBJECT, "delivery.code_sent", privacy_request_id=privacy_request.id)


class WrongCode(ValidationFailed):
    pass


def verify_code(token: str, code: str) -> PackageDelivery:
    """Check the subject's code; a wrong one counts, and ``DELIVERY_CODE_ATTEMPTS`` of them lock the
    link (``LinkUnusable`` from then on). The caller commits in every case (the count must stay)."""
    privacy_request, delivery = open_link(token)
    code = (code or "").strip().replace(" ", "")
    valid = (
        delivery.code_hash is not None
        and _aware(delivery.code_expires_at) > utcnow()
        and len(code) == 6
        and code.isascii()
        and code.isdigit()
        and hmac.compare_digest(delivery.code_hash, _code_hash(delivery.id, code))
    )
    if valid:
        delivery.code_hash = None  # used once
        delivery.code_expires_at = None
        delivery.code_attempts = 0
        record(SUBJECT, "delivery.code_verified", privacy_request_id=privacy_request.id)
        return delivery
    delivery.code_attempts += 1
    left = current_app.config["DELIVERY_CODE_ATTEMPTS"] - delivery.code_attempts
    if left <= 0:
        delivery.locked_at = utcnow()
        delivery.code_hash = None
        record(SUBJECT, "delivery.locked", privacy_request_id=privacy_request.id)
        raise LinkUnusable("This link cannot be used.")
    record(SUBJECT, "delivery.code_refused", privacy_request_id=privacy_request.id, attempts_left=left)
    raise WrongCode(
        "That code is not right, or it has expired. "
        f"{left} more tr{'y' if left == 1 else 'ies'} before this link is locked."
    )


# --- the release destination ---------------------------------------------------------------------------


def release_storage_key(privacy_request: PrivacyRequest) -> str | None:
    """Where a released package is written: the storage destination of the request's policy's access rule,
    else the deployment's ``RELEASE_STORAGE_KEY`` (None: nowhere, the subject's link is the delivery)."""
    config = policies.storage_destination_for(privacy_request.policy_id)
    return config.key if config is not None else current_app.config.get("RELEASE_STORAGE_KEY")


def write_release_copy(request_id: str, actor: Actor, *, before_write: Callable[[], None]) -> str:
    """Write a released package to the release destination; the delivery becomes ``delivered`` or
    ``delivery_failed`` (with the reason). The caller commits afterwards in both cases."""
    privacy_request, delivery = _released(request_id)
    key = release_storage_key(privacy_request)
    config = db.session.scalar(select(StorageConfig).where(StorageConfig.key == key)) if key else None
    delivery.storage_key = key
    if config is None:
        error = f"The release storage destination '{key}' does not exist."
        _failed(delivery, actor, error)
        return D.DELIVERY_FAILED.value
    try:
        written = storage_export.export_package(privacy_request, config, actor, before_write=before_write)
    except storage_export.StorageWriteFailed as exc:
        delivery = delivery_for(request_id)
        _failed(delivery, actor, str(exc))
        return D.DELIVERY_FAILED.value
    except Exception as exc:  # noqa: BLE001 - anything else the destination raised: failed, retryable
        db.session.rollback()
        delivery = delivery_for(request_id)
        _failed(delivery, actor, f"Could not write the package to storage '{key}' ({type(exc).__name__}).")
        return D.DELIVERY_FAILED.value
    delivery = delivery_for(request_id)
    delivery.state = D.DELIVERED.value
    delivery.storage_key = key
    delivery.storage_location = written.location
    delivery.storage_error = None
    record(actor, "delivery.stored", privacy_request_id=request_id, storage_key=key)
    return D.DELIVERED.value


def _failed(delivery: PackageDelivery, actor: Actor, error: str) -> None:
    delivery.state = D.DELIVERY_FAILED.value
    delivery.storage_error = error
    record(actor, "delivery.failed", privacy_request_id=delivery.privacy_request_id, reason=error)


def store_release_copy(request_id: str, actor: Actor) -> str | None:
    """After an approval (committed first: it stands whatever the destination does), write the package to
    the release destination when one is configured and the copy is due. Commits the outcome; returns the
    delivery's new state, or None when there was nothing to write."""
    if not needs_storage_write(request_id):
        return None
    state = write_release_copy(request_id, actor, before_write=db.session.commit)
    db.session.commit()
    return state


def store_pending_copies(limit: int = 100) -> int:
    """Write the copies that approvals left to do (``approved``: released without review as a request
    completed, or a process that stopped before writing); the sweep runs it. Returns how many it tried.
    Only a release with a destination waits in ``approved`` (``_released_state``)."""
    pending = db.session.scalars(
        select(PackageDelivery.privacy_request_id)
        .where(
            PackageDelivery.state == D.APPROVED.value,
            # past the grace period: an approval's own request writes its copy in the meantime
            PackageDelivery.updated_at
            < utcnow() - timedelta(seconds=current_app.config["SWEEP_GRACE_SECONDS"]),
        )
        .order_by(PackageDelivery.updated_at)
        .limit(limit)
    ).all()
    db.session.rollback()  # end the read: each write commits on its own
    for request_id in pending:
        store_release_copy(request_id, RELEASE_WITHOUT_REVIEW)
    return len(pending)


def needs_storage_write(request_id: str) -> bool:
    delivery = delivery_for(request_id)
    if delivery is None or delivery.state not in (D.APPROVED, D.DELIVERY_FAILED):
        return False
    privacy_request = db.session.get(PrivacyRequest, request_id)
    return privacy_request is not None and bool(release_storage_key(privacy_request))


# --- without review: released as the request completes ------------------------------------------------


def _release_on_completion(request_id: str | None, details: dict[str, Any]) -> None:
    if request_id is None or review_required():
        return
    try:
        with db.session.begin_nested():
            loaded = db.session.get(PrivacyRequest, request_id)
            if loaded is not None:
                db.session.refresh(loaded)  # the completion's UPDATE went around it
            delivery = delivery_for(request_id)
            if delivery is not None and delivery.state not in OPEN_STATES:
                delivery.state = D.SENT_BACK.value  # a re-run's new package: released again
                db.session.flush()
            approve(request_id, RELEASE_WITHOUT_REVIEW)
    except Exception as exc:  # noqa: BLE001 - the completion stands; the package waits for a reviewer
        log.error("Could not release the package of %s (%s).", request_id, type(exc).__name__)


def init() -> None:
    """Watch request completions (``create_app`` calls it once)."""
    audit.watch("request.completed", _release_on_completion)
