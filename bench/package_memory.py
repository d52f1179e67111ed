"""Package-memory probe: how much a process grows to build, then to download, a package of ~100 MB.

In a fresh process over the bench database: a SQLite source database holds ``--size-mb`` of rows for one
data subject (4 collections of 4 KB rows); it is attached as a connection with its fides dataset; a
request with every manual input is run by the runner (collection, package assembly, encryption, storage),
then its package is downloaded as JSON and as ZIP through the WSGI app, each chunk of the response read
and dropped as a client would. Before each step the heap's free memory is given back to the system
(glibc ``malloc_trim``) and the peak-RSS counter is reset (``/proc/self/clear_refs``), so each figure is
that step's own peak above the memory the process was using before it, not hidden in memory an earlier
step freed but kept.

Target: building a package streams, so none of these grows beyond 50 MB for a 100 MB package.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from bench.seed import PASSWORD, USERS, bench_config, email_dataset_yaml, sample_values

COLLECTIONS = ("documents_a", "documents_b", "documents_c", "documents_d")
ROW_BYTES = 4_000
SUBJECT = "large.package@example.com"
SOURCE_KEY = "bench_large_source"


def memory_mb() -> dict[str, float]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found


def reset_peak() -> float:
    """Make the peak counter start again from the current RSS; returns that RSS (MB)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the figures may then read lower
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return memory_mb()["VmRSS"]


def growth(before: float) -> float:
    return round(memory_mb()["VmHWM"] - before, 1)


def make_source(path: Path, size_mb: int) -> int:
    """4 tables of ~4 KB rows for SUBJECT, ``size_mb`` in all; returns the number of rows."""
    rows_per_table = max(1, size_mb * 1024 * 1024 // (len(COLLECTIONS) * ROW_BYTES))
    connection = sqlite3.connect(path)
    try:
        for table in COLLECTIONS:
            connection.execute(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email TEXT NOT NULL, body TEXT)"
            )
            connection.execute(f"CREATE INDEX ix_{table}_email ON {table} (lower(email))")
            body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 80)[:ROW_BYTES]
            connection.executemany(
                f"INSERT INTO {table} (email, body) VALUES (?, ?)",  # noqa: S608 - the bench's own table names
                ((SUBJECT, f"{n:08d} {body}") for n in range(rows_per_table)),
            )
        connection.commit()
    finally:
        connection.close()
    return rows_per_table * len(COLLECTIONS)


def dataset_yaml() -> str:
    return email_dataset_yaml("large_source", "Large source", COLLECTIONS, {"body": "user.content"})


def prepare(app, source: Path) -> str:
    """The connection, its dataset, and an approved request whose 50 manual inputs are all entered."""
    from sqlalchemy import select

    from portal.crypto import keyring
    from portal.extensions import db
    from portal.models import ManualInput, ManualWebhook, Policy, PrivacyRequest, RequestStatus, utcnow
    from portal.models.audit import Actor
    from portal.services import connections, datasets, db_connections

    actor = Actor.system("bench-probe")
    conn = connections.create_connection(
        name=f"Large source {uuid.uuid4().hex[:6]}", key=SOURCE_KEY, connection_type="sqlite", actor=actor
    )
    db_connections.save_secrets(conn, {"path": str(source.resolve())}, actor)
    datasets.save_dataset_text(conn, dataset_yaml(), actor)
    policy = db.session.scalar(select(Policy).where(Policy.key == "default_access_policy"))
    now = utcnow()
    request = PrivacyRequest(
        policy=policy,
        identity={"email": SUBJECT},
        email_index=keyring().blind_index(SUBJECT),
        status=RequestStatus.APPROVED.value,
        created_at=now,
        due_date=now,
    )
    db.session.add(request)
    db.session.flush()
    for n, hook in enumerate(db.session.scalars(select(ManualWebhook))):
        labels = [(f["dsr_package_label"], f.get("type", "text")) for f in hook.fields]
        db.session.add(
            ManualInput(
                privacy_request_id=request.id,
                connection_config_id=hook.connection_config_id,
                values=sample_values(labels, n),
                version=hook.version,
                entered_by_label="bench-probe",
            )
        )
    db.session.commit()
    return request.id


