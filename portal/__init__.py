"""The Manual Webhook Portal: ``create_app`` reads config, binds extensions, registers everything."""

from __future__ import annotations

import logging
import os
import re

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from portal.config import DEFAULT_SECRET_KEY, ConfigurationError, DefaultConfig

TASK_BACKENDS = ("inline", "celery")


def _load_config(app: Flask, test_config: dict | None) -> None:
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PORTAL")
    if test_config:
        app.config.from_mapping(test_config)
    url = app.config.get("DATABASE_URL") or ("sqlite:///" + os.path.join(app.instance_path, "portal.sqlite3"))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if app.config["TASK_BACKEND"] not in TASK_BACKENDS:
        raise ConfigurationError(
            "PORTAL_TASK_BACKEND must be 'inline' (runs happen in the web process) or 'celery' (runs are "
            f"queued on Redis for workers), not {app.config['TASK_BACKEND']!r}."
        )
    minutes = app.config["OAUTH_TOKEN_MINUTES"]
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ConfigurationError(
            f"PORTAL_OAUTH_TOKEN_MINUTES must be a whole number of minutes, at least 1, not {minutes!r}."
        )
    for name, unit in (
        ("DELIVERY_LINK_DAYS", "days"),
        ("DELIVERY_CODE_MINUTES", "minutes"),
        ("DELIVERY_CODE_ATTEMPTS", "tries"),
        ("DELIVERY_SESSION_MINUTES", "minutes"),
    ):
        value = app.config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"PORTAL_{name} must be a whole number of {unit}, at least 1, not {value!r}."
            )
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        # Every web process must count sign-in failures in one place: Redis when there is one, else the
        # database (portal.rate_limits); memory would give each gunicorn worker limits of its own.
        celery = app.config["TASK_BACKEND"] == "celery"
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] if celery else "database://"
    if not (app.debug or app.testing) and app.config["SECRET_KEY"] in (DEFAULT_SECRET_KEY, "", None):
        raise ConfigurationError(
            "Refusing to start with the default secret key. Set PORTAL_SECRET_KEY (or SECRET_KEY in "
            "instance/config.py) to a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`."
        )


_QUERY_STRING = re.compile(r"\?[^\s\x1b]*")  # up to the protocol, or to the colour code that ends the path
_DELIVERY_TOKEN = re.compile(r"(/delivery/)[A-Za-z0-9_-]+")  # a data subject's link is a secret


def _without_query_strings(record: logging.LogRecord) -> bool:
    """The development server (``flask run``, ``make run``) logs each request line with its query string,
    which may hold what a client put there (``?identity=<email>``): cut it, as gunicorn.conf.py does."""
    if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
        line = _DELIVERY_TOKEN.sub(r"\1…", _QUERY_STRING.sub("", record.args[0]))
        record.args = (line, *record.args[1:])
    return True


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Foreign keys on, and a busy timeout so web and worker processes can share the file (every SQLite
    engine: the portal's own, and read-only collection sources)."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def _portal_sqlite_wal(dbapi_connection, connection_record) -> None:
    """The portal's own SQLite file in write-ahead-log mode (never a collection source's: those are
    opened read-only, and their journal mode is their owner's business).

    Pages read while a save commits, and a commit appends to the log instead of writing and deleting a
    rollback journal. ``synchronous=FULL`` keeps every commit durable through a power cut, as before:
    what staff typed must not vanish with the second before it.
    """
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file; an in-memory database says "memory"
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()


def create_app(test_config: dict | None = None, instance_path: str | None = None) -> Flask:
    """``instance_path`` (absolute; else ``$PORTAL_INSTANCE_PATH``) replaces ``<project>/instance``."""
    app = Flask(
        __name__,
        instance_path=instance_path or os.environ.get("PORTAL_INSTANCE_PATH") or None,
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    from portal.uploads import PortalRequest

    app.request_class = PortalRequest  # uploaded files stay encrypted while a request is parsed
    _load_config(app, test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    logging.getLogger("werkzeug").addFilter(_without_query_strings)  # added once, however many apps
    if not app.testing:
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    import portal.models  # noqa: F401  (registers every table on the metadata)
    from portal import crypto
    from portal.extensions import bootstrap, csrf, db, limiter, login_manager, migrate
    from portal.patches import keep_prepared_statements, limit_marked_views_only

    crypto.init_app(app)
    db.init_app(app)
    with app.app_context():
        event.listen(db.engine, "connect", _portal_sqlite_wal)
    keep_prepared_statements(app, db)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    csrf.init_app(app)
    from portal import rate_limits  # noqa: F401  (registers the database:// rate-limit storage)

    limiter.init_app(app)
    limit_marked_views_only(app, limiter)
    bootstrap.init_app(app)
    login_manager.init_app(app)
    from portal import notifications

    notifications.init_app(app)
    from portal.services import delivery

    delivery.init()

    from portal import auth, errors, headers, health, key_check, templating
    from portal.admin import bp as admin_bp
    from portal.api import bp as api_bp
    from portal.auth import bp as auth_bp
    from portal.cli import register_cli
    from portal.dashboard import bp as dashboard_bp
    from portal.delivery import bp as delivery_bp
    from portal.notifications.views import bp as notifications_bp
    from portal.notifications.views import public_bp as unsubscribe_bp
    from portal.packages import bp as packages_bp
    from portal.requests import bp as requests_bp
    from portal.requests.tasks import bp as tasks_bp
    from portal.routing import DatabaseIdConverter
    from portal.security import reject_null_bytes

    app.url_map.converters["id"] = DatabaseIdConverter  # before any blueprint adds a rule using it
    app.before_request(reject_null_bytes)
    auth.init_login(app)
    templating.init_app(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(requests_bp)
    app.register_blueprint(tasks_bp)
    app.register_blueprint(packages_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(unsubscribe_bp)
    app.register_blueprint(delivery_bp)
    app.register_blueprint(api_bp)
    errors.register(app)
    headers.init_app(app)
    register_cli(app)
    health.init_app(app)
    key_check.verify_encryption_key(app)
    if app.config["TASK_BACKEND"] == "celery":
        from portal.worker import init_celery

        init_celery(app)
    return app
