"""What each patch of ``portal.patches`` relies on in its library: these fail first when an upgrade changes
it, naming the patch to revisit (its behaviour is tested beside the feature: test_auth, test_transactions,
test_migrations, test_scale_queries)."""

from __future__ import annotations

import inspect

import click
import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from portal.extensions import db, limiter
from portal.patches import MIGRATE_OPTIONS, LazyMigrateCommands, LazyMigrateConfig, is_limiter_hook

# --- 1. Flask-Limiter ----------------------------------------------------------------------------------


def test_flask_limiter_registers_the_three_request_hooks_the_patch_wraps():
    """``limit_marked_views_only`` wraps exactly these: one before-request hook called with nothing, one
    after-request hook with the response, one teardown with the exception, all the limiter's own."""
    app = Flask("bare")
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    own = Limiter(key_func=get_remote_address, default_limits=[])
    own.init_app(app)

    hooks = {
        "before": [h for h in app.before_request_funcs.get(None, []) if is_limiter_hook(h, own)],
        "after": [h for h in app.after_request_funcs.get(None, []) if is_limiter_hook(h, own)],
        "teardown": [h for h in app.teardown_request_funcs.get(None, []) if is_limiter_hook(h, own)],
    }

    assert {name: len(found) for name, found in hooks.items()} == {"before": 1, "after": 1, "teardown": 1}
    # Called as the wrappers call them (a TypeError here means a new signature).
    inspect.signature(hooks["before"][0]).bind()
    inspect.signature(hooks["after"][0]).bind("response")
    inspect.signature(hooks["teardown"][0]).bind(None)


def test_the_portals_limiter_hooks_are_all_wrapped(app):
    registries = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    assert not [
        hook for registry in registries for hook in registry.get(None, []) if is_limiter_hook(hook, limiter)
    ]


# --- 2. PostgreSQL: COMMIT a read-only request ---------------------------------------------------------


def test_flask_sqlalchemy_removes_the_session_in_a_teardown_that_runs_after_ours(app):
    """Flask runs app-context teardowns last registered first: ours must come after Flask-SQLAlchemy's
    ``_teardown_session`` in the list, so that it commits before the session is removed (rolled back)."""
    funcs = app.teardown_appcontext_funcs
    assert db._teardown_session in funcs
    ours = [i for i, f in enumerate(funcs) if f.__qualname__.startswith("keep_prepared_statements")]
    if db.engine.dialect.name != "postgresql":
        assert ours == []  # SQLite's statement cache survives a rollback: nothing to keep
        return
    assert len(ours) == 1 and ours[0] > funcs.index(db._teardown_session)


def test_psycopg_forgets_prepared_statements_at_rollback_and_keeps_them_at_commit(app):
    """Why the patch exists: if psycopg kept them through a ROLLBACK too, it would save nothing."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL driver's behaviour")
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    count = "SELECT count(*) FROM pg_prepared_statements"
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        assert conn.prepare_threshold is not None
        runs = conn.prepare_threshold + 1
        for n in range(runs):
            conn.execute("SELECT %s::int + 1", (n,))
        assert conn.execute(count).fetchone()[0] >= 1
        conn.rollback()
        assert conn.execute(count).fetchone()[0] == 0
        for n in range(runs):
            conn.execute("SELECT %s::int + 1", (n,))
        conn.commit()
        assert conn.execute(count).fetchone()[0] >= 1


# --- 3. Flask-Migrate, loaded on first use ---------------------------------------------------------------


def test_flask_migrate_keeps_what_the_lazy_config_stands_in_for(tmp_path):
    from flask_migrate import Migrate, _MigrateConfig

    real_migrate = Migrate(db=db, directory=str(tmp_path))
    real = _MigrateConfig(real_migrate, db, **real_migrate.alembic_ctx_kwargs)
    lazy = LazyMigrateConfig(db, str(tmp_path))

    assert real_migrate.alembic_ctx_kwargs == MIGRATE_OPTIONS  # its defaults, which the lazy one passes on
    assert sorted(vars(real)) == ["configure_args", "db", "directory", "migrate"]
    assert (lazy.db, lazy.directory, lazy.configure_args) == (real.db, real.directory, real.configure_args)
    assert lazy.metadata is real.metadata
    assert isinstance(lazy.migrate, Migrate) and lazy.migrate.directory == str(tmp_path)


def test_flask_migrate_has_the_db_command_group_the_lazy_one_forwards_to():
    from flask_migrate.cli import db as real

    lazy = LazyMigrateCommands()
    with click.Context(lazy) as ctx:
        assert isinstance(real, click.Group) and callable(real.callback)
        assert {"upgrade", "downgrade", "current", "migrate"} <= set(lazy.list_commands(ctx))
        assert lazy.list_commands(ctx) == real.list_commands(ctx)
        assert lazy.get_command(ctx, "upgrade") is real.get_command(ctx, "upgrade")
        assert [p.name for p in lazy.get_params(ctx)] == [p.name for p in real.get_params(ctx)]


def test_the_app_does_not_import_flask_migrate(app):
    """The saving itself (a web process without Alembic) is tested in a fresh process in
    test_scale_queries; here: the portal's app carries the stand-ins."""
    assert isinstance(app.extensions["migrate"], LazyMigrateConfig)
    assert isinstance(app.cli.commands["db"], LazyMigrateCommands)
