"""Real processes for the scale-out tests: Celery workers, beat, gunicorn and the CLI, on PostgreSQL + Redis.

Each test gets a queue name of its own (``portal-test-<hex>``) in the Redis database of
``PORTAL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``), so parallel runs never share tasks.
Every process is started in a session of its own and killed (the whole group) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path

import redis

PROJECT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Nothing listens there: "the broker is down" without touching the machine's shared Redis.
DEAD_REDIS_URL = "redis://127.0.0.1:6390/15"


def redis_unavailable_reason() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"
    finally:
        client.close()
    return None


def forget_queue(queue: str) -> None:
    """Delete the queue, every key named after it (rate-limit counters use it as their prefix), and the
    messages a killed worker left unacknowledged for it (Redis would redeliver them in an hour)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [queue, f"_kombu.binding.{queue}", *client.scan_iter(match=f"*{queue}*")]
        client.delete(*keys)
        for tag, payload in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, IndexError, TypeError):
                if json.loads(payload)[2] == queue:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
    finally:
        client.close()


def queue_length(queue: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.llen(queue)
    finally:
        client.close()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, logs: list[Path] = ()):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` and the logs' tails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ---\n{tail(p)}" for p in logs)
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}.\n{tails}")
        time.sleep(0.1)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(app_config: dict, instance: Path, **overrides: object) -> dict[str, str]:
    """The environment of a production-like process sharing the test's database, key and queue (the
    celery backend when ``app_config`` names a Redis, else the inline one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    celery = {}
    if "REDIS_URL" in app_config:
        celery = {
            "TASK_BACKEND": "celery",
            "REDIS_URL": app_config["REDIS_URL"],
            "CELERY_QUEUE": app_config["CELERY_QUEUE"],
            "RATELIMIT_KEY_PREFIX": app_config["CELERY_QUEUE"],
        }
    settings = {
        "DATABASE_URL": app_config["DATABASE_URL"],
        "ENCRYPTION_KEY": app_config["ENCRYPTION_KEY"],
        "SECRET_KEY": "scale-out-test-secret",
        "TASK_BACKEND": "inline",
        **celery,
        "INSTANCE_PATH": str(instance),
        "SESSION_COOKIE_SECURE": "false",
        "REMEMBER_COOKIE_SECURE": "false",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_COST": "8",
        **{k: str(v) for k, v in overrides.items()},
    }
    env.update({f"PORTAL_{k}": v for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Processes:
    """Starts processes in their own sessions; ``stop_all`` kills every group, whatever happened."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        self.logs.append(log)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append(proc)
        return proc

    def worker(self, name: str, env: dict[str, str], app: str = "portal.worker") -> subprocess.Popen:
        return self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname={name}-{os.getpid()}@%h",
            ],
            env,
        )

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                self.kill(proc)


def concurrently(n: int, call) -> list:
    """Run ``call`` in ``n`` threads released at the same moment; their results in thread order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported in the assertion
            results[i] = repr(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# --- a tiny HTTP client (one connection per call, so it is safe in threads) ------------------------


def fetch(port: int, method: str, path: str, *, body: str | None = None, cookie: str | None = None):
    """(status, headers, text) without following redirects."""
    conn = HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        conn.close()


def session_cookie(headers, previous: str | None = None) -> str | None:
    """The ``session=...`` pair from a response's Set-Cookie headers (else the previous one)."""
    for value in headers.get_all("Set-Cookie") or []:
        pair = value.split(";", 1)[0]
        if pair.startswith("session="):
            return pair
    return previous


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    assert match, "no CSRF token on the page"
    return match.group(1)
