"""/api/v1 review and delivery (this portal's addition to fidesops' API): a completed request's package is
approved or sent back by a reviewer, and its link to the data subject re-issued or revoked. The same
service calls as the package page (``services.delivery``)."""

from __future__ import annotations

from typing import Annotated

from flask import g, jsonify
from pydantic import Field

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import ApiModel, iso, json_body
from portal.extensions import db
from portal.services import delivery, privacy_requests


class SendBackIn(ApiModel):
    systems: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=200)
    ]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


def delivery_json(request_id: str) -> dict:
    privacy_request = privacy_requests.get_request(request_id)
    row = delivery.delivery_for(request_id)
    return {
        "privacy_request_id": request_id,
        "state": delivery.state_of(privacy_request, row),
        "review_required": delivery.review_required(),
        "reviewed_at": iso(row.reviewed_at) if row else None,
        "reviewed_by": row.reviewed_by_label if row else None,
        "sent_back_systems": row.sent_back_systems if row else None,
        "link": delivery.link_status(row),
        "link_expires_at": iso(row.token_expires_at) if row and row.token_hash else None,
        "storage_key": row.storage_key if row else None,
        "storage_location": row.storage_location if row else None,
        "storage_error": row.storage_error if row else None,
    }


def _released(request_id: str, release: delivery.Release):
    body = delivery_json(request_id)
    # A request without an email address: the link is in this answer only, for staff to hand over.
    body.update(emailed=release.emailed, handover_link=release.link, link_expires_at=iso(release.expires_at))
    return jsonify(body)


@bp.get("/privacy-request/<request_id>/delivery")
@requires_scope(scopes.PRIVACY_REQUEST_READ)
def get_delivery(request_id: str):
    return jsonify(delivery_json(request_id))


@bp.post("/privacy-request/<request_id>/package/approve")
@requires_scope(scopes.PACKAGE_REVIEW)
def approve_package(request_id: str):
    release = delivery.approve(request_id, g.api_actor)
    db.session.commit()  # the approval stands, whatever the storage destination does next
    delivery.store_release_copy(request_id, g.api_actor)
    return _released(request_id, release)


@bp.post("/privacy-request/<request_id>/package/send_back")
@requires_scope(scopes.PACKAGE_REVIEW)
def send_back_package(request_id: str):
    body = SendBackIn.model_validate(json_body())
    reopened = delivery.send_back(request_id, body.systems, body.reason, g.api_actor)
    db.session.commit()
    return jsonify({**delivery_json(request_id), "reopened": reopened})


@bp.post("/privacy-request/<request_id>/delivery/resend")
@requires_scope(scopes.PACKAGE_DELIVER)
def resend_delivery_link(request_id: str):
    release = delivery.resend_link(request_id, g.api_actor)
    db.session.commit()
    return _released(request_id, release)


@bp.post("/privacy-request/<request_id>/delivery/revoke")
@requires_scope(scopes.PACKAGE_DELIVER)
def revoke_delivery_link(request_id: str):
    delivery.revoke_link(request_id, g.api_actor)
    db.session.commit()
    return jsonify(delivery_json(request_id))
