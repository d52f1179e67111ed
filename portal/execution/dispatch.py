"""Queueing runs *after* the transaction that made them runnable has committed.

Services call ``schedule(request_id)``; the door that owns the transaction (view, API handler, CLI) calls
``commit_and_run()``, which commits and only then hands the ids to the task backend, so no task can see a
request that is not yet committed. A rolled-back transaction forgets what it scheduled.

Backends (``TASK_BACKEND``): ``inline`` runs in this process; ``celery`` sends ``run_privacy_request(id)``
to Redis for the workers. When the broker cannot be reached the request stays saved, the failure is
audited, and the sweeper queues it once the broker is back (``portal.execution.sweeper``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models.audit import SYSTEM, record

log = logging.getLogger(__name__)

_KEY = "portal_scheduled_runs"
RUN_TASK = "portal.run_privacy_request"
QUEUED_LATER_MESSAGE = "Queued — it will run when the worker is back."


@dataclass(frozen=True)
class Dispatched:
    """What ``commit_and_run`` did with the runs scheduled in the transaction."""

    ids: tuple[str, ...] = ()
    # Handed to workers rather than run in this process: their status changes later.
    background: bool = False
    # The broker could not be reached: saved, and the sweeper queues them later.
    not_enqueued: tuple[str, ...] = ()

    @property
    def queued_later(self) -> bool:
        """True when a view should say QUEUED_LATER_MESSAGE."""
        return bool(self.not_enqueued)


def schedule(request_id: str) -> None:
    db.session.info.setdefault(_KEY, []).append(request_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_KEY, None)


def commit_and_run() -> Dispatched:
    """Commit, then enqueue every run scheduled in this transaction.

    Inline, the runs are claimed in this transaction, so one commit makes both the change and the claims
    durable (a commit less per run than claiming afterwards), and then they run here.
    """
    ids = tuple(dict.fromkeys(db.session.info.pop(_KEY, [])))
    if current_app.config["TASK_BACKEND"] == "inline" and ids:
        from portal.execution import runner

        claims = [(request_id, runner.take_claim(request_id)) for request_id in ids]
        db.session.commit()
        for request_id, token in claims:
            if token is not None:
                runner.run_claimed(request_id, token)
        return Dispatched(ids, False, ())
    db.session.commit()
    failed = tuple(request_id for request_id in ids if not enqueue(request_id))
    return Dispatched(ids, current_app.config["TASK_BACKEND"] == "celery", failed)


def enqueue(request_id: str) -> bool:
    """Start (inline) or queue (celery) a run of a *committed* request; False when the broker is down."""
    if current_app.config["TASK_BACKEND"] == "inline":
        from portal.execution.runner import run_privacy_request

        run_privacy_request(request_id)
        return True
    try:
        current_app.extensions["celery"].send_task(RUN_TASK, args=[request_id])
    except Exception as exc:  # noqa: BLE001 - any broker failure: the request is saved, the sweeper retries
        # The exception text can carry the broker URL and its password: log the type only.
        log.warning(
            "Could not queue the run of %s (%s); the sweeper will queue it when the broker is back.",
            request_id,
            type(exc).__name__,
        )
        _audit_enqueue_failed(request_id, type(exc).__name__)
        return False
    return True


def _audit_enqueue_failed(request_id: str, error: str) -> None:
    """Recorded in a transaction of its own, whatever the caller's session holds."""
    try:
        with db.engine.begin() as connection:
            record(
                SYSTEM,
                "request.enqueue_failed",
                privacy_request_id=request_id,
                connection=connection,
                error=error,
            )
    except Exception as exc:  # noqa: BLE001 - the trail is best effort here; the sweeper still requeues
        log.error("Could not audit the failed enqueue of %s (%s).", request_id, type(exc).__name__)
