"""Daily-digest probe: how long building every person's digest takes, and how much memory, on the bench
database (``--scaling``: at 10k and at 1M requests, with TEAM staff sharing the open tasks).

In a fresh process: ``digest.digest_rows(now)`` (every provider, every reader, nothing written) is run
once cold and REPEAT times warm; the figures are the cold time, the median warm time, the SQL statements
one build runs (the same at any size: one pass over indexed queries, not a query per person or request),
the peak of Python's heap during a build (``tracemalloc``, a separate run) and the process's peak RSS
above what it used before the build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from typing import Any

from bench.package_memory import growth, reset_peak
from bench.seed import bench_config

REPEAT = 3


def probe(database_url: str, instance_path: str, encryption_key: str) -> dict[str, Any]:
    from sqlalchemy import event, func, select

    from portal import create_app
    from portal.extensions import db
    from portal.models import Task, User, utcnow
    from portal.models.tasks import TASK_OPEN
    from portal.notifications import digest

    app = create_app(bench_config(database_url, instance_path, encryption_key), instance_path=instance_path)
    with app.app_context():
        now = utcnow()
        statements: list[int] = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(1))
        before = reset_peak()
        t0 = time.perf_counter()
        rows = digest.digest_rows(now)
        cold = time.perf_counter() - t0
        rss_growth = growth(before)
        queries = len(statements)
        db.session.rollback()
        warm = []
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            digest.digest_rows(now)
            warm.append(time.perf_counter() - t0)
            db.session.rollback()
        tracemalloc.start()
        digest.digest_rows(now)
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        db.session.rollback()
        open_tasks = db.session.scalar(select(func.count()).select_from(Task).where(Task.state == TASK_OPEN))
        staff = db.session.scalar(select(func.count()).select_from(User).where(User.role == "staff"))
        result = {
            "digests": len(rows),
            "items": sum(len(s["items"]) for r in rows for s in r["context"]["sections"]),
            "open_tasks": open_tasks,
            "staff": staff,
            "statements": queries,
            "cold_s": round(cold, 3),
            "warm_s": round(statistics.median(warm), 3),
            "python_peak_mb": round(python_peak / 1024 / 1024, 1),
            "rss_growth_mb": rss_growth,
        }
        db.session.remove()
        db.engine.dispose()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--instance-path", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = probe(args.database_url, args.instance_path, os.environ["BENCH_ENCRYPTION_KEY"])
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
