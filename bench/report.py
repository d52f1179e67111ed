"""Ratios, targets and the Markdown report of a bench run (``bench/REPORT.md``).

Targets (issue 9), checked at every concurrency:
- API calls and form saves: throughput ≥ 0.6× the floor's, and p95 ≤ 2× the floor's p95;
- HTML pages (the queue, the request page, the JSON and ZIP downloads): p95 ≤ 3× the floor's p95;
- resume + package build for 50 manual inputs: p95 ≤ 5× the p95 of one API upload (same run and clients);
- a web worker's peak RSS ≤ 150 MB after the whole run;
- a package of ~100 MB is built and downloaded with ≤ 50 MB of memory growth (streaming);
- scaling: queue page, request page and API list at 1M requests within 1.3× of their median time at 10k.
Any operation answering with an unexpected status fails, whatever its times.
"""

from __future__ import annotations

import math
from typing import Any

from bench.floor import FLOOR_WORK
from bench.load import KINDS, OPERATIONS, QUEUE_STATUS_FILTER

PAGE_P95 = 3.0
API_P95 = 2.0
API_THROUGHPUT = 0.6
RESUME_VS_UPLOAD = 5.0
RSS_MB = 150.0
PACKAGE_GROWTH_MB = 50.0
SCALING = 1.3

DESCRIPTIONS = {
    "queue_first": "Staff queue, first page (requires input)",
    "queue_status": f"Staff queue, status filter ({QUEUE_STATUS_FILTER})",
    "queue_identity": "Staff queue, search by identity (keyed hash)",
    "queue_page500": "Staff queue, page 500 (all requests)",
    "request_page": "Request page, 50 webhooks all entered",
    "form_save": "Save a manual-input form (8 fields)",
    "api_upload": "API upload (PATCH manual input)",
    "api_view": "API view (GET manual input)",
    "api_list": "API list (GET privacy requests, 50)",
    "resume_build": "API resume + package build, 50 inputs",
    "resume_collect": "API resume + build, 50 inputs + 3×1,000 rows collected",
    "download_json": "Package download, JSON",
    "download_zip": "Package download, ZIP",
}

