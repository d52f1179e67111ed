"""The load process: a small threaded HTTP client driving the portal and the floor in alternation.

For every operation and every concurrency (1 and 4 clients by default), ``--rounds`` short phases run on
each target in turn (portal, floor, floor, portal, ...), so both see the same machine noise; latencies
(perf_counter around one request and its whole response, connection set-up included: gunicorn's sync
workers close the connection after each response, for both targets) are pooled over the rounds.
Throughput is successful requests per second of phase wall time. A response with an unexpected status
counts as an error and is left out of the latencies.

Loopback only, bounded: a phase stops after ``--duration`` seconds, or earlier when its pool of one-shot
requests (resumes) runs out.

Usage: ``python -m bench.load --target portal URL MANIFEST --target floor URL MANIFEST --out R``
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.seed import sample_value

OPERATIONS = (
    "queue_first",
    "queue_status",
    "queue_identity",
    "queue_page500",
    "request_page",
    "form_save",
    "api_upload",
    "api_view",
    "api_list",
    "resume_build",
    "resume_collect",
    "download_json",
    "download_zip",
    "my_tasks",
    "tasks_due_soon",
    "request_notes",
)
# What kind of operation each one is: the targets differ for pages and for API calls / saves.
KINDS = {
    "queue_first": "page",
    "queue_status": "page",
    "queue_identity": "page",
    "queue_page500": "page",
    "request_page": "page",
    "form_save": "save",
    "api_upload": "api",
    "api_view": "api",
    "api_list": "api",
    "resume_build": "resume",
    "resume_collect": "info",
    "download_json": "page",
    "download_zip": "page",
    "my_tasks": "page",
    "tasks_due_soon": "page",
    "request_notes": "page",
}
QUEUE_STATUS_FILTER = "complete"  # the largest status (40%): the costliest filter to count and page
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class LoadError(RuntimeError):
    pass


@dataclass
class Response:
    status: int
    body: bytes


class Client:
    """One HTTP/1.1 connection (re-opened when the server closes it) and a cookie jar."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise LoadError("the bench only drives servers on the loopback interface")
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.keep_cookies = True

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed meanwhile: open a new one, once.
                self.conn.close()
                if attempt == 2:
                    raise
        for header in (response.headers.get_all("Set-Cookie") or []) if self.keep_cookies else []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return Response(response.status, data)

    def form(self, path: str, fields: dict[str, str]) -> Response:
        body = urlencode(fields).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def close(self) -> None:
        self.conn.close()


def is_portal(target: str) -> bool:
    """Targets are "portal", "floor", or portal-like names of the scaling check ("small", "large")."""
    return target != "floor"


@dataclass
class Plan:
    """Everything the operations need: each target's manifest and URL, and shared one-shot pools."""

    manifests: dict[str, dict[str, Any]]
    urls: dict[str, str]
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    pools: dict[tuple[str, str], deque] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for target, manifest in self.manifests.items():
            side = "portal" if is_portal(target) else "floor"
            for kind in ("resume", "collect"):
                self.pools[(kind, target)] = deque(manifest.get(f"{kind}_{side}", []))

    def pick(self, items: list):
        with self.lock:
            return self.rng.choice(items)

    def take(self, kind: str, target: str) -> str | None:
        with self.lock:
            pool = self.pools[(kind, target)]
            return pool.popleft() if pool else None

    def upload_values(self, hook: dict[str, Any]) -> dict[str, str]:
        with self.lock:
            n = self.rng.randrange(1_000_000)
        return {label: sample_value(kind, n + i) for i, (label, kind) in enumerate(hook["fields"])}


class Session:
    """A signed-in client set for one target: a staff session, an admin session (downloads), the token."""

    def __init__(self, plan: Plan, target: str):
        self.plan, self.target = plan, target
        self.m = plan.manifests[target]
        self.portal = is_portal(target)
        self.hooks = self.m["webhooks"]
        self.page500 = min(500, max(1, math.ceil(self.m["counts"]["privacy_requests"] / 50)))
        base = plan.urls[target]
        self.staff, self.admin, self.api = Client(base), Client(base), Client(base)
        self.saver = Client(base)  # form saves: see ``op_form_save``
        users = self.m["users"]
        self.auth = {"Authorization": f"Bearer {self.m['token']}"}
        if self.portal:
            self._portal_login(self.staff, users["staff"])
            self._portal_login(self.saver, users["staff"])
            self._portal_login(self.admin, users["admin"])
            page_path = f"/requests/{self.m['upload_ids'][0]}/manual/{self.hooks[0]['key']}"
            page = self.saver.request("GET", page_path)
            match = CSRF_RE.search(page.body.decode())
            if page.status != 200 or not match:
                raise LoadError(f"could not read a CSRF token from the manual-input form ({page.status})")
            self.csrf = match.group(1)
            self.saver.keep_cookies = False  # its session (with that CSRF token) stays as it is now
        else:
            for client, email in (
                (self.staff, users["staff"]),
                (self.saver, users["staff"]),
                (self.admin, users["admin"]),
            ):
                if client.form("/login", {"email": email}).status != 302:
                    raise LoadError("the floor refused its sign-in")
            self.csrf = ""

    def _portal_login(self, client: Client, email: str) -> None:
        page = client.request("GET", "/auth/login")
        match = CSRF_RE.search(page.body.decode())
        if not match:
            raise LoadError(f"no CSRF token on the sign-in page ({page.status})")
        fields = {"csrf_token": match.group(1), "email": email, "password": self.m["password"]}
        answer = client.form("/auth/login", fields)
        if answer.status != 302:
            raise LoadError(f"sign-in as {email} failed ({answer.status}): is the rate limit raised?")

    def close(self) -> None:
        for client in (self.staff, self.saver, self.admin, self.api):
            client.close()


