"""What the benchmark fixes promise: lists stay correct when they are read the fast way.

Large totals are cached for a minute, pages are read through their ids, the gate's field lists are cached
per (webhook, version), the queue's page links are only the ones shown, and web processes never import
Alembic.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cachetools import TTLCache

from portal import cache
from portal.execution import gate
from portal.extensions import db
from portal.models import ManualWebhook, PrivacyRequest, utcnow
from portal.services import manual_inputs, request_lists, webhooks
from tests.conftest import TEST_KEY
from tests.workflow_helpers import STAFF, add_webhook, field, new_request


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def small_count_limit(monkeypatch, clock):
    monkeypatch.setattr(request_lists, "EXACT_COUNT_LIMIT", 2)
    monkeypatch.setattr(
        cache, "large_counts", TTLCache(maxsize=100, ttl=cache.LARGE_COUNT_SECONDS, timer=clock)
    )
    return request_lists


def test_a_small_total_is_exact_on_every_page(app, small_count_limit):
    new_request("one@example.com")
    assert request_lists.list_requests().total == 1
    new_request("two@example.com")
    assert request_lists.list_requests().total == 2


def test_a_large_total_is_reused_for_a_minute_then_counted_again(app, small_count_limit, clock):
    for n in range(3):
        new_request(f"s{n}@example.com")
    assert request_lists.list_requests().total == 3
    new_request("late@example.com")
    page = request_lists.list_requests()
    assert page.total == 3  # the cached total: counting every row again on each page is what it avoids
    assert len(page.items) == 4  # the rows themselves are always current
    clock.now += cache.LARGE_COUNT_SECONDS + 1
    assert request_lists.list_requests().total == 4


def test_filtered_totals_are_cached_separately(app, small_count_limit):
    for n in range(3):
        new_request(f"s{n}@example.com")
    assert request_lists.list_requests().total == 3
    assert request_lists.list_requests(statuses=["complete"]).total == 3
    assert request_lists.list_requests(statuses=["pending"]).total == 0


def test_later_pages_keep_the_order_and_the_rows(app):
    ids = [new_request(f"s{n}@example.com") for n in range(7)]
    base = db.session.get(PrivacyRequest, ids[0]).due_date
    for offset, request_id in enumerate(reversed(ids)):  # due dates in reverse creation order
        db.session.get(PrivacyRequest, request_id).due_date = base + timedelta(days=offset)
    db.session.commit()
    pages = [request_lists.list_requests(page=n, size=3) for n in (1, 2, 3)]
    assert [[pr.id for pr in p.items] for p in pages] == [ids[::-1][0:3], ids[::-1][3:6], ids[::-1][6:7]]
    newest = request_lists.list_requests(order="newest", size=3, page=1, with_identity=False)
    assert [pr.id for pr in newest.items] == sorted(
        ids, key=lambda i: (db.session.get(PrivacyRequest, i).created_at, i), reverse=True
    )[:3]
    assert all(pr.policy.key == "default_access_policy" for pr in newest.items)


@pytest.mark.parametrize("direct_up_to", [1_000, 0])
def test_near_and_deep_pages_read_the_same_rows(app, monkeypatch, direct_up_to):
    """Near pages come from one query, deep ones through their ids: both give the same rows and order."""
    monkeypatch.setattr(request_lists, "DIRECT_PAGE_OFFSET", direct_up_to)
    ids = [new_request(f"s{n}@example.com") for n in range(5)]
    base = db.session.get(PrivacyRequest, ids[0]).due_date
    for offset, request_id in enumerate(ids):
        db.session.get(PrivacyRequest, request_id).due_date = base + timedelta(days=offset)
    db.session.commit()

    pages = [request_lists.list_requests(page=n, size=2) for n in (1, 2, 3)]

    assert [[pr.id for pr in p.items] for p in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    assert pages[0].items[0].identity == {"email": "s0@example.com"}


@pytest.mark.parametrize("direct_up_to", [1_000, 0])
def test_near_and_deep_pages_count_progress_alike(app, monkeypatch, direct_up_to):
    """A page's progress (with its rows on near pages, a second query on deep ones) counts only entries at
    a gated webhook's current version, and reads only the columns the queue shows when lean."""
    monkeypatch.setattr(request_lists, "DIRECT_PAGE_OFFSET", direct_up_to)
    add_webhook("crm", [field("Name")])
    support = add_webhook("support", [field("Ticket")])
    add_webhook("off", [field("Note")], disabled=True)
    done_both, done_one, stale, untouched = (new_request(f"p{n}@example.com") for n in range(4))
    for request_id in (done_both, done_one, stale):
        manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    for request_id in (done_both, stale):
        manual_inputs.save_manual_input(request_id, "support", {"ticket": "1"}, STAFF)
    db.session.commit()
    webhooks.replace_fields(support, [field("Ticket"), field("Queue")], STAFF)  # support's entries go stale
    db.session.commit()
    manual_inputs.save_manual_input(done_both, "support", {"ticket": "1"}, STAFF)
    db.session.commit()

    page = request_lists.list_requests(statuses=["requires_input"], with_progress=True, lean=True)

    assert page.systems == 2
    assert [page.done.get(i, 0) for i in (done_both, done_one, stale, untouched)] == [2, 1, 1, 0]
    if direct_up_to:  # lean applies to the one-query (near) pages
        assert all(pr.created_at is None and pr.policy_name for pr in page.items)


