"""The request lifecycle (S4): every status change of a privacy request, and the event it records.

A change is a compare-and-swap on the request's row: it happens only while the request is in one of the
statuses its transition leaves from (and, for a run's own changes, while the run still holds its claim),
so of two concurrent callers exactly one wins; the winner's audit event is written in the same
transaction. ``TRANSITIONS`` is the whole table: no other code writes ``privacy_requests.status``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from portal import extensions  # a module reference: extensions itself imports models.base
from portal.models.audit import Actor, record
from portal.models.base import utcnow
from portal.models.requests import PrivacyRequest, RequestStatus

S = RequestStatus
CREATED = S.PENDING  # every request starts here (``services.privacy_requests.create_request``)
CLOSED = frozenset({S.COMPLETE, S.DENIED, S.CANCELED})  # a request's deadline no longer runs
# The others, as values for SQL: ``status IN (...)`` reads ranges of the (status, due_date) index, where
# ``NOT IN`` CLOSED scanned all of it (an overdue count at 100k requests: 3 rather than 20 ms).
OPEN_VALUES = tuple(sorted(s.value for s in S if s not in CLOSED))


@dataclass(frozen=True)
class Transition:
    action: str  # the audit event it records
    sources: frozenset[RequestStatus]
    target: RequestStatus | None  # None: the status stays (a run's claim is given back)


def _t(action: str, sources: set[RequestStatus], target: RequestStatus | None) -> Transition:
    return Transition(action, frozenset(sources), target)


TRANSITIONS: dict[str, Transition] = {
    "approve": _t("request.approved", {S.PENDING}, S.APPROVED),
    "deny": _t("request.denied", {S.PENDING}, S.DENIED),
    # A run starts from approved, from pending when approval is not required (the caller says which), or
    # from in_processing without a claim (resumed, or given back by the sweeper).
    "claim": _t("request.run_started", {S.APPROVED, S.PENDING, S.IN_PROCESSING}, S.IN_PROCESSING),
    "wait_for_input": _t("request.requires_input", {S.IN_PROCESSING}, S.REQUIRES_INPUT),
    "complete": _t("request.completed", {S.IN_PROCESSING}, S.COMPLETE),
    "fail": _t("request.errored", {S.IN_PROCESSING}, S.ERROR),
    "resume": _t("request.resumed", {S.REQUIRES_INPUT}, S.IN_PROCESSING),
    "retry": _t("request.retried", {S.ERROR}, S.APPROVED),
    "cancel": _t(
        "request.canceled", {S.PENDING, S.APPROVED, S.REQUIRES_INPUT, S.ERROR, S.PAUSED}, S.CANCELED
    ),
    "requeue": _t("request.requeued", {S.APPROVED, S.PENDING, S.IN_PROCESSING}, None),
    # A reviewer sends the package back: the systems named must be entered again (services.delivery).
    "send_back": _t("request.sent_back", {S.COMPLETE}, S.REQUIRES_INPUT),
}
# The changes a run makes to its own request: only while it still holds its claim.
RUN_OWN = frozenset({"wait_for_input", "complete", "fail"})

_requests = PrivacyRequest.__table__


@functools.lru_cache(maxsize=64)
def _statement(
    name: str, sources: frozenset[str], claimed_by: bool, unclaimed: bool, unchanged: bool, columns: tuple
):
    """The compare-and-swap UPDATE of one transition and shape of conditions; values are bound."""
    transition = TRANSITIONS[name]
    c = _requests.c
    conditions = [c.id == bindparam("request_id"), c.status.in_(sorted(sources))]
    if claimed_by:
        conditions.append(c.runner_claim == bindparam("claimed_by"))
    if unclaimed:
        conditions.append(c.runner_claim.is_(None))
    if unchanged:
        conditions.append(c.updated_at == bindparam("unchanged_since"))
    values: dict[str, Any] = {"updated_at": bindparam("now")}
    if transition.target is not None:
        values["status"] = transition.target.value
    if name == "claim":
        values.update(
            runner_claim=bindparam("claim"),
            claimed_at=bindparam("now"),
            started_processing_at=func.coalesce(c.started_processing_at, bindparam("now")),
            error_message=None,
        )
    else:
        values.update(runner_claim=None, claimed_at=None)
    values.update({column: bindparam(f"value_{column}") for column in columns})
    return update(_requests).where(*conditions).values(**values)


def change(
    request_id: str,
    name: str,
    actor: Actor,
    *,
    sources: set[RequestStatus] | None = None,
    claimed_by: str | None = None,
    unclaimed: bool = False,
    unchanged_since: datetime | None = None,
    claim: str | None = None,
    values: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> bool:
    """Make transition ``name`` if the request is still in one of its source statuses (``sources``
    narrows them), and record its event; True when this call made it, False when the request was not in
    a state that allows it (nothing written).

    ``claimed_by``: only while the run holds this claim (a run's own changes must name it); ``unclaimed``:
    only while no run holds one; ``unchanged_since``: only while ``updated_at`` is still that (the
    sweeper). ``claim``: the claim a ``claim`` transition takes. ``values``: other columns to set. ``at``:
    the time of the change (default now; the sweeper passes the time it swept at).
    """
    transition = TRANSITIONS[name]
    allowed = transition.sources if sources is None else transition.sources & set(sources)
    if name in RUN_OWN and claimed_by is None:
        raise ValueError(f"'{name}' is a run's own change: it needs the run's claim")
    if name == "claim" and claim is None:
        raise ValueError("'claim' needs the claim it takes")
    values = values or {}
    statement = _statement(
        name,
        frozenset(s.value for s in allowed),
        claimed_by is not None,
        unclaimed,
        unchanged_since is not None,
        tuple(sorted(values)),
    )
    params = {
        "request_id": request_id,
        "now": at or utcnow(),
        "claimed_by": claimed_by,
        "unchanged_since": unchanged_since,
        "claim": claim,
        **{f"value_{column}": value for column, value in values.items()},
    }
    if extensions.run(statement, params).rowcount != 1:
        return False
    record(actor, transition.action, privacy_request_id=request_id, **(details or {}))
    return True


_STATUS = select(_requests.c.status).where(_requests.c.id == bindparam("request_id"))


def current_status(request_id: str) -> str | None:
    """The request's status as stored now (None: no such request), without loading the request."""
    return extensions.run(_STATUS, {"request_id": request_id}).scalar()
