"""Run in a fresh process by tests/test_storage_memory.py: how much the process grows while a large stored
package is exported to a local directory (and to S3 when ``--s3`` is given).

A fresh SQLite database is migrated, a request gets a package of ``--size-mb`` of rows (written from a
generator, never held whole), then before each export the heap's free memory is given back to the system
and the peak-RSS counter is reset (``/proc/self/clear_refs``), so each figure is that export's own peak
above the memory the process was using. Prints one JSON object: {"json_bytes": ..., "local_mb": ..., "s3_mb": ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
from pathlib import Path

ROW_TEXT = "Customer note: " + "abcdefghij" * 195  # ~2 KB a row


def _peak_reset() -> float:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _status_mb(name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0]) / 1024
    raise RuntimeError(f"{name} not in /proc/self/status")


def _rows(size_mb: int):
    count = size_mb * 1024 * 1024 // (len(ROW_TEXT) + 40)
    for n in range(count):
        yield {"id": n, "note": ROW_TEXT}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--s3")
    parser.add_argument("--bucket")
    args = parser.parse_args()
    folder = Path(args.folder)
    (folder / "exports").mkdir()

    from flask_migrate import upgrade

    from portal import create_app
    from portal.execution.package import PackageWriter
    from portal.extensions import db
    from portal.models import PrivacyRequest
    from portal.services import storage, storage_export
    from tests.conftest import TEST_KEY
    from tests.storage_helpers import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
    from tests.workflow_helpers import STAFF, new_request

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "memory-probe",
            "DATABASE_URL": f"sqlite:///{folder / 'portal.sqlite3'}",
            "ENCRYPTION_KEY": TEST_KEY,
            "STORAGE_LOCAL_ROOT": str(folder / "exports"),
        },
        instance_path=str(folder / "instance"),
    )
    figures: dict[str, float] = {}
    with app.app_context():
        upgrade()
        request_id = new_request()
        with PackageWriter(app.config["PACKAGE_CHUNK_BYTES"]) as writer:
            writer.add("archive:notes", _rows(args.size_mb))
            writer.save(request_id)
        local = storage.create_storage_config(name="Local", storage_type="local", actor=STAFF)
        targets = [("local_mb", local.key)]
        if args.s3:
            remote = storage.create_storage_config(
                name="S3",
                storage_type="s3",
                details={"bucket": args.bucket, "endpoint_url": args.s3, "region_name": REGION},
                actor=STAFF,
            )
            storage.set_secrets(
                remote,
                {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY},
                STAFF,
            )
            targets.append(("s3_mb", remote.key))
        db.session.commit()
        storage_export.test_storage(local, STAFF)  # the first write imports and warms everything it needs
        if args.s3:
            storage_export.test_storage(storage.get_storage_config("s3"), STAFF)
        db.session.commit()
        for figure, key in targets:
            db.session.expire_all()
            before = _peak_reset()
            written = storage_export.export_package(
                db.session.get(PrivacyRequest, request_id),
                storage.get_storage_config(key),
                STAFF,
                before_write=db.session.commit,
            )
            db.session.commit()
            figures[figure] = round(_status_mb("VmHWM") - before, 1)
            figures["json_bytes"] = written.size
        db.session.remove()
        db.engine.dispose()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
