"""``GET /healthz`` for load balancers and orchestrators: public, and it tells nothing but up or down.

200 ``{"status": "ok"}`` when the database answers ``SELECT 1`` and, with the celery backend, the broker
answers ``PING``; otherwise 503 ``{"status": "unavailable"}``. What failed goes to the log, never into the
response.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, send_from_directory
from sqlalchemy import text

from portal.extensions import db

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        db.session.rollback()
        log.warning("Health check: database unavailable (%s).", type(exc).__name__)
        return False
    return True


def _broker_ok() -> bool:
    if current_app.config["TASK_BACKEND"] != "celery":
        return True
    import redis  # only with the celery backend: the inline web processes never load it (~6 MB each)

    client = redis.Redis.from_url(
        current_app.config["REDIS_URL"],
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        log.warning("Health check: broker unavailable (%s).", type(exc).__name__)
        return False
    finally:
        client.close()
    return True


def healthz():
    healthy = _database_ok() and _broker_ok()
    response = jsonify(status="ok" if healthy else "unavailable")
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def favicon():
    """The icon browsers ask for at the root on every page (an SVG is declared too; this serves the rest)."""
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon")


def init_app(app: Flask) -> None:
    # The endpoints are exactly "healthz" and "favicon": they are listed in portal.auth.PUBLIC_ENDPOINTS.
    app.add_url_rule("/healthz", endpoint="healthz", view_func=healthz, methods=["GET"])
    app.add_url_rule("/favicon.ico", endpoint="favicon", view_func=favicon, methods=["GET"])
