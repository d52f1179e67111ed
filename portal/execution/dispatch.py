"""Queueing runs *after* the transaction that made them runnable has committed.

Services call ``schedule(request_id)``; the door that owns the transaction (view, API handler, CLI) calls
``commit_and_run()``, which commits and only then hands the ids to the task backend. A rolled-back
transaction forgets what it scheduled.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import db

_KEY = "portal_scheduled_runs"


def schedule(request_id: str) -> None:
    db.session.info.setdefault(_KEY, []).append(request_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_KEY, None)


def commit_and_run() -> list[str]:
    """Commit, then enqueue every run scheduled in this transaction; returns the ids enqueued."""
    ids = list(dict.fromkeys(db.session.info.pop(_KEY, [])))
    db.session.commit()
    for request_id in ids:
        enqueue(request_id)
    return ids


def enqueue(request_id: str) -> None:
    """Run now (``inline``, the embedded default). Config validation admits no other backend yet."""
    from portal.execution.runner import run_privacy_request

    assert current_app.config["TASK_BACKEND"] == "inline"
    run_privacy_request(request_id)
