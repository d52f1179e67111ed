"""Scale-out (S8): the celery backend, the sweeper, /healthz, and real multi-process runs.

The first half runs on every backend in this process (the broker is "down" by pointing at a port nothing
listens on). ``TestWithRealProcesses`` starts real Celery workers, beat, gunicorn and the CLI against
PostgreSQL and Redis (SQLite is the embedded, single-process default); when Redis cannot be reached those
tests are skipped with the reason — unless ``PORTAL_TEST_REQUIRE_ALL=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from http.client import HTTPException
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from portal import ConfigurationError, create_app
from portal.execution import dispatch, runner, sweeper
from portal.extensions import db
from portal.models import AccessPackage, AuditEvent, ConnectionConfig, ManualInput, PrivacyRequest, utcnow
from portal.models.audit import Actor
from portal.services import InvalidState, manual_inputs, privacy_requests, tokens
from tests.conftest import REQUIRE_ALL, TEST_KEY, TEST_PASSWORD
from tests.scale_out_helpers import (
    DEAD_REDIS_URL,
    PROJECT,
    REDIS_URL,
    Processes,
    concurrently,
    csrf_token,
    fetch,
    forget_queue,
    free_port,
    process_env,
    queue_length,
    redis_unavailable_reason,
    session_cookie,
    wait_for,
)
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

ADMIN = Actor("user", "admin@example.com")
CELERY = [sys.executable, "-m", "celery", "-A", "portal.worker"]
GUNICORN = [sys.executable, "-m", "gunicorn"]


def status_of(request_id: str) -> str:
    db.session.rollback()  # a fresh snapshot: other processes change the row
    return db.session.get(PrivacyRequest, request_id).status


def actions(request_id: str) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.privacy_request_id == request_id)
            .order_by(AuditEvent.id)
        )
    )


def events(action: str) -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def package_count(request_id: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(AccessPackage)
        .where(AccessPackage.privacy_request_id == request_id)
    )


@contextlib.contextmanager
def another_app(config: dict, **kwargs):
    """A second app beside the fixture's; its database connections are closed afterwards."""
    app = create_app(config, **kwargs)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


# --- configuration ---------------------------------------------------------------------------------


def test_unknown_task_backend_is_refused(app_config):
    with pytest.raises(ConfigurationError, match="must be 'inline' .* or 'celery'.*not 'rq'"):
        create_app({**app_config, "TASK_BACKEND": "rq"})


def test_celery_backend_counts_sign_ins_in_redis_and_inline_in_the_database(app_config):
    config = {**app_config, "TASK_BACKEND": "celery", "REDIS_URL": DEAD_REDIS_URL}
    del config["RATELIMIT_STORAGE_URI"]
    assert create_app(config).config["RATELIMIT_STORAGE_URI"] == DEAD_REDIS_URL
    assert create_app({**config, "RATELIMIT_STORAGE_URI": "memory://"}).config["RATELIMIT_STORAGE_URI"] == (
        "memory://"
    )
    inline = {**app_config}
    del inline["RATELIMIT_STORAGE_URI"]
    assert create_app(inline).config["RATELIMIT_STORAGE_URI"] == "database://"  # shared by every worker


def test_celery_app_is_configured_from_the_portal_config(app_config):
    config = {**app_config, "TASK_BACKEND": "celery", "REDIS_URL": DEAD_REDIS_URL, "CELERY_QUEUE": "q1"}
    celery = create_app({**config, "SWEEP_INTERVAL_SECONDS": 30}).extensions["celery"]
    assert celery.conf.broker_url == DEAD_REDIS_URL
    assert celery.conf.task_default_queue == "q1"
    assert celery.conf.beat_schedule["sweep-lost-runs"] == {"task": "portal.sweep", "schedule": 30.0}
    assert {"portal.run_privacy_request", "portal.sweep"} <= set(celery.tasks)


# --- /healthz --------------------------------------------------------------------------------------


def test_healthz_is_public_and_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_is_503_without_details_when_the_broker_is_down(app_config, caplog):
    with another_app({**app_config, "TASK_BACKEND": "celery", "REDIS_URL": DEAD_REDIS_URL}) as app:
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_data(as_text=True).strip() == '{"status":"unavailable"}'
    assert "broker unavailable (ConnectionError)" in caplog.text


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "ENCRYPTION_KEY": TEST_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/no/such/folder/portal.sqlite3",
    }
    with another_app(config, instance_path=str(tmp_path)) as app:
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable"}


# --- dispatch with the broker down -----------------------------------------------------------------


