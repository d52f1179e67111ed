"""Extension objects, unbound: ``create_app`` binds them; every module imports them from here."""

from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mailman import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from portal.lazy_migrate import LazyMigrate
from portal.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = LazyMigrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def rate_limited(*args, **kwargs):
    """``limiter.limit(*args, **kwargs)``, and a mark on the view: only marked views are checked.

    There are no default limits, and the limiter's per-request hooks run only for marked views
    (``limit_marked_views_only``): on every other request they found nothing to check, at a twentieth of
    a form save's cost (issue 9). A limit must be declared with this decorator, not ``limiter.limit``
    directly, or it is never checked (``tests/test_auth.py``).
    """
    limit = limiter.limit(*args, **kwargs)

    def decorator(view):
        view = limit(view)
        view.rate_limited = True
        return view

    return decorator


def _marked_view() -> bool:
    from flask import current_app, request

    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "rate_limited", False)


def _limiter_hook(function) -> bool:
    """Whether ``function`` is one of the hooks ``limiter.init_app`` registered (a bound method of the
    limiter, or a ``functools.partial`` over it)."""
    return getattr(function, "__self__", None) is limiter or (getattr(function, "args", ())[:1] == (limiter,))


def limit_marked_views_only(app) -> None:
    """Call after ``limiter.init_app(app)``: its before-request, after-request and teardown hooks then run
    for views marked by ``rate_limited`` only. Raises if it finds none of them (a Flask-Limiter upgrade
    that registers them otherwise must not leave sign-in unlimited unnoticed)."""

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
            if _limiter_hook(hook):
                hooks[index] = wrap(hook)
                found += 1
    if found != 3:
        raise RuntimeError(f"expected Flask-Limiter's three request hooks, found {found}")


bootstrap = Bootstrap5()
# Flask-Mailman: ``portal.notifications.init_app`` picks its backend (SMTP, or the console without a server).
mail = Mail()


def run(statement, params=None):
    """Execute a Core statement on the session's connection, in its transaction, after flushing pending
    ORM changes as ``db.session.execute`` would, but without the ORM's per-statement setup (a tenth of a
    millisecond a query; issue 9). For column SELECTs and Core DML on hot paths; results are Core rows.
    """
    session = db.session()
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)


def read_without_transaction() -> None:
    """For reads after a request's last commit (an answer's fresh row): on PostgreSQL the session's next
    statements run in autocommit, so they cost no BEGIN and no COMMIT round trip (two of a resume's 25;
    issue 9). Call it only when the session is between transactions; the pool restores the connection's
    mode when it is returned. Nothing is written this way: every write still runs in a transaction."""
    session = db.session()
    if not session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


# --- PostgreSQL: keep prepared statements across requests -------------------------------------------------
# psycopg prepares a statement on a connection once it has run it five times, so PostgreSQL stops planning
# it again; but every ROLLBACK makes psycopg forget all of them (a rolled-back transaction may have dropped
# what they refer to). Flask-SQLAlchemy ends every request by rolling back, so pages that only read
# threw their prepared statements away each time and were planned again on the next request. A request
# whose transaction ran nothing but SELECTs ends with COMMIT instead: for a transaction that wrote nothing
# the two are the same, and the statements stay prepared. Anything else — a write, a failed statement,
# pending ORM changes, an exception — still rolls back.

_WROTE = "portal.transaction_wrote"


def _transaction_began(conn) -> None:
    conn.info[_WROTE] = False


def _statement_ran(conn, cursor, statement, parameters, context, executemany) -> None:
    if not statement.startswith("SELECT"):
        conn.info[_WROTE] = True


def _statement_failed(context) -> None:
    if context.connection is not None:
        context.connection.info[_WROTE] = True


def _end_read_only_transaction(exc: BaseException | None) -> None:
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


_SESSION_CONNECTION = "portal.connection"


def _session_began(session, transaction, connection) -> None:
    session.info[_SESSION_CONNECTION] = connection


def keep_prepared_statements(app) -> None:
    """Install the above for ``app``'s engine when it is PostgreSQL (SQLite's statement cache survives
    rollbacks). Its teardown runs before Flask-SQLAlchemy's, which then finds nothing left to roll back."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "postgresql":
            return
        event.listen(engine, "begin", _transaction_began)
        event.listen(engine, "before_cursor_execute", _statement_ran)
        event.listen(engine, "handle_error", _statement_failed)
    event.listen(db.session, "after_begin", _session_began)
    app.teardown_appcontext(_end_read_only_transaction)
