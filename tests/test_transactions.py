"""How a request's transaction ends (``portal.patches.keep_prepared_statements``): on PostgreSQL a request
that only read ends with COMMIT, so psycopg keeps its prepared statements; anything that wrote without
committing is still rolled back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import abort

from portal import create_app
from portal.extensions import db, run
from portal.models import AuditEvent, utcnow

ACTION = "test.transaction_end"


def _insert_event():
    return sa.insert(AuditEvent.__table__).values(
        created_at=utcnow(), actor_type="system", actor_label="test", action=ACTION, details={}
    )


@pytest.fixture
def bare(app_config):
    """An app with a few routes that read or write and never commit, used outside any outer app context
    (so each request ends its own, as in production)."""
    app = create_app(app_config)

    @app.get("/_test/read")
    def read():
        return str(run(sa.select(sa.func.count()).select_from(AuditEvent.__table__)).scalar())

    @app.get("/_test/core-write")
    def core_write():
        run(_insert_event())
        return "written, not committed"

    @app.get("/_test/orm-pending")
    def orm_pending():
        run(sa.select(sa.literal(1)))
        db.session.add(AuditEvent(actor_type="system", actor_label="test", action=ACTION, details={}))
        return "added, not flushed"

    @app.get("/_test/write-then-fail")
    def write_then_fail():
        run(_insert_event())
        abort(500)

    @app.get("/_test/prepared")
    def prepared():
        return str(run(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar())

    ends: list[str] = []
    with app.app_context():
        sa.event.listen(db.engine, "commit", lambda conn: ends.append("commit"))
        sa.event.listen(db.engine, "rollback", lambda conn: ends.append("rollback"))
    app.ends = ends
    yield app
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.delete(AuditEvent.__table__).where(AuditEvent.action == ACTION))
        db.engine.dispose()


def _stored(app) -> int:
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(AuditEvent.__table__).where(AuditEvent.action == ACTION)
        ).scalar()


@pytest.mark.parametrize("path", ["/_test/core-write", "/_test/orm-pending", "/_test/write-then-fail"])
def test_a_request_that_wrote_without_committing_is_rolled_back(bare, path):
    client = bare.test_client()

    client.get(path)

    assert _stored(bare) == 0
    assert bare.ends[-1:] == ["rollback"]
    assert "commit" not in bare.ends


def test_a_read_only_request_ends_with_commit_on_postgresql_and_keeps_prepared_statements(bare):
    client = bare.test_client()
    postgresql = bare.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")

    for _ in range(6):  # psycopg prepares a statement the fifth time it runs on a connection
        assert client.get("/_test/read").status_code == 200

    if not postgresql:  # SQLite: rolled back as ever (its statement cache does not care)
        assert set(bare.ends) == {"rollback"}
        return
    assert bare.ends == ["commit"] * 6
    assert int(client.get("/_test/prepared").get_data(as_text=True)) >= 1
