"""In-process timings of single operations: what a patch of ``portal.patches`` saves, without a server.

``make bench`` measures the portal as users meet it (gunicorn, a load process, ratios to a floor). This
calls the app through Flask's test client in one process, so a few hundred microseconds in one view show:
the request page (50 webhooks entered, its latest 20 events), the queue's first page (50 rows) and a
manual-input form save. With ``--without PATCH`` a second app is built without that patch, over the same
database, and the two are called in turn, round after round, so both see the same machine; each
operation's median wall time and median CPU time of this process (the second excludes the database
server's work, and so the noise of a busy machine) are printed, and the difference to the portal as it is.

Usage: ``python -m bench.inprocess --db sqlite|postgresql [--rounds 600] [--without limiter-hooks]
[--without read-only-commit]``. The database is seeded once (``bench.seed``, 400 requests) under
``--work`` and reused.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench.run import DEFAULT_PG
from bench.seed import Pools, bench_config, migrate_and_seed

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KEY = "zRHhzjZ9a2vh9g1kr9rJmA2rYyY5D5hYb6l2pRj0oGc="  # a throwaway database on this machine
WITHOUT = ("limiter-hooks", "read-only-commit")  # the patches of ``portal.patches`` that speed requests up
WARMUP = 30  # rounds not counted: caches, prepared statements


def database(backend: str, work: Path, pg_url: str) -> tuple[str, dict]:
    """The seeded database's URL and manifest, seeding it the first time."""
    import sqlalchemy as sa

    manifest_path = work / f"inprocess-{backend}.json"
    if backend == "sqlite":
        url = f"sqlite:///{work / 'inprocess.sqlite3'}"
    else:
        url = sa.make_url(pg_url).set(database="portal_bench_inprocess").render_as_string(hide_password=False)
    if manifest_path.exists():
        return url, json.loads(manifest_path.read_text())
    if backend == "postgresql":
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text('DROP DATABASE IF EXISTS "portal_bench_inprocess" WITH (FORCE)'))
            conn.execute(sa.text('CREATE DATABASE "portal_bench_inprocess"'))
        admin.dispose()
    manifest = migrate_and_seed(
        url, 400, str(work / "instance"), KEY, Pools(resume=2, downloads=2, uploads=50)
    )
    manifest_path.write_text(json.dumps(asdict(manifest)))
    return url, asdict(manifest)


def make_app(url: str, work: Path, without: str | None):
    """The portal, or the portal without one patch (its installer replaced while the app is created)."""
    import portal.patches
    from portal import create_app

    name = {"limiter-hooks": "limit_marked_views_only", "read-only-commit": "keep_prepared_statements"}.get(
        without or ""
    )
    real = getattr(portal.patches, name) if name else None
    if name:
        setattr(portal.patches, name, lambda *args: None)
    try:
        return create_app({**bench_config(url, str(work / "instance"), KEY), "SECRET_KEY": "inprocess"})
    finally:
        if name:
            setattr(portal.patches, name, real)


def signed_in(app, manifest: dict):
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    form = {"csrf_token": token, "email": manifest["users"]["staff"], "password": manifest["password"]}
    assert client.post("/auth/login", data=form).status_code == 302
    return client


def operations(app, manifest: dict) -> dict[str, Callable[[], None]]:
    client = signed_in(app, manifest)
    saver = signed_in(app, manifest)
    hook = manifest["webhooks"][0]
    form_path = f"/requests/{manifest['upload_ids'][0]}/manual/{hook['key']}"
    token = CSRF_RE.search(saver.get(form_path).get_data(as_text=True)).group(1)
    values = {f"field_{fid}": "" for fid in hook["ids"]}
    values[f"field_{hook['ids'][0]}"] = "C-1"
    save = {**values, "csrf_token": token, "save": "Save", "version": str(hook["version"])}

    def request_page():
        assert client.get(f"/requests/{manifest['detail_id']}").status_code == 200

    def queue_first():
        assert client.get("/requests/").status_code == 200

    def form_save():
        assert saver.post(form_path, data=save).status_code == 302

    return {"request_page": request_page, "queue_first": queue_first, "form_save": form_save}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "portal-bench-inprocess")
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--without", action="append", default=[], choices=WITHOUT)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    url, manifest = database(args.db, args.work, args.pg_url)
    variants = ["as is", *(f"without {name}" for name in args.without)]
    ops = {
        variant: operations(make_app(url, args.work, variant.removeprefix("without ") or None), manifest)
        for variant in variants
    }
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for round_ in range(WARMUP + args.rounds):
        for variant, by_name in ops.items():
            for name, op in by_name.items():
                started, started_cpu = time.perf_counter(), time.thread_time()
                op()
                if round_ >= WARMUP:
                    wall.setdefault((variant, name), []).append((time.perf_counter() - started) * 1000)
                    cpu.setdefault((variant, name), []).append((time.thread_time() - started_cpu) * 1000)
    print(f"{args.db}, {args.rounds} rounds; medians in ms, and the difference to the portal as it is")
    for name in ops["as is"]:
        base_wall, base_cpu = (
            statistics.median(wall[("as is", name)]),
            statistics.median(cpu[("as is", name)]),
        )
        for variant in variants:
            w, c = statistics.median(wall[(variant, name)]), statistics.median(cpu[(variant, name)])
            print(
                f"{name:13} {variant:26} wall {w:7.3f} ({(w - base_wall) / base_wall:+6.1%})"
                f"   cpu {c:7.3f} ({(c - base_cpu) / base_cpu:+6.1%})"
            )


if __name__ == "__main__":
    main()