@pytest.fixture
def broker_down(app):
    """The celery backend, its broker unreachable (an unused port)."""
    from portal.worker import init_celery

    app.config.update(TASK_BACKEND="celery", REDIS_URL=DEAD_REDIS_URL, CELERY_QUEUE="nobody-listens")
    init_celery(app)
    return app


def test_broker_down_at_enqueue_keeps_the_request_and_audits_it(broker_down, caplog):
    caplog.set_level(logging.WARNING)
    pr = privacy_requests.create_request(
        identity={"email": "jane@example.com"}, policy_key="default_access_policy", actor=STAFF
    )
    request_id = pr.id

    result = dispatch.commit_and_run()

    assert result.ids == (request_id,)
    assert result.background and result.queued_later
    assert result.not_enqueued == (request_id,)
    assert dispatch.QUEUED_LATER_MESSAGE == "Queued — it will run when the worker is back."
    assert status_of(request_id) == "pending"
    assert actions(request_id) == ["request.created", "request.enqueue_failed"]
    assert events("request.enqueue_failed")[0].details == {"error": "OperationalError"}
    assert f"Could not queue the run of {request_id} (OperationalError)" in caplog.text
    assert "jane@example.com" not in caplog.text
    assert "6390" not in caplog.text  # nor the broker address, which may carry its password