# --- operations: each returns (client, method, path, body, headers, expected statuses, check) ------------

Call = tuple[Client, str, str, bytes | None, dict | None, tuple[int, ...], Callable[[Response], bool] | None]


def _queue_path(s: Session, **params) -> str:
    prefix = "/requests/" if s.portal else "/queue"
    return prefix + ("?" + urlencode(params) if params else "")


def op_queue_first(s: Session) -> Call:
    return s.staff, "GET", _queue_path(s), None, None, (200,), None


def op_queue_status(s: Session) -> Call:
    return s.staff, "GET", _queue_path(s, status=QUEUE_STATUS_FILTER), None, None, (200,), None


def op_queue_identity(s: Session) -> Call:
    path = _queue_path(s, status="all", identity=s.m["identity_hash"])
    return s.staff, "GET", path, None, None, (200,), None


def op_queue_page500(s: Session) -> Call:
    return s.staff, "GET", _queue_path(s, status="all", page=s.page500), None, None, (200,), None


def op_request_page(s: Session) -> Call:
    return s.staff, "GET", f"/requests/{s.m['detail_id']}", None, None, (200,), None


def op_form_save(s: Session) -> Call:
    """A save as a browser makes it, the redirect not followed (it is a request page, measured apart).

    Its own client, whose cookies are fixed after sign-in: a browser would show (and so clear) the
    "Saved" message on the page it is redirected to; a client that never follows the redirect would
    instead pile every message into its session cookie, each save paying for all the earlier ones.
    """
    plan = s.plan
    request_id, hook = plan.pick(s.m["upload_ids"]), plan.pick(s.hooks)
    values = plan.upload_values(hook)
    # Inputs are named after each field's id; the form carries the version it was built from.
    fields = {
        f"field_{fid}": values[label] for fid, (label, _) in zip(hook["ids"], hook["fields"], strict=True)
    }
    if s.portal:
        fields.update(csrf_token=s.csrf, save="Save", version=str(hook["version"]))
    body = urlencode(fields).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return s.saver, "POST", f"/requests/{request_id}/manual/{hook['key']}", body, headers, (302,), None


def _api(s: Session, path: str) -> str:
    return ("/api/v1" if s.portal else "/api") + path


def op_api_upload(s: Session) -> Call:
    plan = s.plan
    request_id, hook = plan.pick(s.m["upload_ids"]), plan.pick(s.hooks)
    body = json.dumps(plan.upload_values(hook)).encode()
    headers = {**s.auth, "Content-Type": "application/json"}
    path = _api(s, f"/privacy-request/{request_id}/access_manual_webhook/{hook['key']}")
    return s.api, "PATCH", path, body, headers, (200,), None


def op_api_view(s: Session) -> Call:
    plan = s.plan
    request_id, hook = plan.pick(s.m["upload_ids"]), plan.pick(s.hooks)
    path = _api(s, f"/privacy-request/{request_id}/access_manual_webhook/{hook['key']}")
    return s.api, "GET", path, None, s.auth, (200,), None


def op_api_list(s: Session) -> Call:
    return s.api, "GET", _api(s, "/privacy-request"), None, s.auth, (200,), None


def _completed(response: Response) -> bool:
    return json.loads(response.body).get("status") == "complete"


def _resume(s: Session, kind: str) -> Call | None:
    request_id = s.plan.take(kind, s.target)
    if request_id is None:
        return None
    suffix = "resume_from_requires_input" if s.portal else "resume"
    path = _api(s, f"/privacy-request/{request_id}/{suffix}")
    return s.api, "POST", path, None, s.auth, (200,), _completed


def op_resume_build(s: Session) -> Call | None:
    """50 manual inputs; the database connection finds nothing for these subjects."""
    return _resume(s, "resume")


def op_resume_collect(s: Session) -> Call | None:
    """50 manual inputs and 3 collections of 1,000 rows from the database connection."""
    return _resume(s, "collect")


def op_download_json(s: Session) -> Call:
    request_id = s.plan.pick(s.m["download_ids"])
    path = f"/packages/{request_id}/package.json" if s.portal else f"/packages/{request_id}/json"
    return s.admin, "GET", path, None, None, (200,), None


def op_download_zip(s: Session) -> Call:
    request_id = s.plan.pick(s.m["download_ids"])
    path = f"/packages/{request_id}/package.zip" if s.portal else f"/packages/{request_id}/zip"
    return s.admin, "GET", path, None, None, (200,), None


