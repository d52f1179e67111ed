"""Writing a large package to a destination streams it: a fresh process exports a 60 MB package to a local
directory and to S3 (moto's server, another process) and grows far less than the package.

The local figure is the package reader's batch (4 MiB of stored chunks) plus one piece; S3 adds about three
5 MiB parts in flight and the client, a fixed cost whatever the package's size, which is why the package
here is larger than that cost several times over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.storage_helpers import ISOLATED_AWS_ENV, moto_server, new_bucket

PACKAGE_MB = 60


def test_a_large_package_is_written_with_memory_far_below_its_size(tmp_path):
    with moto_server() as endpoint:
        bucket = new_bucket(endpoint)
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.storage_memory_probe",
                "--folder",
                str(tmp_path),
                "--size-mb",
                str(PACKAGE_MB),
                "--s3",
                endpoint,
                "--bucket",
                bucket,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, **ISOLATED_AWS_ENV},
            check=False,
        )
    assert probe.returncode == 0, probe.stderr[-3000:]
    figures = json.loads(probe.stdout.strip().splitlines()[-1])

    assert figures["json_bytes"] > PACKAGE_MB * 1024 * 1024
    assert figures["local_mb"] < PACKAGE_MB / 4, figures
    assert figures["s3_mb"] < PACKAGE_MB / 2, figures