def _complete(request_id: str, finished_days_ago: int) -> None:
    pr = db.session.get(PrivacyRequest, request_id)
    pr.status = "complete"
    pr.finished_processing_at = pr.created_at - timedelta(days=finished_days_ago)


def test_completed_lists_show_the_latest_finished_first(app):
    ids = [new_request(f"c{n}@example.com") for n in range(4)]
    for request_id, days_ago in zip(ids, (3, 1, 2, 1), strict=True):
        _complete(request_id, days_ago)
    db.session.commit()

    page = request_lists.list_requests(statuses=["complete"], order="completed")

    tied = sorted([ids[1], ids[3]], key=lambda i: (db.session.get(PrivacyRequest, i).created_at, i))
    assert [pr.id for pr in page.items] == [*reversed(tied), ids[2], ids[0]]


def _statements_of(call, *, counts: bool = False) -> list[tuple[str, object]]:
    """The SQL (and parameters) ``call`` sends, counts left out unless ``counts``."""
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    return [(sql, params) for sql, params in sent if counts or "count(" not in sql.lower()]


def _plan_sorts(sql: str, params) -> bool:
    """Whether the database sorts the rows of ``sql`` rather than reading them in an index's order."""
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
        return any("TEMP B-TREE FOR ORDER BY" in row[-1] for row in rows)
    # On a tiny table PostgreSQL would rather sort: forbid it, and see whether an index can serve.
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()
    return any(row[0].strip(" ->").startswith(("Sort", "Incremental Sort")) for row in rows)


@pytest.mark.parametrize(
    ("statuses", "order", "page"),
    [
        (["requires_input"], "due", 1),
        (None, "due", 1),
        (None, "due", 100),  # a deep page: its ids first
        (None, "newest", 1),
        (["complete"], "completed", 1),
        (["complete"], "completed", 100),
    ],
)
def test_every_list_order_is_read_from_an_index_not_sorted(app, statuses, order, page):
    new_request("plan@example.com")
    db.session.commit()

    sent = _statements_of(
        lambda: request_lists.list_requests(statuses=statuses, order=order, page=page, size=50)
    )

    assert sent
    for sql, params in sent:
        if "ORDER BY" in sql:
            assert not _plan_sorts(sql, params), sql
    db.session.rollback()


def test_the_gate_sees_a_field_change_at_once(app):
    conn = add_webhook("crm", [field("First Name")])
    assert [g.webhook.labels for g in gate.gated_webhooks()] == [["first_name"]]
    webhooks.replace_fields(conn, [field("First Name"), field("Last Name")], STAFF)
    db.session.commit()
    assert [g.webhook.labels for g in gate.gated_webhooks()] == [["first_name", "last_name"]]


