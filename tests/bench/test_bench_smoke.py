"""A tiny run of ``make bench`` (about 10 s): every piece works end to end, so the bench cannot rot.

It seeds a few hundred requests on SQLite, serves the portal and the floor with gunicorn (1 worker each),
drives every operation briefly with one client, probes a 1 MB package, and writes the JSON and the report.
The figures of so short a run mean nothing; only that every operation answered as expected is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.bench


def test_a_tiny_bench_run_measures_every_operation_on_both_targets(tmp_path):
    command = [
        sys.executable, "-m", "bench.run", "--db", "sqlite", "--scale", "smoke", "--workers", "1",
        "--concurrency", "1", "--duration", "0.25", "--rounds", "1", "--warmup", "0", "--resume-pool", "4",
        "--package-mb", "1", "--work", str(tmp_path / "work"), "--json", str(tmp_path / "results.json"),
        "--report", str(tmp_path / "REPORT.md"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    figures = json.loads((tmp_path / "results.json").read_text())["backends"]["sqlite"]
    assert figures["seed"]["counts"]["privacy_requests"] == 400
    assert set(figures["operations"]) == set(OPERATIONS)
    for op, by_concurrency in figures["operations"].items():
        cell = by_concurrency["1"]
        for target in ("portal", "floor"):
            assert cell[target]["requests"] > 0, (op, target)
            assert cell[target]["errors"] == 0, (op, target, cell[target]["error_samples"])
        assert cell["ratios"]["p95"] > 0 and "ok" in cell["verdict"]
    assert figures["rss"]["portal"] and all(w["peak_mb"] > 0 for w in figures["rss"]["portal"])
    assert figures["package_memory"]["package_json_mb"] >= 1

    report = (tmp_path / "REPORT.md").read_text()
    assert "## Ratios to the floor" in report and "## sqlite: figures" in report


def test_a_tiny_scaling_run_reports_the_daily_digest_at_each_size(tmp_path):
    command = [
        sys.executable, "-m", "bench.run", "--db", "sqlite", "--scaling", "300,600", "--workers", "1",
        "--duration", "0.25", "--rounds", "1", "--warmup", "0", "--work", str(tmp_path / "work"),
        "--json", str(tmp_path / "results.json"), "--report", str(tmp_path / "REPORT.md"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    scales = json.loads((tmp_path / "results.json").read_text())["scaling"]["sqlite"]["scales"]
    small, large = scales["300"]["digest"], scales["600"]["digest"]
    assert small["staff"] == large["staff"] > 200 and large["open_tasks"] > small["open_tasks"]
    assert small["digests"] > 150 and large["digests"] > 150  # the team shares the tasks
    assert small["statements"] == large["statements"]  # one pass, not a query per person or request
    report = (tmp_path / "REPORT.md").read_text()
    assert "### Daily digest" in report and "| sqlite | 600 |" in report
