"""Extension objects, unbound: ``create_app`` binds them; every module imports them from here."""

from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
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

    There are no default limits, so the limiter's per-request lookup of every other route finds nothing;
    skipping it saves a tenth of a millisecond on every request (issue 9). A limit must be declared with
    this decorator, not ``limiter.limit`` directly, or it is never checked (``tests/test_auth.py``).
    """
    limit = limiter.limit(*args, **kwargs)

    def decorator(view):
        view = limit(view)
        view.rate_limited = True
        return view

    return decorator


@limiter.request_filter
def _not_rate_limited() -> bool:
    from flask import current_app, request

    view = current_app.view_functions.get(request.endpoint or "")
    return not getattr(view, "rate_limited", False)


bootstrap = Bootstrap5()


def run(statement, params=None):
    """Execute a Core statement on the session's connection, in its transaction, after flushing pending
    ORM changes as ``db.session.execute`` would, but without the ORM's per-statement setup (a tenth of a
    millisecond a query; issue 9). For column SELECTs and Core DML on hot paths; results are Core rows.
    """
    session = db.session()
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)