def test_a_webhook_created_again_under_a_reused_id_is_not_mistaken_for_the_old_one(app):
    conn = add_webhook("crm", [field("First Name")])
    old_id = conn.manual_webhook.id
    assert [g.webhook.labels for g in gate.gated_webhooks()] == [["first_name"]]
    db.session.delete(conn.manual_webhook)
    db.session.commit()
    db.session.add(ManualWebhook(id=old_id, connection_config_id=conn.id, fields=[field("Email")], version=1))
    db.session.commit()
    assert [g.webhook.labels for g in gate.gated_webhooks()] == [["email"]]


def test_a_saved_upload_answers_with_what_was_stored(app):
    add_webhook("crm", [field("First Name"), field("Last Name")])
    request_id = new_request()
    fields = manual_inputs.save_manual_input(request_id, "crm", {"first_name": " Jane "}, STAFF)
    db.session.commit()
    stored = manual_inputs.view_manual_input(request_id, "crm")
    assert stored.checked is True
    assert fields == stored.fields == {"first_name": " Jane ", "last_name": None}


def test_the_queue_links_only_the_pages_it_shows(app, client, login_as, monkeypatch):
    monkeypatch.setitem(app.config, "PAGE_SIZE", 1)
    for n in range(12):
        new_request(f"s{n}@example.com")
    login_as("staff")
    html = client.get("/requests/?status=all&page=6").get_data(as_text=True)
    shown = [p for p in range(1, 13) if f"page={p}&amp;" in html or f'page={p}"' in html]
    assert shown == [1, 5, 7, 12]  # first, neighbours, last (and 6 is the current page, not a link)
    assert html.count("…") >= 2


def test_web_processes_never_import_alembic_nor_redis(tmp_path):
    """Flask-Migrate (Alembic, Mako) is for `flask db`, Redis for the celery backend: ~18 MB less in every
    web worker of the inline backend."""
    code = (
        "import sys\n"
        "from portal import create_app\n"
        f"create_app({{'SECRET_KEY': 'x' * 32, 'ENCRYPTION_KEY': {TEST_KEY!r},"
        f" 'DATABASE_URL': 'sqlite:///{tmp_path}/db.sqlite3'}}, instance_path={str(tmp_path)!r})\n"
        "assert 'alembic' not in sys.modules and 'flask_migrate' not in sys.modules, 'alembic imported'\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("view", "due", "by_system", "page"),
    [
        ("mine", None, False, 1),
        ("mine", "soon", False, 1),
        ("unassigned", None, False, 1),
        ("all", None, False, 1),
        ("all", "overdue", False, 1),
        ("all", None, True, 1),
        ("all", None, False, 100),
    ],
)
def test_every_task_list_is_read_from_an_index_not_sorted(app, view, due, by_system, page):
    from portal.models import Task
    from portal.services import tasks

    add_webhook("crm", [field("Name")])
    new_request("plan@example.com")
    db.session.commit()
    connection_id = db.session.scalar(sa.select(Task.connection_config_id)) if by_system else None

    sent = _statements_of(
        lambda: tasks.list_tasks(
            view=view, user_id=1, due=due, connection_id=connection_id, page=page, size=50
        )
    )

    ordered = [(sql, params) for sql, params in sent if "ORDER BY" in sql and "tasks" in sql]
    assert ordered
    for sql, params in ordered:
        assert not _plan_sorts(sql, params), sql
    db.session.rollback()


def _plan(sql: str, params) -> str:
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        return "\n".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))


