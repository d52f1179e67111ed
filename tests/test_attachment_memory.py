"""A 100 MB attachment streams in and out: the process grows by at most ~20 MB for any step
(``bench/attachment_memory.py``, run in a fresh process so that its figures are its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_100_mb_attachment_adds_at_most_20_mb(tmp_path):
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, "-m", "bench.attachment_memory", "--size-mb", "100", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = json.loads(out.read_text())
    for step in ("upload", "build", "file", "zip"):
        assert result[f"{step}_growth_mb"] <= 20, result
