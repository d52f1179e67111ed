"""Every place the portal changes how a library works, each kept for a saving measured in-process
(``python -m bench.inprocess``, ``--without`` a patch) and guarded by ``tests/test_patches.py``, which
fails when the library under it changes shape.

1. **Flask-Limiter's request hooks run for rate-limited views only** (``limit_marked_views_only``). Its
   before-request, after-request and teardown hooks otherwise run on every request to find that a view
   has no limit: 0.1–0.2 ms of CPU a request, 3–9% of a form save's CPU time, 2–4% of a page's. Relies on
   ``Limiter.init_app`` registering three app-wide hooks that are the limiter's own methods; a view is
   marked by ``portal.extensions.rate_limited``.
2. **A read-only request on PostgreSQL ends with COMMIT, not ROLLBACK** (``keep_prepared_statements``),
   so psycopg keeps the statements it prepared on the connection: 7–14% of a queue page's time and 11–19%
   of a form save's on PostgreSQL. Relies on psycopg forgetting prepared statements at ROLLBACK, and on
   Flask-SQLAlchemy removing the session in a teardown registered before ours (teardowns run last first).
3. **Flask-Migrate loaded on first use** (``LazyMigrate``): Flask-Migrate imports Alembic and Mako, which
   web and worker processes never use: without them a process holds about 10 MB less after
   ``create_app`` (83 rather than 93 MB) and starts 0.1–0.2 s sooner. Relies on what Flask-Migrate keeps
   in ``app.extensions["migrate"]`` and on its ``db`` command group.

Tried and dropped for saving less than a few percent: a compact JSON session serializer (about 15 µs a
request once a save stopped writing the session) and autocommit reads after a request's last commit (one
BEGIN/COMMIT round trip, about 0.1 ms of a 15 ms resume).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import click
from flask import current_app, request
from sqlalchemy import event

# --- 1. Flask-Limiter: hooks for marked views only ----------------------------------------------------


def _marked_view() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "rate_limited", False)


def is_limiter_hook(function, limiter) -> bool:
    """Whether ``function`` is one of the hooks ``limiter.init_app`` registers (a bound method of the
    limiter, or a ``functools.partial`` over it)."""
    return getattr(function, "__self__", None) is limiter or (getattr(function, "args", ())[:1] == (limiter,))


def limit_marked_views_only(app, limiter) -> None:
    """Call after ``limiter.init_app(app)``: its before-request, after-request and teardown hooks then run
    for views marked by ``rate_limited`` only. Raises if it finds other than those three (a Flask-Limiter
    upgrade that registers them otherwise must not leave sign-in unlimited unnoticed)."""

    def before(hook):
        return lambda: hook() if _marked_view() else None

    def after(hook):
        return lambda response: hook(response) if _marked_view() else response

    def teardown(hook):
        return lambda exc=None: hook(exc) if _marked_view() else None

    found = 0
    for registry, wrap in (
        (app.before_request_funcs, before),
        (app.after_request_funcs, after),
        (app.teardown_request_funcs, teardown),
    ):
        hooks = registry.get(None, [])
        for index, hook in enumerate(hooks):
            if is_limiter_hook(hook, limiter):
                hooks[index] = wrap(hook)
                found += 1
    if found != 3:
        raise RuntimeError(f"expected Flask-Limiter's three request hooks, found {found}")


# --- 2. PostgreSQL: keep prepared statements across requests -------------------------------------------
# psycopg prepares a statement on a connection once it has run it five times, so PostgreSQL stops planning
# it again; but every ROLLBACK makes psycopg forget all of them (a rolled-back transaction may have dropped
# what they refer to). Flask-SQLAlchemy ends every request by rolling back, so pages that only read
# threw their prepared statements away each time and were planned again on the next request. A request
# whose transaction ran nothing but SELECTs ends with COMMIT instead: for a transaction that wrote nothing
# the two are the same, and the statements stay prepared. Anything else — a write, a failed statement,
# pending ORM changes, an exception — still rolls back.

_WROTE = "portal.transaction_wrote"
_SESSION_CONNECTION = "portal.connection"


def _transaction_began(conn) -> None:
    conn.info[_WROTE] = False


def _statement_ran(conn, cursor, statement, parameters, context, executemany) -> None:
    if not statement.startswith("SELECT"):
        conn.info[_WROTE] = True


def _statement_failed(context) -> None:
    if context.connection is not None:
        context.connection.info[_WROTE] = True


def _session_began(session, transaction, connection) -> None:
    session.info[_SESSION_CONNECTION] = connection


def _end_read_only_transaction(db, exc: BaseException | None) -> None:
    if exc is not None:
        return
    session = db.session()
    connection = session.info.get(_SESSION_CONNECTION)
    if connection is None or not session.in_transaction() or connection.closed:
        return
    if connection.info.get(_WROTE) is not False or not connection.in_transaction():
        return
    if session.new or session.dirty or session.deleted:
        return
    try:
        session.commit()
    except Exception:  # noqa: BLE001 - the request is answered; Flask-SQLAlchemy's teardown rolls back
        session.rollback()


def keep_prepared_statements(app, db) -> None:
    """Install the above for ``app``'s engine when it is PostgreSQL (SQLite's statement cache survives
    rollbacks). Call after ``db.init_app(app)``: this teardown then runs before Flask-SQLAlchemy's, which
    finds nothing left to roll back."""
    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "postgresql":
            return
        event.listen(engine, "begin", _transaction_began)
        event.listen(engine, "before_cursor_execute", _statement_ran)
        event.listen(engine, "handle_error", _statement_failed)
    event.listen(db.session, "after_begin", _session_began)
    app.teardown_appcontext(lambda exc=None: _end_read_only_transaction(db, exc))


# --- 3. Flask-Migrate, loaded on first use -------------------------------------------------------------
# ``app.extensions["migrate"]`` and the ``db`` command group look exactly like Flask-Migrate's own
# (``flask_migrate.upgrade()`` and ``migrations/env.py`` use them unchanged); the real objects are created
# the first time something reads them.

MIGRATE_OPTIONS = {"compare_type": True, "render_as_batch": True}  # Flask-Migrate's defaults


class LazyMigrateConfig:
    """What Flask-Migrate keeps in ``app.extensions["migrate"]``; ``.migrate`` imports it when first read."""

    def __init__(self, db, directory: str):
        self.db = db
        self.directory = directory
        self.configure_args: dict[str, Any] = dict(MIGRATE_OPTIONS)

    @cached_property
    def migrate(self):
        from flask_migrate import Migrate

        return Migrate(db=self.db, directory=self.directory, **MIGRATE_OPTIONS)

    @property
    def metadata(self):
        return self.db.metadata


class LazyMigrateCommands(click.Group):
    """``flask db ...``: Flask-Migrate's own command group (its options, callback and subcommands),
    imported when the command is used."""

    def __init__(self) -> None:
        super().__init__("db", help="Perform database migrations.", callback=self._real_callback)

    def _real_callback(self, **params: Any) -> Any:
        return click.get_current_context().invoke(self.real.callback, **params)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self.real.get_params(ctx)

    @cached_property
    def real(self) -> click.Group:
        from flask_migrate.cli import db

        return db

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self.real.list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.real.get_command(ctx, name)


class LazyMigrate:
    """Stands in for ``flask_migrate.Migrate`` in ``portal.extensions``."""

    def init_app(self, app, db, directory: str) -> None:
        app.extensions["migrate"] = LazyMigrateConfig(db, str(directory))
        app.cli.add_command(LazyMigrateCommands())
