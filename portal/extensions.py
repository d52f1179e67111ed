"""Extension objects, unbound: ``create_app`` binds them; every module imports them from here."""

from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mailman import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from portal.models.base import Base
from portal.patches import LazyMigrate

db = SQLAlchemy(model_class=Base)
migrate = LazyMigrate()  # Flask-Migrate, imported only by the commands that use it (portal.patches)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
bootstrap = Bootstrap5()
mail = Mail()  # Flask-Mailman: notification mails (portal.notifications)


def rate_limited(*args, **kwargs):
    """``limiter.limit(*args, **kwargs)``, and a mark on the view: only marked views are checked.

    There are no default limits, and the limiter's per-request hooks run only for marked views
    (``portal.patches.limit_marked_views_only``). A limit must be declared with this decorator, not
    ``limiter.limit`` directly, or it is never checked (``tests/test_auth.py``).
    """
    limit = limiter.limit(*args, **kwargs)

    def decorator(view):
        view = limit(view)
        view.rate_limited = True
        return view

    return decorator


def run(statement, params=None):
    """Execute a Core statement on the session's connection, in its transaction, after flushing pending
    ORM changes as ``db.session.execute`` would, but without the ORM's per-statement setup (20 rather than
    50 µs for a one-row SELECT, measured in-process). For column SELECTs and Core DML on hot paths; results
    are Core rows.
    """
    session = db.session()
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)
