"""Celery, for ``PORTAL_TASK_BACKEND=celery``: the app the workers run and the tasks they execute.

    celery -A portal.worker worker --loglevel INFO     # any number of workers, on any hosts
    celery -A portal.worker beat --loglevel INFO       # exactly one: runs the sweeper periodically

``create_app`` calls ``init_celery(app)`` when the backend is celery: web processes only *send* tasks (by
name, ``dispatch.RUN_TASK``). Workers import ``portal.worker.celery``, built on first use from
``create_app()``, so each task runs inside an app context with the web's configuration. Tasks are doors
like views: they take a request id and call the runner, which owns its transactions.
"""

from __future__ import annotations

import functools
import logging

from celery import Celery, Task
from flask import Flask

from portal.execution import dispatch
from portal.notifications import delivery

log = logging.getLogger(__name__)

SWEEP_TASK = "portal.sweep"
NOTIFY_TASK = delivery.SEND_TASK


def init_celery(app: Flask) -> Celery:
    """A Celery app configured from ``app.config``, its tasks run in ``app``'s context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    config = app.config
    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=config["REDIS_URL"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        task_default_queue=config["CELERY_QUEUE"],
        task_ignore_result=True,
        # A run is idempotent (the runner's claim), so a task is acknowledged only once it has finished.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        # A web request must not hang on a dead broker: fail fast, the sweeper queues the run later.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        timezone="UTC",
        beat_schedule={
            "sweep-lost-runs": {"task": SWEEP_TASK, "schedule": float(config["SWEEP_INTERVAL_SECONDS"])},
            # A task of its own rather than part of the sweep: a slow mail server never delays a requeue.
            "send-notifications": {"task": NOTIFY_TASK, "schedule": float(config["SWEEP_INTERVAL_SECONDS"])},
        },
    )
    celery.task(name=dispatch.RUN_TASK, shared=False)(run_privacy_request)
    celery.task(name=SWEEP_TASK, shared=False)(sweep)
    celery.task(name=NOTIFY_TASK, shared=False, bind=True, max_retries=config["NOTIFICATION_MAX_ATTEMPTS"])(
        send_notifications
    )
    app.extensions["celery"] = celery
    return celery


def run_privacy_request(request_id: str) -> None:
    from portal.execution.runner import run_privacy_request as run

    status = run(request_id)
    if status is None:
        log.info("Run of %s skipped: it is not runnable or another run owns it.", request_id)
    else:
        log.info("Run of %s ended in %s.", request_id, status)


def sweep() -> None:
    from portal.execution.sweeper import sweep as run_sweep
    from portal.services.delivery import store_pending_copies
    from portal.services.retention import purge_if_enabled

    for item in run_sweep():
        log.info("Requeued %s (%s).", item.request_id, item.reason)
    stored = store_pending_copies()
    if stored:
        log.info("Wrote %d released package(s) to the release storage destination.", stored)
    purged = purge_if_enabled()
    if purged:
        log.info("Purged %d request(s) under the retention policy.", len(purged))


def send_notifications(task: Task, retry: bool = False) -> None:
    """Build the daily digest when due and send the mails waiting. Queued after a commit that logged mail
    (``retry``: then, while the server refuses, it runs again when the first failed mail is due) and by
    beat every minute (which retries everything due anyway, so it does not schedule retries itself)."""
    report = delivery.run()
    if report.sent or report.failed:
        log.info("Notifications: sent %d, failed %d, skipped %d.", report.sent, report.failed, report.skipped)
    if retry and report.retry_in is not None:
        raise task.retry(countdown=report.retry_in, kwargs={"retry": True})


@functools.cache
def _celery_from_environment() -> Celery:
    from portal import ConfigurationError, create_app

    app = create_app()
    if "celery" not in app.extensions:
        raise ConfigurationError("Workers need PORTAL_TASK_BACKEND=celery (and PORTAL_REDIS_URL).")
    return app.extensions["celery"]


def __getattr__(name: str) -> Celery:
    """``celery -A portal.worker`` looks up ``app`` or ``celery``: built on first use, not on import."""
    if name in ("app", "celery"):
        return _celery_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