# What was found and fixed with this bench (kept here so the generated report carries it).
FINDINGS = """\
Fixed in the portal, each found with this bench. The latest round is measured by the before/after table
above.

Earlier rounds: indexes ending in `id` for every list order (migration `0004`); deep pages read their ids
from the index first; totals above 1,000 counted once a minute per process; the webhook field lists cached
per (webhook, version); statements on hot paths built once; lists read `RequestSummary` columns, not
entities; the completed-list index (migration `0006`); sessions re-signed once a minute; Argon2id with
OWASP's profile (peak RSS 145 → 104 MB); streaming packages (migration `0005`: a 100 MB package builds
and downloads in +18…24 MB); saves as one `INSERT … ON CONFLICT DO UPDATE` (two staff saving the same new
entry no longer collide) and Core statements for hot paths (`extensions.run`); a form save reads one row
of columns, its form class cached per webhook version, CSRF checked once; the request page's systems and
timeline written in Python (latest 20 events); each queue row's progress counted in the list query over a
covering index (migration `0007`); the rate limiter consulted only by views that declare a limit; inline
runs claimed in the transaction that resumes them; SQLite in write-ahead-log mode with full sync (portal
file only); a PostgreSQL save as one data-modifying statement (lock the request, UPSERT, audit event;
`xmax = 0` makes the event's `replaced` exact); read-only PostgreSQL requests end with COMMIT so psycopg
keeps its prepared statements (`tests/test_transactions.py`); the deny form built only where it is shown.

Latest round:

- **A save's progress is counted by the database.** The form's message ("Every manual system is done:
  you can resume the request now") needs the request's progress. It was read as the 50 gated webhooks
  with this request's entry versions and counted in Python (0.19 ms on SQLite); it is now one aggregate
  row (0.05 ms), and on PostgreSQL it is the last part of the save statement itself, with the saved
  connection counted done only if the version it was saved at is still current — one round trip less
  per form save (PostgreSQL form save: 7 → 6 round trips, the floor's number). Resuming checks the gate
  with the same count. `tests/test_gate_progress.py` holds both counts equal to the gate's list of
  missing systems (disabled, fieldless, non-manual, stale and other requests' entries).

Where the time of a form save goes (measured with Flask's test client, 10,000 requests on SQLite, the
portal's WSGI time per save): 2.3–2.8 ms against the floor's 0.8 ms. A signed-in POST to an empty view
that only flashes a message and redirects — session cookie read and re-signed, user loaded, idle
timeout, CSRF token checked, rate-limit filter, security headers — already takes 0.7–0.9 ms, the floor's
whole save. The save itself (the upload target, the WTForms form built and validated, the values
checked, the request row taken, the entry UPSERT, the audit event with its five indexes, the progress
count, the commit) is the rest, and no single part of it is larger than a fifth.

Not reached, and why (figures of this report; on this shared 2-core machine, where the database, both
servers and the load process share the cores, ratios move by up to ±25% between runs; this session's
machine ran the floor 1.9× (SQLite) and 1.7× (PostgreSQL) faster than the previous report's, median p50,
so the absolute times of the two reports do not compare):

- **Form saves at ≥ 0.6× the floor's throughput** (SQLite 0.40–0.48×, PostgreSQL 0.47–0.54×; the p95
  target of ≤ 2× is met on SQLite with 4 clients and on PostgreSQL with one, 1.94–1.97×, and missed by
  a little elsewhere, 2.13–2.45×). The floor parses the form, runs one SELECT and one UPSERT and commits;
  it checks no CSRF token, loads no user beyond an id, writes no audit event and answers no progress.
  As above, the signed-in POST alone costs what the floor's whole save costs, so 0.6× would leave the
  save itself less time than the floor's bare UPSERT — it would mean dropping one of CSRF, the audit
  event (S7), the row lock that keeps a resume from slipping between check and write, or the progress
  message (announced to screen readers).
- **API upload on SQLite** (0.54× with one client, 0.46× with four; 0.71× and 0.66× in a 10,000-request
  run of the same code an hour earlier; met on PostgreSQL, 0.65–0.73×). SQLite has one writer at a time:
  a portal save holds the write lock while it takes the request row, reads whether the entry exists (so
  the audit's `replaced` is exact), UPSERTs and writes the audit event (a table with five indexes), and
  its commit appends 5 pages to the write-ahead log where the floor's appends 2 (counted on 10,000
  requests: the log's growth over 200 saves).
  With 4 clients on 2 workers, waiting writers back off in SQLite's busy handler, so the longer write
  shows more in throughput than in time per save, and more on the larger database.
- **Request page and queue on SQLite, at the edge of 3×.** This report has the request page at 2.79× and
  3.0× and the queue's first page at 2.73–2.89×; a second SQLite run of the same code twenty minutes
  later (not in this report's figures) had the request page at 3.73× (one client) and 3.10× (four) and
  the first queue page with four clients at 3.08×, everything else within the targets it meets here
  (uploads there: 0.62× and 0.57×; API view 0.64× and 0.70×; form saves 0.43× and 0.49×). The request
  page decrypts and describes 50 entries and 20 events where the floor lists 50 names; its p95 against a
  floor p95 of about 2 ms moves with a single slow phase. On PostgreSQL both are well within (1.7–2.6×).
- **API view with 4 clients on SQLite** (0.59×; 0.64× with one client, 0.84–0.86× on PostgreSQL): at the
  target within this machine's noise. The portal also checks the token's user, scopes, expiry and
  revocation, and answers every current label of the webhook (the missing ones as null), where the floor
  returns the stored object as it is.
"""