def test_broker_down_the_api_still_answers_and_saves(broker_down, client, make_user):
    user = make_user(role="admin")
    _, secret = tokens.create_token(user, "test", Actor.system("test"))
    db.session.commit()
    started = time.monotonic()
    response = client.post(
        "/api/v1/privacy-request",
        json=[{"identity": {"email": "jane@example.com"}, "policy_key": "default_access_policy"}],
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    created = response.json["succeeded"][0]
    assert created["status"] == "pending"
    assert "request.enqueue_failed" in actions(created["id"])


def test_a_rolled_back_transaction_queues_nothing(broker_down):
    privacy_requests.create_request(
        identity={"email": "jane@example.com"}, policy_key="default_access_policy", actor=STAFF
    )
    db.session.rollback()
    assert dispatch.commit_and_run() == dispatch.Dispatched((), True, ())
    assert events("request.enqueue_failed") == []


# --- the sweeper (inline backend: a requeue runs at once) ------------------------------------------


def later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


def test_a_stale_claim_is_requeued_and_the_manual_input_survives(app):
    add_webhook("crm", [field("First Name")])
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", {"first_name": "Jane"}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    db.session.commit()  # resumed, never queued: then a "worker" claims it and dies
    assert runner.claim(request_id) is not None
    timeout = app.config["RUN_TIMEOUT_SECONDS"]

    assert sweeper.sweep(now=later(timeout - 5)) == []
    assert status_of(request_id) == "in_processing"

    requeued = sweeper.sweep(now=later(timeout + 1))

    assert requeued == [sweeper.Requeued(request_id, "stale_claim", True)]
    assert status_of(request_id) == "complete"
    assert db.session.get(PrivacyRequest, request_id).package.data == {"crm": [{"first_name": "Jane"}]}
    assert db.session.scalars(sa.select(ManualInput.values)).all() == [{"first_name": "Jane"}]
    event = events("request.requeued")[0]
    assert (event.actor_label, event.details) == ("sweeper", {"reason": "stale_claim"})


def never_queued() -> None:
    """Commit without queueing the runs scheduled in the transaction, as if the broker had been down."""
    db.session.info.pop(dispatch._KEY, None)
    db.session.commit()


def unqueued_request(approve: bool = False) -> str:
    request_id = privacy_requests.create_request(
        identity={"email": "j@example.com"}, policy_key="default_access_policy", actor=STAFF
    ).id
    if approve:
        privacy_requests.approve_request(request_id, ADMIN)
    never_queued()
    return request_id


@pytest.mark.parametrize("approval", [False, True])
def test_requests_never_queued_are_requeued_after_the_grace_period(app, approval):
    app.config["REQUIRE_APPROVAL"] = approval
    request_id = unqueued_request(approve=approval)
    grace = app.config["SWEEP_GRACE_SECONDS"]

    assert sweeper.sweep(now=later(grace - 5)) == []
    assert status_of(request_id) == ("approved" if approval else "pending")
    requeued = sweeper.sweep(now=later(grace + 1))

    assert requeued == [sweeper.Requeued(request_id, "not_queued", True)]
    assert status_of(request_id) == "complete"
    assert actions(request_id)[-3:] == ["request.requeued", "request.run_started", "request.completed"]
    event = events("request.requeued")[0]
    assert (event.actor_label, event.details) == ("sweeper", {"reason": "not_queued"})


def test_pending_requests_wait_for_an_admin_not_for_the_sweeper(app):
    app.config["REQUIRE_APPROVAL"] = True
    request_id = unqueued_request()
    assert sweeper.sweep(now=later(10**6)) == []
    assert status_of(request_id) == "pending"


def test_a_resume_never_queued_is_requeued(app):
    add_webhook("crm", [field("First Name")])
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", {"first_name": "Jane"}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    never_queued()
    assert status_of(request_id) == "in_processing"

    requeued = sweeper.sweep(now=later(app.config["SWEEP_GRACE_SECONDS"] + 1))

    assert requeued == [sweeper.Requeued(request_id, "not_queued", True)]
    assert status_of(request_id) == "complete"


def test_resting_requests_are_left_alone(app):
    add_webhook("crm", [field("First Name")])
    waiting = new_request("a@example.com")
    app.config["REQUIRE_APPROVAL"] = True
    denied = unqueued_request()
    privacy_requests.deny_request(denied, None, ADMIN)
    db.session.commit()
    assert (status_of(waiting), status_of(denied)) == ("requires_input", "denied")
    assert sweeper.sweep(now=later(10**6)) == []
    assert events("request.requeued") == []


def test_a_requeued_request_waits_another_grace_period(broker_down):
    request_id = unqueued_request()
    grace = broker_down.config["SWEEP_GRACE_SECONDS"]
    now = utcnow()

    first = sweeper.sweep(now=now + timedelta(seconds=grace + 1))
    second = sweeper.sweep(now=now + timedelta(seconds=grace + 2))
    third = sweeper.sweep(now=now + timedelta(seconds=2 * grace + 2))

    assert first == [sweeper.Requeued(request_id, "not_queued", False)]  # the broker is still down
    assert second == []
    assert third == first
    assert actions(request_id).count("request.requeued") == 2


def test_flask_sweep_prints_what_it_requeued(app, runner):
    request_id = unqueued_request()
    app.config["SWEEP_GRACE_SECONDS"] = 0
    time.sleep(0.01)

    result = runner.invoke(args=["sweep"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{request_id} not_queued\n"
    assert result.stderr == "Requeued 1 request.\n"
    assert status_of(request_id) == "complete"


def test_sweep_with_the_broker_down_says_so_and_tries_again_later(broker_down, runner):
    app = broker_down
    pr = privacy_requests.create_request(
        identity={"email": "j@example.com"}, policy_key="default_access_policy", actor=STAFF
    )
    request_id = pr.id
    dispatch.commit_and_run()
    app.config["SWEEP_GRACE_SECONDS"] = 0
    time.sleep(0.01)

    result = runner.invoke(args=["sweep"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{request_id} not_queued (broker unreachable: will retry)\n"
    assert actions(request_id) == [
        "request.created",
        "request.enqueue_failed",
        "request.requeued",
        "request.enqueue_failed",
    ]
    assert status_of(request_id) == "pending"


# --- real processes: PostgreSQL, Redis, Celery workers, beat, gunicorn ----------------------------


@pytest.fixture(scope="session")
def redis_available():
    reason = redis_unavailable_reason()
    if reason:
        if REQUIRE_ALL:
            pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(reason)


@pytest.mark.scale_out
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestWithRealProcesses:
    @pytest.fixture
    def app_config(self, app_config, redis_available):
        queue = f"portal-test-{uuid.uuid4().hex[:12]}"
        app_config.update(TASK_BACKEND="celery", REDIS_URL=REDIS_URL, CELERY_QUEUE=queue)
        yield app_config
        forget_queue(queue)

    @pytest.fixture
    def procs(self, app, tmp_path):
        processes = Processes(tmp_path)
        try:
            yield processes
        finally:
            processes.stop_all()

    @pytest.fixture
    def env(self, app_config, tmp_path):
        instance = tmp_path / "instance"
        instance.mkdir()

        def _env(**overrides):
            return process_env(app_config, instance, **overrides)

        return _env

    def wait_status(self, request_id, status, procs, timeout=30):
        wait_for(lambda: status_of(request_id) == status, timeout, f"{request_id} → {status}", procs.logs)

    def test_full_workflow_through_a_worker(self, app, client, make_user, procs, env):
        add_webhook("crm", [field("First Name"), field("Last Name")])
        user = make_user(role="admin")
        _, secret = tokens.create_token(user, "test", Actor.system("test"))
        db.session.commit()
        headers = {"Authorization": f"Bearer {secret}"}
        procs.worker("worker", env())

        response = client.post(
            "/api/v1/privacy-request",
            json=[{"identity": {"email": "jane@example.com"}, "policy_key": "default_access_policy"}],
            headers=headers,
        )
        assert response.status_code == 200
        created = response.json["succeeded"][0]
        assert created["status"] == "pending"  # answered at once: the worker runs it
        request_id = created["id"]
        self.wait_status(request_id, "requires_input", procs)

        response = client.patch(
            f"/api/v1/privacy-request/{request_id}/access_manual_webhook/crm",
            json={"first_name": "Jane", "last_name": "Customer"},
            headers=headers,
        )
        assert response.status_code == 200
        response = client.post(
            f"/api/v1/privacy-request/{request_id}/resume_from_requires_input", headers=headers
        )
        assert response.status_code == 200
        assert response.json["status"] == "in_processing"
        self.wait_status(request_id, "complete", procs)

        response = client.get(f"/api/v1/privacy-request/{request_id}/package", headers=headers)
        assert response.json == {"crm": [{"first_name": "Jane", "last_name": "Customer"}]}
        assert actions(request_id) == [
            "request.created",
            "request.run_started",
            "request.requires_input",
            "task.opened",
            "manual_input.saved",
            "request.resumed",
            "request.run_started",
            "request.completed",
            "package.downloaded",
        ]

    def test_a_worker_killed_mid_run_is_swept_and_the_request_completes(self, app, procs, env, tmp_path):
        add_webhook("crm", [field("First Name")])
        db.session.add(ConnectionConfig(key="slow_db", name="Slow DB", connection_type="sqlite"))
        db.session.commit()
        marker = tmp_path / "collecting"
        slow = procs.worker(
            "slow-worker",
            env(TEST_CONNECTOR_SLEEP=120, TEST_CONNECTOR_MARKER=marker),
            app="tests.scale_out_worker",
        )
        request_id = new_request()
        self.wait_status(request_id, "requires_input", procs)
        manual_inputs.save_manual_input(request_id, "crm", {"first_name": "Jane"}, STAFF)
        privacy_requests.resume_request(request_id, STAFF)
        assert dispatch.commit_and_run().not_enqueued == ()
        wait_for(marker.exists, 30, "the run to reach the slow connector", procs.logs)

        # A resume while the task is in flight is refused: the run happens once.
        with pytest.raises(InvalidState, match="status = in_processing"):
            privacy_requests.resume_request(request_id, STAFF)
        db.session.rollback()

        procs.kill(slow)  # SIGKILL, in the middle of the run
        db.session.rollback()
        stuck = db.session.get(PrivacyRequest, request_id)
        assert (stuck.status, stuck.runner_claim is not None) == ("in_processing", True)

        # Beat sends the sweep every second; the claim is stale after one second; a healthy worker reruns.
        fast = env(TEST_CONNECTOR_SLEEP=0, RUN_TIMEOUT_SECONDS=1, SWEEP_INTERVAL_SECONDS=1)
        procs.worker("worker", fast, app="tests.scale_out_worker")
        procs.start(
            "beat",
            [*CELERY, "beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule")],
            fast,
        )
        self.wait_status(request_id, "complete", procs, timeout=60)

        package = db.session.get(PrivacyRequest, request_id).package.data
        assert package == {"crm": [{"first_name": "Jane"}], "slow_test:rows": [{"connection": "slow_db"}]}
        assert db.session.scalars(sa.select(ManualInput.values)).all() == [{"first_name": "Jane"}]
        requeued = [e.details for e in events("request.requeued")]
        assert requeued[0] == {"reason": "stale_claim"}
        assert actions(request_id).count("request.completed") == 1

    def test_broker_down_at_enqueue_then_the_sweeper_runs_it(self, app, app_config, procs, env):
        with another_app({**app_config, "REDIS_URL": DEAD_REDIS_URL}) as broken, broken.app_context():
            pr = privacy_requests.create_request(
                identity={"email": "jane@example.com"}, policy_key="default_access_policy", actor=STAFF
            )
            request_id = pr.id
            assert dispatch.commit_and_run().queued_later
        assert status_of(request_id) == "pending"
        procs.worker("worker", env())

        sweep = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "sweep"],
            cwd=PROJECT,
            env=env(SWEEP_GRACE_SECONDS=0),
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert sweep.returncode == 0, sweep.stderr
        assert sweep.stdout == f"{request_id} not_queued\n"
        self.wait_status(request_id, "complete", procs)
        assert actions(request_id) == [
            "request.created",
            "request.enqueue_failed",
            "request.requeued",
            "request.run_started",
            "request.completed",
        ]

    def test_a_task_delivered_three_times_runs_once(self, app, procs, env):
        request_id = new_request()  # queued once by the creation...
        celery = app.extensions["celery"]
        for _ in range(2):  # ...and delivered twice more
            celery.send_task(dispatch.RUN_TASK, args=[request_id])
        assert queue_length(app.config["CELERY_QUEUE"]) == 3
        procs.worker("worker", env())

        self.wait_status(request_id, "complete", procs)
        log = procs.logs[0]
        wait_for(lambda: log.read_text().count("skipped") == 2, 30, "the duplicates to be skipped", [log])
        assert actions(request_id) == ["request.created", "request.run_started", "request.completed"]
        assert package_count(request_id) == 1

    def test_concurrent_resumes_across_two_gunicorn_workers_run_once(
        self, app, make_user, procs, env, tmp_path
    ):
        add_webhook("crm", [field("First Name")])
        user = make_user(role="staff")
        procs.worker("worker", env())
        request_id = new_request()
        self.wait_status(request_id, "requires_input", procs)
        manual_inputs.save_manual_input(request_id, "crm", {"first_name": "Jane"}, STAFF)
        db.session.commit()

        port = free_port()
        access_log = tmp_path / "access.log"
        procs.start(
            "gunicorn",
            [
                *GUNICORN,
                "--workers=2",
                f"--bind=127.0.0.1:{port}",
                f"--access-logfile={access_log}",
                "--access-logformat=%(p)s %(m)s %(U)s %(s)s",
                "--no-control-socket",
                "app:app",
            ],
            env(),
        )
        logged = _access_log_reader(access_log)

        def both_workers_up() -> bool:  # each worker boots on its own: wait until both have answered
            concurrently(4, lambda: _answers(port, "/healthz"))
            return len({pid for pid, path in logged() if path == "/healthz"}) == 2

        wait_for(both_workers_up, 60, "both gunicorn workers to serve /healthz", procs.logs)

        # Sign in once...
        status, headers, page = fetch(port, "GET", "/auth/login")
        cookie = session_cookie(headers)
        form = {"email": user.email, "password": TEST_PASSWORD, "csrf_token": csrf_token(page)}
        status, headers, _ = fetch(port, "POST", "/auth/login", body=urlencode(form), cookie=cookie)
        assert status == 302, "sign-in failed"
        cookie = session_cookie(headers, cookie)
        detail = f"/requests/{request_id}"
        status, headers, page = fetch(port, "GET", detail, cookie=cookie)
        assert status == 200
        cookie = session_cookie(headers, cookie)
        token = csrf_token(page)

        def rounds(path: str, call, expected: int) -> set[str]:
            """20 simultaneous requests, again (5 rounds at most) until both workers have served ``path``."""
            for sent in range(1, 6):
                assert concurrently(20, call) == [expected] * 20
                wait_for(
                    lambda sent=sent: len([1 for _, p in logged() if p == path]) >= 20 * sent,
                    15,
                    "the log",
                    [access_log],
                )
                workers = {pid for pid, p in logged() if p == path}
                if len(workers) == 2:
                    break
            return workers

        # ...and the session (and its CSRF token) holds in both web processes...
        assert len(rounds(detail, lambda: fetch(port, "GET", detail, cookie=cookie)[0], 200)) == 2
        # ...and 20 resumes at once, across both, run the request once.
        body = urlencode({"csrf_token": token})
        resume = detail + "/resume"
        assert len(rounds(resume, lambda: fetch(port, "POST", resume, body=body, cookie=cookie)[0], 302)) == 2

        self.wait_status(request_id, "complete", procs)
        assert actions(request_id).count("request.resumed") == 1
        assert actions(request_id).count("request.run_started") == 2  # the first pass, and one after resume
        assert actions(request_id).count("request.completed") == 1
        assert package_count(request_id) == 1


def _access_log_reader(access_log):
    """(pid, path) of every request gunicorn logged (it logs a request just after answering it)."""

    def logged() -> list[tuple[str, str]]:
        if not access_log.exists():
            return []
        return [
            (pid, path)
            for pid, method, path, code in (line.split() for line in access_log.read_text().splitlines())
        ]

    return logged


def _answers(port: int, path: str) -> int | None:
    try:
        return fetch(port, "GET", path)[0]
    except (OSError, HTTPException):
        return None


def test_the_request_page_says_queued_for_later_when_the_broker_is_down(broker_down, client, login_as):
    login_as("staff")
    response = client.post(
        "/requests/new",
        data={"email": "jane@example.com", "policy": "default_access_policy"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Request created. Queued — it will run when the worker is back." in response.get_data(as_text=True)