def drain(app, path: str, cookie: str) -> int:
    """GET ``path`` through the WSGI app, reading the body chunk by chunk and dropping it."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=path, headers={"Cookie": cookie}).get_environ()
    status: list[str] = []
    body = app.wsgi_app(environ, lambda s, h, e=None: status.append(s))
    size = 0
    try:
        for chunk in body:
            size += len(chunk)
    finally:
        if hasattr(body, "close"):
            body.close()
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"GET {path} answered {status}")
    return size


def probe(database_url: str, key: str, instance_path: str, size_mb: int) -> dict[str, Any]:
    from portal import create_app
    from portal.execution.runner import run_privacy_request
    from portal.extensions import db
    from portal.models import AccessPackage, ConnectionConfig, PrivacyRequest

    source = Path(instance_path) / f"large-source-{uuid.uuid4().hex[:8]}.sqlite3"
    t0 = time.perf_counter()
    rows = make_source(source, size_mb)
    config = {
        **bench_config(database_url, instance_path, key),
        "SESSION_COOKIE_SECURE": False,
        "LOGIN_RATE_LIMIT": "1000 per minute",
        "COLLECTION_MAX_ROWS": rows,
    }
    app = create_app(config, instance_path=instance_path)
    result: dict[str, Any] = {"package_mb": size_mb, "rows": rows}
    try:
        with app.app_context():
            request_id = prepare(app, source)
        client = app.test_client()
        login = client.get("/auth/login").get_data(as_text=True)
        token = login.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        answer = client.post(
            "/auth/login", data={"csrf_token": token, "email": USERS["admin"], "password": PASSWORD}
        )
        if answer.status_code != 302:
            raise RuntimeError(f"sign-in failed ({answer.status_code})")
        cookie = f"session={client.get_cookie('session').value}"
        result["setup_s"] = round(time.perf_counter() - t0, 1)

        with app.app_context():
            before = reset_peak()
            t0 = time.perf_counter()
            status = run_privacy_request(request_id)
            result["build_s"] = round(time.perf_counter() - t0, 1)
            result["build_growth_mb"] = growth(before)
            result["status"] = status
            db.session.remove()
        with app.app_context():
            stored = db.session.get(PrivacyRequest, request_id)
            if stored.status != "complete":
                raise RuntimeError(f"the probe's run ended in {stored.status}: {stored.error_message}")
            db.session.remove()
        gc.collect()

        growths = {}
        for kind, path in (
            ("json", f"/packages/{request_id}/package.json"),
            ("zip", f"/packages/{request_id}/package.zip"),
        ):
            before = reset_peak()
            t0 = time.perf_counter()
            size = drain(app, path, cookie)
            result[f"{kind}_s"] = round(time.perf_counter() - t0, 1)
            result[f"{kind}_bytes"] = size
            growths[kind] = growth(before)
            gc.collect()
        result["json_growth_mb"], result["zip_growth_mb"] = growths["json"], growths["zip"]
        result["download_growth_mb"] = max(growths.values())
        result["package_json_mb"] = round(result["json_bytes"] / 1024 / 1024, 1)
        result["note"] = (
            f"{result['package_json_mb']} MB of JSON; building grew the process by {result['build_growth_mb']} MB, "
            f"the JSON download by {growths['json']} MB and the ZIP download by {growths['zip']} MB."
        )
        with app.app_context():
            db.session.execute(
                AccessPackage.__table__.delete().where(AccessPackage.privacy_request_id == request_id)
            )
            db.session.commit()
    finally:
        with app.app_context():  # leave the database as it was: a connection to a deleted file fails runs
            db.session.execute(ConnectionConfig.__table__.delete().where(ConnectionConfig.key == SOURCE_KEY))
            db.session.commit()
            db.engine.dispose()
        source.unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--instance-path", required=True)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    key = os.environ.get("BENCH_ENCRYPTION_KEY")
    if not key:
        parser.error("set BENCH_ENCRYPTION_KEY")
    result = probe(args.database_url, key, args.instance_path, args.size_mb)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