def _ratio(a: float, b: float) -> float | None:
    if not b or a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def evaluate(merged: dict[str, Any]) -> None:
    """Add ``ratios`` and ``verdicts`` next to the raw figures (in place)."""
    for figures in merged.get("backends", {}).values():
        checks: list[dict[str, Any]] = []
        for op, by_concurrency in figures["operations"].items():
            for concurrency, cell in by_concurrency.items():
                portal, floor = cell["portal"], cell.get("floor")
                if floor:
                    cell["ratios"] = {
                        "p50": _ratio(portal["p50_ms"], floor["p50_ms"]),
                        "p95": _ratio(portal["p95_ms"], floor["p95_ms"]),
                        "p99": _ratio(portal["p99_ms"], floor["p99_ms"]),
                        "throughput": _ratio(portal["throughput_rps"], floor["throughput_rps"]),
                    }
                cell["verdict"] = _verdict(op, concurrency, cell, figures["operations"])
                checks.append({"what": f"{op} c={concurrency}", **cell["verdict"]})
        portal_workers = figures.get("rss", {}).get("portal", [])
        peak = max((w["peak_mb"] for w in portal_workers), default=None)
        figures["rss_verdict"] = {
            "target": f"≤ {RSS_MB:.0f} MB",
            "measured": f"{peak} MB" if peak is not None else "n/a",
            "ok": peak is not None and peak <= RSS_MB,
        }
        checks.append({"what": "worker peak RSS", **figures["rss_verdict"]})
        probe = figures.get("package_memory")
        if probe:
            worst = max(probe["build_growth_mb"], probe["download_growth_mb"])
            figures["package_verdict"] = {
                "target": f"≤ {PACKAGE_GROWTH_MB:.0f} MB growth for a {probe['package_mb']} MB package",
                "measured": f"build {probe['build_growth_mb']} MB, download {probe['download_growth_mb']} MB",
                "ok": worst <= PACKAGE_GROWTH_MB,
            }
            checks.append({"what": "package memory", **figures["package_verdict"]})
        figures["checks"] = checks
    for scaling in merged.get("scaling", {}).values():
        scales = scaling["scales"]
        if len(scales) < 2:
            continue
        ordered = sorted(scales.values(), key=lambda s: s["requests"])
        small, large = ordered[0], ordered[-1]
        scaling["verdicts"] = {}
        for op in small["operations"]:
            a, b = small["operations"][op], large["operations"][op]
            ratio = _ratio(b["p50_ms"], a["p50_ms"])
            scaling["verdicts"][op] = {
                "target": f"≤ {SCALING}× (median, {large['requests']:,} vs {small['requests']:,})",
                "ratio": ratio,
                "p95_ratio": _ratio(b["p95_ms"], a["p95_ms"]),
                "ok": ratio is not None and ratio <= SCALING and not a["errors"] and not b["errors"],
            }


def _verdict(op: str, concurrency: str, cell: dict[str, Any], operations: dict[str, Any]) -> dict[str, Any]:
    portal, ratios = cell["portal"], cell.get("ratios", {})
    kind = KINDS[op]
    if portal["errors"] or not portal["requests"]:
        return {"target": "no errors", "measured": f"{portal['errors']} errors", "ok": False}
    if kind == "page":
        p95 = ratios.get("p95")
        return {
            "target": f"p95 ≤ {PAGE_P95:g}× floor",
            "measured": f"{p95}×",
            "ok": p95 is not None and p95 <= PAGE_P95,
        }
    if kind in ("api", "save"):
        p95, throughput = ratios.get("p95"), ratios.get("throughput")
        ok = p95 is not None and throughput is not None and p95 <= API_P95 and throughput >= API_THROUGHPUT
        return {
            "target": f"throughput ≥ {API_THROUGHPUT:g}×, p95 ≤ {API_P95:g}× floor",
            "measured": f"{throughput}×, {p95}×",
            "ok": ok,
        }
    if kind == "info":
        return {"target": "none (reported)", "measured": f"{ratios.get('p95')}× floor p95", "ok": None}
    upload = operations.get("api_upload", {}).get(concurrency, {}).get("portal")
    ratio = _ratio(portal["p95_ms"], upload["p95_ms"]) if upload else None
    return {
        "target": f"p95 ≤ {RESUME_VS_UPLOAD:g}× one upload's p95",
        "measured": f"{ratio}× ({portal['p95_ms']} vs {upload['p95_ms'] if upload else '?'} ms)",
        "ok": ratio is not None and ratio <= RESUME_VS_UPLOAD,
    }


