"""``make bench``: seed, serve with gunicorn, drive from a separate process, compare with the floor, report.

For each backend (SQLite, then this machine's PostgreSQL): a fresh database is migrated and seeded
(``bench.seed``); the portal (``gunicorn --workers W ... app:app``, the production command) and the floor
(``bench.floor:app``, same command) are started over it; ``bench.load`` drives both in alternation; the
peak RSS of every web worker is read from ``/proc``; a package-memory probe builds a large package
(``bench.package_memory``). Figures, ratios and the targets they meet or miss go to a JSON file and to
``bench/REPORT.md``.

``--scaling 10k,1m`` instead times the queue page, the request page and the API list on a small and a
large database (portal only) and compares them, and measures building the daily digest on each
(``bench.digest_probe``: time, statements and peak memory). Results of runs that cover only part of the report
(one backend, or the scaling check) are merged into the existing JSON, and the report is rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import report
from bench.load import KINDS, OPERATIONS

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SCALING_OPS = ("queue_first", "request_page", "api_list", "my_tasks")


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate_key() -> str:
    from portal.crypto import generate_key as make

    return make()


# --- databases -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(backend: str, label: str, work: Path, pg_url: str, keep: bool):
    """A new empty database URL for this run; removed afterwards unless ``keep``."""
    if backend == "sqlite":
        path = work / f"bench-{label}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"portal_bench_{label}".replace("-", "_")
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, scale: str, key: str, work: Path, label: str, resume_pool: int) -> dict[str, Any]:
    manifest = work / f"manifest-{label}.json"
    command = [
        PYTHON, "-m", "bench.seed", "--database-url", url, "--scale", scale,
        "--instance-path", str(work / "instance"), "--manifest", str(manifest), "--resume-pool", str(resume_pool),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_ENCRYPTION_KEY": key}  # not in argv: keys may start with "-"
    with open(work / f"seed-{label}.log", "w") as out:
        subprocess.run(command, cwd=ROOT, check=True, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    return json.loads(manifest.read_text())


# --- servers ---------------------------------------------------------------------------------------------


class Server:
    """One gunicorn master (its own process group) and its workers."""

    def __init__(self, name: str, app: str, env: dict[str, str], workers: int, work: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"{name}.log"
        command = [
            PYTHON, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
            "--access-logfile", "-", app,
        ]  # fmt: skip
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(  # noqa: S603
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, path: str = "/auth/login", timeout: float = 60) -> None:
        """Until ``path`` answers 200 (the sign-in page: public, and in every version of the portal)."""
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout}s; see {self.log_path}")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def memory(self) -> list[dict[str, float]]:
        """Peak (VmHWM) and current (VmRSS) resident memory of each worker, in MB."""
        found = []
        for pid in self.workers():
            fields = {}
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name in ("VmHWM", "VmRSS"):
                        fields[name] = round(int(value.split()[0]) / 1024, 1)
            if fields:
                found.append(
                    {"pid": pid, "peak_mb": fields.get("VmHWM", 0.0), "rss_mb": fields.get("VmRSS", 0.0)}
                )
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


def portal_env(url: str, key: str, work: Path) -> dict[str, str]:
    return {
        "PORTAL_DATABASE_URL": url,
        "PORTAL_ENCRYPTION_KEY": key,
        "PORTAL_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "PORTAL_INSTANCE_PATH": str(work / "instance"),
        "PORTAL_TASK_BACKEND": "inline",
        # The bench signs in a handful of clients over plain http on loopback.
        "PORTAL_LOGIN_RATE_LIMIT": "10000 per minute",
        "PORTAL_SESSION_COOKIE_SECURE": "false",
        "PORTAL_REMEMBER_COOKIE_SECURE": "false",
    }


def floor_env(url: str, key: str, manifest: dict[str, Any]) -> dict[str, str]:
    return {
        "BENCH_DATABASE_URL": url,
        "BENCH_ENCRYPTION_KEY": key,
        "BENCH_SECRET_KEY": uuid.uuid4().hex,
        "BENCH_SOURCE_PATH": manifest["collection"]["path"],
    }


def run_load(targets: list[tuple[str, str, Path]], out: Path, args, ops, concurrency: str) -> dict[str, Any]:
    """``targets``: (name, URL, manifest) for each server, driven in alternation by one load process."""
    command = [
        PYTHON, "-m", "bench.load", "--out", str(out), "--ops", ",".join(ops), "--concurrency", concurrency,
        "--duration", str(args.duration), "--rounds", str(args.rounds), "--warmup", str(args.warmup),
    ]  # fmt: skip
    for name, url, manifest in targets:
        command += ["--target", name, url, str(manifest)]
    subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603
    return json.loads(out.read_text())


def package_memory(url: str, key: str, work: Path, size_mb: int) -> dict[str, Any]:
    out = work / "package-memory.json"
    command = [
        PYTHON, "-m", "bench.package_memory", "--database-url", url,
        "--instance-path", str(work / "instance"), "--size-mb", str(size_mb), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_ENCRYPTION_KEY": key}
    with open(work / "package-memory.log", "w") as log_file:
        subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603
    return json.loads(out.read_text())


def attachment_memory(work: Path, size_mb: int) -> dict[str, Any]:
    """Memory of uploading, packaging and downloading one ``size_mb`` file (``bench.attachment_memory``:
    a fresh SQLite database of its own, so the figures do not depend on the seeded one)."""
    out = work / "attachment-memory.json"
    command = [PYTHON, "-m", "bench.attachment_memory", "--size-mb", str(size_mb), "--out", str(out)]
    with open(work / "attachment-memory.log", "w") as log_file:
        subprocess.run(command, cwd=ROOT, check=True, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603
    return json.loads(out.read_text())


def digest_probe(url: str, key: str, work: Path, label: str) -> dict[str, Any]:
    """Time and peak memory of building the daily digest over this database (``bench.digest_probe``)."""
    out = work / f"digest-{label}.json"
    command = [
        PYTHON, "-m", "bench.digest_probe", "--database-url", url, "--instance-path", str(work / "instance"),
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_ENCRYPTION_KEY": key}
    with open(work / f"digest-{label}.log", "w") as log_file:
        subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603
    return json.loads(out.read_text())


# --- one backend -------------------------------------------------------------------------------------------


def bench_backend(backend: str, args, work: Path) -> dict[str, Any]:
    label = f"{backend}-{args.scale}"
    key = generate_key()
    with fresh_database(backend, label, work, args.postgres_url, args.keep) as url:
        log(f"{backend}: seeding {args.scale} requests")
        manifest = seed(url, args.scale, key, work, label, args.resume_pool)
        log(f"{backend}: seeded in {manifest['seconds']['total']} s {manifest['seconds']}")
        manifest_path = work / f"manifest-{label}.json"
        portal = Server(f"portal-{label}", "app:app", portal_env(url, key, work), args.workers, work)
        floor = Server(f"floor-{label}", "bench.floor:app", floor_env(url, key, manifest), args.workers, work)
        try:
            portal.wait_ready()
            floor.wait_ready("/healthz")
            log(
                f"{backend}: portal on {portal.url}, floor on {floor.url}; driving {len(args.ops)} operations"
            )
            load = run_load(
                [("portal", portal.url, manifest_path), ("floor", floor.url, manifest_path)],
                work / f"load-{label}.json",
                args,
                args.ops,
                args.concurrency,
            )
            rss = {"portal": portal.memory(), "floor": floor.memory()}
        finally:
            portal.stop()
            floor.stop()
        probe = attachments = None
        if args.package_mb:
            log(f"{backend}: package-memory probe ({args.package_mb} MB package)")
            probe = package_memory(url, key, work, args.package_mb)
            log(f"{backend}: attachment-memory probe ({args.package_mb} MB file)")
            attachments = attachment_memory(work, args.package_mb)
    return {
        "scale": manifest["scale"],
        "workers": args.workers,
        "seed": {"counts": manifest["counts"], "seconds": manifest["seconds"]},
        "page500": min(500, -(-manifest["counts"]["privacy_requests"] // 50)),
        "operations": load["results"],
        "load_seconds": load["seconds"],
        "rss": rss,
        "package_memory": probe,
        "attachment_memory": attachments,
    }


def scaling_backend(backend: str, args, work: Path) -> dict[str, Any]:
    """Portal on the small database against portal on the large one, alternating phases like the floor."""
    small, large = args.scaling[0], args.scaling[-1]
    with contextlib.ExitStack() as stack:
        seeded = {}
        for scale in (small, large):
            label = f"{backend}-{scale}-scaling"
            key = generate_key()
            url = stack.enter_context(fresh_database(backend, label, work, args.postgres_url, args.keep))
            log(f"{backend}: seeding {scale} requests for the scaling check")
            manifest = seed(url, scale, key, work, label, 2)
            log(f"{backend}: seeded {scale} in {manifest['seconds']['total']} s")
            seeded[scale] = (url, key, label, manifest)
        servers = {}
        try:
            for name, scale in (("small", small), ("large", large)):
                url, key, label, _ = seeded[scale]
                servers[name] = Server(
                    f"portal-{label}", "app:app", portal_env(url, key, work), args.workers, work
                )
            for server in servers.values():
                server.wait_ready()
            load = run_load(
                [
                    (name, servers[name].url, work / f"manifest-{seeded[scale][2]}.json")
                    for name, scale in (("small", small), ("large", large))
                ],
                work / f"load-{backend}-scaling.json",
                args,
                [op for op in SCALING_OPS if op in args.ops] or list(SCALING_OPS),
                "1",
            )
        finally:
            for server in servers.values():
                server.stop()
        digests = {}
        for scale in (small, large):  # with no server running: the probe has the machine to itself
            url, key, label, _ = seeded[scale]
            log(f"{backend}: daily digest over {scale} requests")
            digests[scale] = digest_probe(url, key, work, label)
    figures: dict[str, Any] = {}
    for name, scale in (("small", small), ("large", large)):
        manifest = seeded[scale][3]
        figures[scale] = {
            "requests": manifest["scale"],
            "seed_seconds": manifest["seconds"]["total"],
            "operations": {op: cell["1"][name] for op, cell in load["results"].items()},
            "digest": digests[scale],
        }
    return figures


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    return info


def postgres_version(url: str) -> str | None:
    with contextlib.suppress(Exception):
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
        return version
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the portal against its floor.")
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="sqlite, postgresql, or both (comma-separated)"
    )
    parser.add_argument("--scale", default="100k", help="10k, 100k, 1m, or a number of requests")
    parser.add_argument("--scaling", default="", help="e.g. 10k,1m: run the scaling check instead")
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers, for the portal and the floor"
    )
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--duration", type=float, default=2.5, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating phases per target and concurrency")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--resume-pool", type=int, default=200, help="prepared requests per target for resumes"
    )
    parser.add_argument("--package-mb", type=int, default=100, help="package-memory probe size (0: skip)")
    parser.add_argument("--postgres-url", default=os.environ.get("PORTAL_BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--work", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--report", default=str(ROOT / "bench" / "REPORT.md"))
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--baseline",
        nargs=2,
        metavar=("LABEL", "JSON"),
        help="add the results JSON of another run (e.g. of the code before the fixes) for comparison",
    )
    args = parser.parse_args(argv)
    args.ops = [op for op in args.ops.split(",") if op]
    args.scaling = [s for s in args.scaling.split(",") if s]
    unknown = set(args.ops) - set(KINDS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    results_path = Path(args.json)
    merged: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    merged.setdefault("backends", {})
    merged.setdefault("scaling", {})
    info = machine()
    info["postgresql"] = postgres_version(args.postgres_url)
    for backend in [b.strip() for b in args.db.split(",") if b.strip() and b.strip() != "none"]:
        if backend not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {backend!r}")
        if args.scaling:
            scales = scaling_backend(backend, args, work)
            merged["scaling"][backend] = {
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {**info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
                "scales": scales,
            }
        else:
            figures = bench_backend(backend, args, work)
            figures["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            figures["machine"] = {**info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
            figures["settings"] = {
                "duration_s": args.duration,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "warmup_s": args.warmup,
            }
            merged["backends"][backend] = figures
    if args.baseline:
        label, path = args.baseline
        baseline = json.loads(Path(path).read_text())
        report.evaluate(baseline)
        merged["baseline"] = {"label": label, "backends": baseline.get("backends", {})}
    report.evaluate(merged)
    results_path.write_text(json.dumps(merged, indent=1) + "\n")
    Path(args.report).write_text(report.render(merged))
    log(f"done in {time.perf_counter() - started:.0f} s: {args.report}, {results_path}")
    print(report.summary(merged))


if __name__ == "__main__":
    main()
