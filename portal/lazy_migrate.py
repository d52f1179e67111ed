"""Flask-Migrate, loaded on first use: the `flask db` commands and migrations need it, web workers do not.

Importing Flask-Migrate imports Alembic and Mako (~12 MB in every process). A web worker that signs a user
in also holds Argon2's 64 MiB for a moment, and its peak must stay under 150 MB (issue 9), so the web
processes never import them. ``app.extensions["migrate"]`` and the ``db`` command group look exactly like
Flask-Migrate's own (``flask_migrate.upgrade()`` and ``migrations/env.py`` use them unchanged); the real
objects are created the first time something reads them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import click

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
    def init_app(self, app, db, directory: str) -> None:
        app.extensions["migrate"] = LazyMigrateConfig(db, str(directory))
        app.cli.add_command(LazyMigrateCommands())