@pytest.mark.parametrize("view", ["unassigned", "mine"])
def test_one_systems_tasks_of_one_assignee_are_looked_up_not_filtered(app, view):
    """The unassigned (or my) tasks of one system come from an index on both: read through the assignee's
    index alone, a system with few unassigned tasks meant reading every unassigned task (0.3 s at 100k)."""
    from portal.models import Task
    from portal.services import tasks

    add_webhook("crm", [field("Name")])
    new_request("plan@example.com")
    db.session.commit()
    connection_id = db.session.scalar(sa.select(Task.connection_config_id))
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        # The planner statistics of the bench's 100k requests (750k open tasks, half of them unassigned, an
        # assignee's ~3,700 or a system's ~15,000 each): with them SQLite chose the assignee's index.
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = 'tasks'")
        for index, stat in (
            ("ix_tasks_state_connection_assignee_due_id", "748654 374327 14680 75 1 1"),
            ("ix_tasks_state_connection_due_id", "748654 374327 14680 1 1"),
            ("ix_tasks_state_due_id", "748654 374327 38 1"),
            ("ix_tasks_state_assignee_due_id", "748654 374327 3670 3 1"),
        ):
            conn.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES ('tasks', ?, ?)", (index, stat))
        conn.exec_driver_sql("ANALYZE sqlite_schema")  # load them

    sent = _statements_of(
        lambda: tasks.list_tasks(view=view, user_id=1, connection_id=connection_id, page=1, size=50)
    )

    ordered = [(sql, params) for sql, params in sent if "ORDER BY" in sql and "FROM tasks" in sql]
    assert ordered
    for sql, params in ordered:
        plan = _plan(sql, params)
        assert "ix_tasks_state_assignee_due_id" not in plan, plan  # the assignee's tasks of every system
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    db.session.rollback()


def test_the_overdue_count_reads_ranges_of_the_status_index(app):
    """``status IN`` the open statuses, not ``NOT IN`` the closed ones: SQLite read every entry of the
    (status, due_date) index for the latter (20 rather than 3 ms at 100k requests)."""
    from portal.services import dashboard

    new_request("plan@example.com")
    db.session.commit()
    overdue = []
    sent = _statements_of(lambda: overdue.append(dashboard.overdue_count(utcnow())), counts=True)

    assert overdue == [0]
    (sql, params), *_ = [(s, p) for s, p in sent if "count(" in s.lower()]
    assert "NOT IN" not in sql
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        plan = "\n".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert "ix_privacy_requests_status_due_id (status=? AND due_date<?)" in plan, plan
    db.session.rollback()


def test_progress_counts_are_read_from_the_index_alone(app):
    """A queue page counts each request's done systems (current version, not sent back) from the
    (request, connection, version, sent_back_at) index, without visiting the entries' rows."""
    add_webhook("crm", [field("Name")])
    request_id = new_request("plan@example.com")
    manual_inputs.save_manual_input(request_id, "crm", {"name": "x"}, STAFF)
    db.session.commit()

    pages = []
    sent = _statements_of(
        lambda: pages.append(
            request_lists.list_requests(statuses=["requires_input"], size=50, with_progress=True)
        ),
        counts=True,
    )

    assert pages[0].done == {request_id: 1}
    counting = [(sql, params) for sql, params in sent if "FROM manual_inputs" in sql]
    assert counting
    if db.session.connection().dialect.name == "sqlite":  # PostgreSQL plans a tiny table its own way
        for sql, params in counting:
            plan = _plan(sql, params)
            assert "COVERING INDEX ix_manual_inputs_progress" in plan, plan
    db.session.rollback()


def test_the_sweep_finds_approved_deliveries_through_an_index(app):
    """The sweep's query of approved deliveries (copies still to write) reads the (state, updated_at) index
    in order, not every delivery: there is one per completed request."""
    from portal.services import delivery

    tried = []
    sent = _statements_of(lambda: tried.append(delivery.store_pending_copies()))

    assert tried == [0]
    (sql, params), *_ = [(s, p) for s, p in sent if "FROM package_deliveries" in s]
    if db.session.connection().dialect.name == "sqlite":  # PostgreSQL plans a tiny table its own way
        plan = _plan(sql, params)
        assert "ix_package_deliveries_state_updated" in plan and "TEMP B-TREE" not in plan, plan
    db.session.rollback()