def op_my_tasks(s: Session) -> Call:
    return s.staff, "GET", "/tasks/" if s.portal else "/tasks", None, None, (200,), None


def op_tasks_due_soon(s: Session) -> Call:
    path = "/tasks/?view=all&due=soon" if s.portal else "/tasks?due=soon"
    return s.staff, "GET", path, None, None, (200,), None


def op_request_notes(s: Session) -> Call:
    request_id = s.m["notes_id"]
    path = f"/requests/{request_id}" if s.portal else f"/requests/{request_id}/with-notes"
    return s.staff, "GET", path, None, None, (200,), None


OPS: dict[str, Callable[[Session], Call | None]] = {name: globals()[f"op_{name}"] for name in OPERATIONS}


# --- phases ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    samples: list[str] = field(default_factory=list)


def run_phase(
    sessions: list[Session], op: str, duration: float, tally: Tally | None, max_requests: int | None
) -> None:
    """``len(sessions)`` threads issue ``op`` back to back until ``duration`` or ``max_requests``."""
    make = OPS[op]
    lock = threading.Lock()
    issued = 0
    deadline = time.perf_counter() + duration
    start_gate = threading.Barrier(len(sessions))

    def worker(session: Session) -> None:
        nonlocal issued
        start_gate.wait()
        while time.perf_counter() < deadline:
            with lock:
                if max_requests is not None and issued >= max_requests:
                    return
                issued += 1
            call = make(session)
            if call is None:
                return
            client, method, path, body, headers, expected, check = call
            t0 = time.perf_counter()
            response = client.request(method, path, body, headers)
            elapsed = time.perf_counter() - t0
            ok = response.status in expected and (check is None or check(response))
            if tally is None:
                continue
            with lock:
                if ok:
                    tally.latencies.append(elapsed)
                else:
                    tally.errors += 1
                    if len(tally.samples) < 3:
                        tally.samples.append(f"{method} {path} -> {response.status}: {response.body[:300]!r}")

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in sessions]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if tally is not None:
        tally.wall += time.perf_counter() - started


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(tally: Tally) -> dict[str, Any]:
    values = sorted(tally.latencies)
    return {
        "requests": len(values),
        "errors": tally.errors,
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "throughput_rps": round(len(values) / tally.wall, 2) if tally.wall else 0.0,
        "wall_s": round(tally.wall, 2),
        "error_samples": tally.samples,
    }


def drive(
    plan: Plan,
    ops: list[str],
    concurrencies: list[int],
    targets: list[str],
    duration: float,
    rounds: int,
    warmup: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    most = max(concurrencies)
    sessions = {t: [Session(plan, t) for _ in range(most)] for t in targets}
    results: dict[str, Any] = {}
    resume_phases = rounds * len(concurrencies)
    pool_kind = {"resume_build": "resume", "resume_collect": "collect"}
    try:
        for op in ops:
            results[op] = {}
            kind = pool_kind.get(op)
            for target in targets:  # warm each worker's code paths and caches; not recorded
                run_phase(sessions[target][:2], op, warmup, None, 2 if kind else None)
            # One-shot requests (resumes): each phase gets an equal share of what the warm-up left.
            shares = {
                t: max(1, len(plan.pools[(kind, t)]) // resume_phases) if kind else None for t in targets
            }
            for concurrency in concurrencies:
                tallies = {t: Tally() for t in targets}
                for round_number in range(rounds):
                    order = targets if round_number % 2 == 0 else list(reversed(targets))
                    for target in order:
                        cap = shares[target]
                        run_phase(sessions[target][:concurrency], op, duration, tallies[target], cap)
                results[op][str(concurrency)] = {t: summarize(tallies[t]) for t in targets}
                brief = "  ".join(
                    f"{t}: p95 {r['p95_ms']} ms, {r['throughput_rps']}/s, {r['errors']} errors"
                    for t, r in results[op][str(concurrency)].items()
                )
                log(f"{op:15s} c={concurrency}  {brief}")
    finally:
        for group in sessions.values():
            for session in group:
                session.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Drive the targets in alternation; write the figures as JSON."
    )
    parser.add_argument(
        "--target",
        nargs=3,
        action="append",
        metavar=("NAME", "URL", "MANIFEST"),
        required=True,
        help="portal, floor, or a portal-like name (scaling check); repeat for each target",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args(argv)
    urls, manifests = {}, {}
    for name, url, manifest_path in args.target:
        urls[name] = url
        with open(manifest_path) as fh:
            manifests[name] = json.load(fh)
    plan = Plan(manifests, urls)
    ops = [op for op in args.ops.split(",") if op]
    unknown = set(ops) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    started = time.perf_counter()
    results = drive(plan, ops, concurrencies, list(urls), args.duration, args.rounds, args.warmup)
    with open(args.out, "w") as fh:
        json.dump({"results": results, "seconds": round(time.perf_counter() - started, 1)}, fh, indent=1)


if __name__ == "__main__":
    main()