# --- Markdown ------------------------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else "✅" if ok else "❌"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(merged: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`); the figures are in `bench/results.json`. Do not",
        "edit by hand: rerun the bench. What it does and why is in `bench/run.py`, `bench/load.py` and",
        "`bench/floor.py`; the README's *Benchmarks* section says how to run it.",
        "",
        "Every portal figure is divided by the figure of the **floor** measured in the same run: a bare Flask",
        "app over the same database, served by the same gunicorn command with the same number of workers,",
        "doing the least work the operation needs. The two are driven in alternating phases by one load",
        "process, so both see the same machine. Ratios are what the targets are about: this machine has 2",
        "cores shared with other jobs (the load average is recorded below), so absolute times drift from run",
        "to run by tens of percent. Ratios drift less: between two full runs of this report, 9 ratios in 10",
        "moved by less than 30% (the resumes, with few samples per phase, more). Read each one as ±30%.",
        "",
    ]
    backends = merged.get("backends", {})
    if backends:
        lines += ["## Ratios to the floor", ""]
        names = list(backends)
        header = "| operation | kind | c | " + " | ".join(
            f"{n}: p95 ratio | {n}: throughput ratio | {n}: target" for n in names
        )
        lines += [header + " |", "|" + "---|" * (3 + 3 * len(names))]
        for op in OPERATIONS:
            for concurrency in ("1", "4"):
                row = [DESCRIPTIONS[op], KINDS[op], concurrency]
                present = False
                for name in names:
                    cell = backends[name]["operations"].get(op, {}).get(concurrency)
                    if cell is None:
                        row += ["—", "—", "—"]
                        continue
                    present = True
                    ratios = cell.get("ratios", {})
                    verdict = cell["verdict"]
                    row += [
                        _fmt(ratios.get("p95")),
                        _fmt(ratios.get("throughput")),
                        f"{_mark(verdict['ok'])} {verdict['measured']}",
                    ]
                if present:
                    lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += ["Targets: " + "; ".join(_targets()) + ".", ""]
        lines += ["## Checks", "", "| backend | check | target | measured | |", "|---|---|---|---|---|"]
        for name, figures in backends.items():
            for check in figures.get("checks", []):
                if check["what"].startswith(tuple(OPERATIONS)):
                    continue
                lines.append(
                    f"| {name} | {check['what']} | {check['target']} | {check['measured']} | {_mark(check['ok'])} |"
                )
        lines.append("")
    scaling = merged.get("scaling", {})
    if scaling:
        lines += [
            "## Scaling",
            "",
            "One client, portal only: the portal on the small database and the portal on the large one, driven "
            "in alternating phases. Median (p50) and p95.",
            "",
        ]
        lines += [
            "| backend | operation | "
            + " | ".join(["requests", "p50 ms", "p95 ms"] * 2)
            + " | p50 ratio | p95 ratio | target |"
        ]
        lines.append("|" + "---|" * 11)
        notes = []
        for name, data in scaling.items():
            ordered = sorted(data["scales"].values(), key=lambda s: s["requests"])
            if len(ordered) < 2:
                continue
            small, large = ordered[0], ordered[-1]
            for op, verdict in data.get("verdicts", {}).items():
                a, b = small["operations"][op], large["operations"][op]
                lines.append(
                    f"| {name} | {DESCRIPTIONS[op]} | {small['requests']:,} | {a['p50_ms']} | {a['p95_ms']} | "
                    f"{large['requests']:,} | {b['p50_ms']} | {b['p95_ms']} | {verdict['ratio']} | "
                    f"{verdict['p95_ratio']} | {_mark(verdict['ok'])} {verdict['target']} |"
                )
            seeds = ", ".join(f"{s['requests']:,} requests in {s['seed_seconds']} s" for s in ordered)
            notes.append(
                f"{name}: seeded {seeds}; run {data.get('generated_at')}. Machine: {_machine(data['machine'])}."
            )
        lines += ["", *[f"- {note}" for note in notes], ""]
    baseline = merged.get("baseline")
    if baseline and backends:
        lines += _baseline_section(baseline, backends)
    for name, figures in backends.items():
        lines += _backend_section(name, figures)
    lines += ["## What the floor does per operation", "", "| operation | floor work |", "|---|---|"]
    lines += [f"| {DESCRIPTIONS[op]} | {FLOOR_WORK[op]} |" for op in OPERATIONS]
    lines += ["", "## Findings and fixes", "", FINDINGS.rstrip(), ""]
    return "\n".join(lines)


