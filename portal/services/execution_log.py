"""A request's execution log as fidesops answers it (``GET /privacy-request/{id}/log`` and the ``results``
of ``verbose=True``), read from what the portal records: each connection's collection step (rows found
per collection, or the error) and the approval or denial in the audit trail. No value is ever in it.

fidesops logs one entry per collection and groups them by dataset; an approval or denial is its own group
("Request approved", "Request denied"). Manual webhooks have no entries, as in fidesops: what staff
entered is in the package and the audit trail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, CollectionStep
from portal.models.base import iso

_REVIEW_GROUPS = {
    "request.approved": ("Request approved", "approved"),
    "request.denied": ("Request denied", "denied"),
}


def _step_entries(step: CollectionStep) -> list[dict[str, Any]]:
    common = {"connection_key": step.connection_key, "action_type": "access", "fields_affected": []}
    if step.error is not None:
        return [
            {
                **common,
                "dataset_name": None,
                "collection_name": None,
                "message": step.error,
                "status": "error",
                "updated_at": iso(step.created_at),
            }
        ]
    entries = []
    for node, count in step.row_counts.items():
        dataset, _, collection = node.partition(":")
        entries.append(
            {
                **common,
                "dataset_name": dataset,
                "collection_name": collection,
                "message": f"{count} {'row' if count == 1 else 'rows'} found",
                "status": "complete",
                "updated_at": iso(step.created_at),
            }
        )
    return entries


def _entries_of(request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each request's entries, oldest first (review events, then each run's steps): two queries in all."""
    found: dict[str, list[dict[str, Any]]] = {request_id: [] for request_id in request_ids}
    events = db.session.execute(
        select(
            AuditEvent.privacy_request_id, AuditEvent.action, AuditEvent.created_at, AuditEvent.actor_user_id
        )
        .where(AuditEvent.privacy_request_id.in_(request_ids), AuditEvent.action.in_(_REVIEW_GROUPS))
        .order_by(AuditEvent.id)
    ).all()
    for request_id, action, created_at, user_id in events:
        found[request_id].append(
            {
                "connection_key": None,
                "dataset_name": _REVIEW_GROUPS[action][0],
                "collection_name": None,
                "fields_affected": None,
                "message": "",
                "action_type": None,
                "status": _REVIEW_GROUPS[action][1],
                "updated_at": iso(created_at),
                "user_id": str(user_id) if user_id is not None else None,
            }
        )
    steps = db.session.scalars(
        select(CollectionStep)
        .where(CollectionStep.privacy_request_id.in_(request_ids))
        .order_by(CollectionStep.run, CollectionStep.id)
    ).all()
    for step in steps:
        found[step.privacy_request_id].extend(_step_entries(step))
    return found


def entries(privacy_request_id: str) -> list[dict[str, Any]]:
    """Every entry of one request, oldest first (``GET /privacy-request/{id}/log``)."""
    return _entries_of([privacy_request_id])[privacy_request_id]


def by_dataset(request_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``verbose=True``'s ``results`` for each request: its entries grouped by dataset (an error without
    one under its connection's key), each without the key it is grouped by, as fidesops nests them."""
    result = {}
    for request_id, found in _entries_of(request_ids).items():
        grouped: dict[str, list[dict[str, Any]]] = {}
        for entry in found:
            group = entry["dataset_name"] or entry["connection_key"]
            grouped.setdefault(group, []).append({k: v for k, v in entry.items() if k != "dataset_name"})
        result[request_id] = grouped
    return result
