"""The request page's delivery card: the package's delivery state, and the subject's link for staff.

Staff do not open packages, but they deliver them to subjects who have no email address (the link is
shown once, to hand over) and may send a new link or revoke it; the rules are ``services.delivery``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import flash, redirect, url_for

from portal.extensions import db
from portal.models import PrivacyRequest, Role
from portal.requests import bp
from portal.requests.views import _render_detail, confirmed
from portal.security import roles_required
from portal.services import delivery, privacy_requests
from portal.web import current_actor, refusable


@dataclass(frozen=True)
class DeliveryCard:
    state: str | None  # None: not complete, nothing to deliver
    link_status: str | None
    link_expires_at: datetime | None
    has_email: bool
    handover: delivery.Release | None = None


def card_for(privacy_request: PrivacyRequest, handover: delivery.Release | None = None) -> DeliveryCard:
    # Only a complete request has a package to deliver: the others' pages skip the query.
    complete = delivery.state_of(privacy_request, None) is not None
    found = delivery.delivery_for(privacy_request.id) if complete else None
    identity = privacy_request.identity if isinstance(privacy_request.identity, dict) else {}
    return DeliveryCard(
        delivery.state_of(privacy_request, found),
        delivery.link_status(found),
        found.token_expires_at if found is not None else None,
        bool(identity.get("email")),
        handover,
    )


@bp.route("/<request_id>/delivery/link", methods=["POST"])
@roles_required(Role.ADMIN, Role.STAFF, Role.REVIEWER)
def delivery_link(request_id: str):
    """A new link for the subject (the old one stops working): mailed, or shown once to hand over."""
    privacy_request = privacy_requests.get_request(request_id)
    confirmed()
    with refusable() as outcome:
        release = delivery.resend_link(request_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
        return redirect(url_for(".detail", request_id=request_id))
    db.session.commit()
    if release.emailed:
        flash("A new link was emailed to the data subject; the old one no longer works.", "success")
        return redirect(url_for(".detail", request_id=request_id))
    return _render_detail(privacy_request, handover=release), 200, {"Cache-Control": "no-store"}


@bp.route("/<request_id>/delivery/revoke", methods=["POST"])
@roles_required(Role.ADMIN, Role.STAFF, Role.REVIEWER)
def revoke_delivery_link(request_id: str):
    privacy_requests.get_request(request_id)
    confirmed()
    with refusable() as outcome:
        delivery.revoke_link(request_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        db.session.commit()
        flash("The link was revoked: it no longer opens the data.", "success")
    return redirect(url_for(".detail", request_id=request_id))