def _baseline_section(baseline: dict[str, Any], backends: dict[str, Any]) -> list[str]:
    """The same ratios measured on the code before the fixes (``--baseline``), next to today's."""
    lines = [
        f"## Before and after the fixes ({baseline['label']})",
        "",
        "The same bench (same seed, same load) run on the portal as it was before the latest fixes, on a "
        "machine of the same kind, at another time (so absolute times compare only roughly: compare the "
        "ratios). Where the floor itself changed between the two runs, the findings below say so.",
        "",
        "| backend | operation | c | p95 ratio before → after | throughput ratio before → after "
        "| portal p95 ms before → after | portal req/s before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, before in baseline["backends"].items():
        after = backends.get(name)
        if not after:
            continue
        for op in OPERATIONS:
            for concurrency in ("1", "4"):
                a = after["operations"].get(op, {}).get(concurrency)
                b = before["operations"].get(op, {}).get(concurrency)
                if not a or not b:
                    continue
                ra, rb = a.get("ratios", {}), b.get("ratios", {})
                lines.append(
                    f"| {name} | {DESCRIPTIONS[op]} | {concurrency} | {_fmt(rb.get('p95'))} → {_fmt(ra.get('p95'))} | "
                    f"{_fmt(rb.get('throughput'))} → {_fmt(ra.get('throughput'))} | "
                    f"{b['portal']['p95_ms']} → {a['portal']['p95_ms']} | "
                    f"{b['portal']['throughput_rps']} → {a['portal']['throughput_rps']} |"
                )
        rss_before = max((w["peak_mb"] for w in before.get("rss", {}).get("portal", [])), default=None)
        rss_after = max((w["peak_mb"] for w in after.get("rss", {}).get("portal", [])), default=None)
        lines.append(f"| {name} | worker peak RSS, MB | | {rss_before} → {rss_after} | | | |")
    lines.append("")
    return lines


def _targets() -> list[str]:
    return [
        f"API calls and form saves: throughput ≥ {API_THROUGHPUT:g}× and p95 ≤ {API_P95:g}× the floor's",
        f"pages and downloads: p95 ≤ {PAGE_P95:g}× the floor's",
        f"resume + build: p95 ≤ {RESUME_VS_UPLOAD:g}× one upload's p95",
        f"worker peak RSS ≤ {RSS_MB:.0f} MB",
        f"package memory growth ≤ {PACKAGE_GROWTH_MB:.0f} MB for a 100 MB package",
        f"1M vs 10k ≤ {SCALING}×",
    ]


def _machine(info: dict[str, Any]) -> str:
    parts = [f"{info.get('cpus')} CPUs", f"{info.get('memory_gb')} GB"]
    parts.append(
        f"Python {info.get('python')}, SQLite {info.get('sqlite')}, PostgreSQL {info.get('postgresql')}"
    )
    parts.append(f"load average {info.get('load_average_at_start')} → {info.get('load_average_at_end')}")
    return "; ".join(parts)


def _backend_section(name: str, figures: dict[str, Any]) -> list[str]:
    seed = figures["seed"]
    counts = seed["counts"]
    statuses = ", ".join(
        f"{k.removeprefix('status_')} {v:,}" for k, v in counts.items() if k.startswith("status_")
    )
    settings = figures.get("settings", {})
    lines = [
        f"## {name}: figures",
        "",
        f"Run {figures.get('generated_at')}; {figures['workers']} gunicorn workers each; phases of "
        f"{settings.get('duration_s')} s × {settings.get('rounds')} rounds per target and concurrency. "
        f"Machine: {_machine(figures['machine'])}.",
        "",
        f"Database: {counts['privacy_requests']:,} privacy requests ({statuses}); {counts['manual_webhooks']} "
        f"manual webhooks × {counts['fields_per_webhook']} fields; {counts['manual_inputs']:,} manual inputs on "
        f"{counts['waiting_with_inputs']:,} waiting requests; {counts['access_packages']} packages. Seeded in "
        f"{seed['seconds'].get('total')} s ({_seconds(seed['seconds'])}). Queue page 500 = page {figures['page500']}.",
        "",
        "| operation | c | portal p50 / p95 / p99 ms | portal req/s | floor p50 / p95 / p99 ms | floor req/s | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        for concurrency, cell in figures["operations"].get(op, {}).items():
            p, f = cell["portal"], cell.get("floor") or {}
            floor_times = f"{f.get('p50_ms')} / {f.get('p95_ms')} / {f.get('p99_ms')}" if f else "—"
            lines.append(
                f"| {DESCRIPTIONS[op]} | {concurrency} | {p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']} | "
                f"{p['throughput_rps']} | {floor_times} | {f.get('throughput_rps', '—')} | "
                f"{p['errors']}{' / ' + str(f.get('errors')) if f else ''} |"
            )
    lines.append("")
    rss = figures.get("rss", {})
    if rss:
        lines += ["Peak RSS per web worker after the whole run (VmHWM), MB:", ""]
        for target, workers in rss.items():
            lines.append(f"- {target}: " + ", ".join(f"{w['peak_mb']} (now {w['rss_mb']})" for w in workers))
        lines.append("")
    probe = figures.get("package_memory")
    if probe:
        lines += [
            f"Package-memory probe: a package of {probe['package_mb']} MB ({probe['rows']:,} rows) built by "
            f"the runner and downloaded as JSON and ZIP in a fresh process: {probe['note']}",
            "",
        ]
    errors = [
        (op, c, t, sample)
        for op, by_c in figures["operations"].items()
        for c, cell in by_c.items()
        for t in ("portal", "floor")
        if cell.get(t)
        for sample in cell[t]["error_samples"]
    ]
    if errors:
        lines += ["Error samples:", ""] + [f"- {op} c={c} {t}: `{s}`" for op, c, t, s in errors] + [""]
    return lines


def _seconds(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v} s" for k, v in seconds.items() if k != "total")


def summary(merged: dict[str, Any]) -> str:
    """A few lines for the terminal: every check that missed."""
    out = []
    for name, figures in merged.get("backends", {}).items():
        checks = [c for c in figures.get("checks", []) if c["ok"] is not None]
        missed = [c for c in checks if not c["ok"]]
        out.append(f"{name}: {len(checks) - len(missed)} checks met, {len(missed)} missed")
        out += [f"  ❌ {c['what']}: {c['measured']} (target {c['target']})" for c in missed]
    for name, scaling in merged.get("scaling", {}).items():
        for op, verdict in scaling.get("verdicts", {}).items():
            out.append(f"{name} scaling {op}: {verdict['ratio']}× {_mark(verdict['ok'])}")
    return "\n".join(out)
