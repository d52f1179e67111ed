"""The production server: gunicorn with ``gunicorn.conf.py`` (``make serve``), in real processes.

Each test starts gunicorn with the config file and two workers over the test's freshly migrated database
(SQLite, then PostgreSQL), on a free port, with the inline backend (the embedded setup). Its access log
must hold no identity; sign-in limits must hold across both workers. The celery setup's limits (counted in
Redis) are checked the same way in ``TestCountedInRedis`` (marker ``scale_out``: it needs Redis).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from http.client import HTTPConnection, HTTPException
from urllib.parse import urlencode

import pytest

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import tokens
from tests.conftest import REQUIRE_ALL, TEST_PASSWORD
from tests.scale_out_helpers import (
    PROJECT,
    REDIS_URL,
    Processes,
    concurrently,
    csrf_token,
    fetch,
    forget_queue,
    free_port,
    process_env,
    redis_unavailable_reason,
    session_cookie,
    wait_for,
)
from tests.workflow_helpers import new_request

# No control socket: gunicorns of parallel test runs would share its one path.
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "--config",
    str(PROJECT / "gunicorn.conf.py"),
    "--no-control-socket",
]
SUBJECT = "jane.customer@example.com"


@pytest.fixture
def procs(app, tmp_path):
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def serve(app_config, procs, tmp_path):
    """``serve(*options, **settings)`` → the port of a gunicorn started with the config file (plus
    ``options``) and PORTAL_<settings>, once it answers."""

    def _serve(*options: str, **settings) -> int:
        instance = tmp_path / f"instance-{uuid.uuid4().hex[:6]}"
        instance.mkdir()
        port = free_port()
        procs.start(
            "gunicorn",
            [*GUNICORN, f"--bind=127.0.0.1:{port}", *options],
            process_env(app_config, instance, **settings),
        )
        wait_for(lambda: _answers(port, "/healthz") == 200, 60, "gunicorn to answer /healthz", procs.logs)
        return port

    return _serve


def _answers(port: int, path: str) -> int | None:
    try:
        return fetch(port, "GET", path)[0]
    except (OSError, HTTPException):
        return None


def _api(port: int, method: str, path: str, secret: str, body: dict | None = None) -> tuple[int, dict]:
    conn = HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    try:
        conn.request(
            method, "/api/v1" + path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _signed_in(port: int, email: str) -> str:
    status, headers, page = fetch(port, "GET", "/auth/login")
    cookie = session_cookie(headers)
    form = urlencode({"email": email, "password": TEST_PASSWORD, "csrf_token": csrf_token(page)})
    status, headers, _ = fetch(port, "POST", "/auth/login", body=form, cookie=cookie)
    assert status == 302, "sign-in failed"
    return session_cookie(headers, cookie)


# --- the access log --------------------------------------------------------------------------------


def test_identity_searches_leave_no_identity_in_the_access_log(app, make_user, serve, procs):
    request_id = new_request(SUBJECT)
    admin = make_user(role="admin")
    _, secret = tokens.create_token(admin, "log-test", Actor.system("test"))
    db.session.commit()
    port = serve()  # the config file alone: its workers, its access log (to stdout)

    # The API: the GET filter (documented as putting the identity in the URL) and the POST search.
    for path in (
        f"/privacy-request?identity={SUBJECT}",
        "/privacy-request?identity=jane.customer%40example.com",
    ):
        status, body = _api(port, "GET", path, secret)
        assert (status, [item["id"] for item in body["items"]]) == (200, [request_id])
    status, body = _api(port, "POST", "/privacy-request/search", secret, {"identity": {"email": SUBJECT}})
    assert (status, [item["id"] for item in body["items"]]) == (200, [request_id])

    # The portal: the search box, and an identity typed into the address bar.
    cookie = _signed_in(port, admin.email)
    status, headers, page = fetch(port, "GET", "/requests/", cookie=cookie)
    cookie = session_cookie(headers, cookie)
    form = urlencode({"status": "all", "search": SUBJECT, "csrf_token": csrf_token(page)})
    status, headers, _ = fetch(port, "POST", "/requests/", body=form, cookie=cookie)
    assert status == 302 and "identity=" in headers["Location"]
    status, _, page = fetch(port, "GET", headers["Location"], cookie=cookie)
    assert status == 200 and request_id in page
    status, headers, _ = fetch(port, "GET", f"/requests/?status=all&q={SUBJECT}", cookie=cookie)
    assert status == 302 and headers["Location"] == "/requests/?status=all"

    log = procs.logs[0]

    def access_lines() -> list[str]:
        return [line for line in log.read_text().splitlines() if ' HTTP/1.1" ' in line]  # not the error log

    wait_for(
        lambda: len([line for line in access_lines() if "/healthz" not in line]) == 9,
        15,
        "the access log of the 9 requests above",
        [log],
    )
    text = log.read_text()
    assert "jane" not in text.lower() and "%40" not in text
    access = access_lines()
    assert not [line for line in access if "?" in line]
    # Remote address, time, method, path, protocol, status, bytes, duration.
    pattern = r'127\.0\.0\.1 - \[[^]]+\] "GET /api/v1/privacy-request HTTP/1\.1" 200 \d+ \d+ms "[^"]*"'
    assert len([line for line in access if re.fullmatch(pattern, line)]) == 2, text


def test_the_development_server_logs_request_lines_without_query_strings(app, caplog):
    """``make run`` (``flask run``) serves with Werkzeug, which logs each request line."""
    from werkzeug.serving import make_server

    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert fetch(server.port, "GET", f"/healthz?identity={SUBJECT}")[0] == 200
        assert fetch(server.port, "GET", f"/requests/?q={SUBJECT}")[0] == 302
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert [re.sub(r"\x1b\[[\d;]*m", "", line).split("] ", 1)[1] for line in lines] == [
        '"GET /healthz HTTP/1.1" 200 -',
        '"GET /requests/ HTTP/1.1" 302 -',
    ]
    assert "jane" not in caplog.text


def test_make_serve_and_the_readme_serve_with_the_config_file():
    makefile = (PROJECT / "Makefile").read_text()
    recipe = re.search(r"^serve:.*\n\t(.+)$", makefile, re.MULTILINE).group(1)
    assert recipe.startswith("$(BIN)/gunicorn --config gunicorn.conf.py ")
    readme = (PROJECT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("gunicorn --")]
    assert commands and all(line.startswith("gunicorn --config gunicorn.conf.py ") for line in commands)


# --- sign-in limits across two workers -------------------------------------------------------------


class TwoWorkers:
    """The config file's server with two workers, its access log (``<pid> <method> <path> <status>``) in a
    file. ``only_on`` sends every request, meanwhile, to one chosen worker: gunicorn's sync workers take one
    connection at a time, so a connection that never finishes its request keeps the other one busy."""

    def __init__(self, serve, tmp_path, **settings):
        self.access_log = tmp_path / f"access-{uuid.uuid4().hex[:6]}.log"
        self.port = serve(
            "--workers=2",
            f"--access-logfile={self.access_log}",
            "--access-logformat=%(p)s %(m)s %(U)s %(s)s",
            **settings,
        )

        def both_up() -> bool:  # each worker loads the app on its own: ask in parallel until both answered
            concurrently(4, lambda: _answers(self.port, "/healthz"))
            return len({pid for pid, _, path, _ in self.logged() if path == "/healthz"}) == 2

        wait_for(both_up, 60, "both gunicorn workers to serve /healthz", [self.access_log])

    def logged(self) -> list[tuple[str, str, str, str]]:
        if not self.access_log.exists():
            return []
        return [tuple(line.split()) for line in self.access_log.read_text().splitlines()]

    def _free_worker(self) -> str:
        """The pid of the worker that answers now (two probes, so a late accept cannot mislead)."""
        pids = set()
        for _ in range(2):
            count = len(self.logged())
            assert _answers(self.port, "/healthz") == 200
            wait_for(lambda count=count: len(self.logged()) > count, 15, "the access log", [self.access_log])
            pids.add(self.logged()[-1][0])
        return pids.pop() if len(pids) == 1 else ""

    @contextlib.contextmanager
    def only_on(self, *, not_pid: str = ""):
        """Yield the pid of the worker every request goes to until the block ends (another than
        ``not_pid``)."""
        for _ in range(40):
            hold = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            hold.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: it waits for more
            time.sleep(0.2)  # an idle worker accepts it at once
            free = self._free_worker()
            if free and free != not_pid:
                break
            hold.close()
        else:
            raise AssertionError("could not keep one gunicorn worker busy")
        try:
            yield free
        finally:
            hold.close()

    def sign_ins(self, emails: list[str], password: str) -> list[int]:
        """One sign-in per email, in turn, each from a fresh login page (CSRF is on: token and cookie)."""
        statuses = []
        for email in emails:
            _, headers, page = fetch(self.port, "GET", "/auth/login")
            form = urlencode({"email": email, "password": password, "csrf_token": csrf_token(page)})
            statuses.append(
                fetch(self.port, "POST", "/auth/login", body=form, cookie=session_cookie(headers))[0]
            )
        return statuses

    def sign_ins_answered_by(self) -> list[str]:
        """The worker of each sign-in POST, in order."""
        return [pid for pid, method, path, _ in self.logged() if (method, path) == ("POST", "/auth/login")]


def check_account_limit(make_user, serve, tmp_path, **settings) -> None:
    """Wrong passwords for one account, first on one worker, then on the other: 5 answered in all, then 429
    — and then even the right password is refused."""
    user, other = make_user(role="staff"), make_user(role="staff")
    # The address limit out of the way: this checks the account's.
    server = TwoWorkers(serve, tmp_path, LOGIN_IP_RATE_LIMIT="1000 per minute", **settings)

    with server.only_on() as first:
        assert server.sign_ins([user.email] * 3, "wrong-password-123") == [200] * 3
    with server.only_on(not_pid=first) as second:
        assert server.sign_ins([user.email] * 12, "wrong-password-123") == [200] * 2 + [429] * 10
        assert server.sign_ins([user.email], TEST_PASSWORD) == [429]
        assert server.sign_ins([other.email], TEST_PASSWORD) == [302]  # other accounts still sign in

    wait_for(lambda: len(server.sign_ins_answered_by()) == 17, 15, "the access log", [server.access_log])
    assert server.sign_ins_answered_by() == [first] * 3 + [second] * 14


def check_address_limit(make_user, serve, tmp_path, **settings) -> None:
    """Wrong passwords for 20 different accounts from one address, on one worker then the other:
    PORTAL_LOGIN_IP_RATE_LIMIT (10 a minute here) answered in all, then 429 for any account, even with its
    right password."""
    user = make_user(role="staff")
    server = TwoWorkers(serve, tmp_path, LOGIN_IP_RATE_LIMIT="10 per minute", **settings)
    guesses = [f"guess-{n}@example.com" for n in range(20)]

    with server.only_on() as first:
        assert server.sign_ins(guesses[:6], "wrong-password-123") == [200] * 6
    with server.only_on(not_pid=first) as second:
        assert server.sign_ins(guesses[6:], "wrong-password-123") == [200] * 4 + [429] * 10
        assert server.sign_ins([user.email], TEST_PASSWORD) == [429]

    wait_for(lambda: len(server.sign_ins_answered_by()) == 21, 15, "the access log", [server.access_log])
    assert server.sign_ins_answered_by() == [first] * 6 + [second] * 15


def test_failed_sign_ins_per_account_are_counted_across_two_workers(app, make_user, serve, tmp_path):
    check_account_limit(make_user, serve, tmp_path)


def test_failed_sign_ins_per_address_are_counted_across_two_workers(app, make_user, serve, tmp_path):
    check_address_limit(make_user, serve, tmp_path)


@pytest.fixture(scope="session")
def redis_available():
    reason = redis_unavailable_reason()
    if reason:
        if REQUIRE_ALL:
            pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(reason)


@pytest.mark.scale_out
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestCountedInRedis:
    """The production setup: the celery backend, whose web processes count sign-ins in Redis."""

    @pytest.fixture
    def app_config(self, app_config, redis_available):
        queue = f"portal-test-{uuid.uuid4().hex[:12]}"  # also the prefix of this test's Redis keys
        app_config.update(TASK_BACKEND="celery", REDIS_URL=REDIS_URL, CELERY_QUEUE=queue)
        yield app_config
        forget_queue(queue)

    def test_failed_sign_ins_per_account(self, app, make_user, serve, tmp_path):
        check_account_limit(make_user, serve, tmp_path)

    def test_failed_sign_ins_per_address(self, app, make_user, serve, tmp_path):
        check_address_limit(make_user, serve, tmp_path)
