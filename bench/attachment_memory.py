"""Attachment-memory probe: how much a process grows to take in, package, then send out a ~100 MB file.

In a fresh process over a fresh SQLite database (or ``--database-url``): a manual system with a file
field and a request waiting for it. A ``--size-mb`` file is uploaded through the WSGI app as
``multipart/form-data`` to the API's upload route, from a body generated as it is read (the client holds
none of it); the request is resumed and run (the package lists the file); the file is then downloaded
from the reviewer's package page, and the package as ZIP, each response read chunk by chunk and dropped.
As in ``bench/package_memory.py``, before each step the heap's free memory is given back to the system
and the peak-RSS counter reset, so each figure is that step's own peak above what the process used
before it.

Target: uploads and downloads stream, so none of these grows beyond ~20 MB for a 100 MB file.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.package_memory import growth, reset_peak

BOUNDARY = "----attachment-probe"
PIECE = hashlib.sha256(b"probe").digest() * 2048  # 64 KiB, not compressible by pattern


class GeneratedBody:
    """A multipart body with one file part of ``size`` bytes, produced as it is read."""

    def __init__(self, field: str, size: int):
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="probe.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.file_bytes = len(b"%PDF-1.7\n") + size
        self.length = len(self.head) + size + len(self.tail)
        self._left = size
        self._pending = self.head
        self._tail_sent = False
        self.hash = hashlib.sha256(b"%PDF-1.7\n")

    def read(self, n: int = -1) -> bytes:
        n = 64 * 1024 if n is None or n < 0 else n
        while len(self._pending) < n and (self._left or not self._tail_sent):
            if self._left:
                piece = PIECE[: min(len(PIECE), self._left)]
                self._left -= len(piece)
                self.hash.update(piece)
                self._pending += piece
            else:
                self._pending += self.tail
                self._tail_sent = True
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


def upload(app, path: str, body: GeneratedBody, secret: str) -> dict:
    """PATCH ``body`` through the WSGI app as a client would stream it; the JSON answer."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(
        path=path, method="PATCH", headers={"Authorization": f"Bearer {secret}"}
    ).get_environ()
    environ.update(
        {
            "wsgi.input": body,
            "CONTENT_LENGTH": str(body.length),
            "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        }
    )
    status: list[str] = []
    answer = b"".join(app.wsgi_app(environ, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("200"):
        raise RuntimeError(f"the upload answered {status[0]}: {answer[:500]!r}")
    return json.loads(answer)


def drain(client, path: str) -> tuple[int, str]:
    """GET ``path``, reading the body chunk by chunk and dropping it: (bytes, SHA-256)."""
    response = client.get(path, buffered=False)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}")
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in response.response:
            size += len(chunk)
            digest.update(chunk)
    finally:
        response.close()
    return size, digest.hexdigest()


def prepare(app) -> tuple[str, str]:
    """A webhook with a file field, a request waiting for it, a reviewer; (request id, API token)."""
    from portal.execution import dispatch
    from portal.extensions import db
    from portal.models.audit import Actor
    from portal.services import connections, privacy_requests, tokens, users, webhooks

    actor = Actor.system("attachment-probe")
    conn = connections.create_connection(
        name="Scans", key="scans", connection_type="manual_webhook", actor=actor
    )
    webhooks.create_webhook(conn, [{"pii_field": "Scan", "type": "file"}], actor)
    staff = users.create_user("probe-staff@example.com", "staff", "probe-password-1234", actor)
    users.create_user("probe-reviewer@example.com", "reviewer", "probe-password-1234", actor)
    _, secret = tokens.create_token(staff, "probe", actor)
    request_id = privacy_requests.create_request(
        identity={"email": "subject@example.com"}, policy_key="default_access_policy", actor=actor
    ).id
    dispatch.commit_and_run()
    db.session.commit()
    return request_id, secret


def probe(database_url: str | None, size_mb: int) -> dict[str, Any]:
    from flask_migrate import upgrade

    from portal import create_app
    from portal.crypto import generate_key
    from portal.execution import dispatch
    from portal.extensions import db
    from portal.models import PrivacyRequest
    from portal.models.audit import Actor
    from portal.services import privacy_requests

    with tempfile.TemporaryDirectory() as instance:
        config = {
            "DATABASE_URL": database_url or f"sqlite:///{Path(instance) / 'probe.sqlite3'}",
            "ENCRYPTION_KEY": os.environ.get("BENCH_ENCRYPTION_KEY") or generate_key(),
            "SECRET_KEY": "attachment-probe",
            "SESSION_COOKIE_SECURE": False,
            "WTF_CSRF_ENABLED": False,
            "REQUIRE_PACKAGE_REVIEW": False,
            "MAX_ATTACHMENT_MB": size_mb + 1,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
        app = create_app(config, instance_path=instance)
        with app.app_context():
            upgrade()
            request_id, secret = prepare(app)
            db.session.remove()
        result: dict[str, Any] = {"file_mb": size_mb}
        gc.collect()

        body = GeneratedBody("Scan", size_mb * 1024 * 1024)
        before = reset_peak()
        t0 = time.perf_counter()
        answer = upload(
            app, f"/api/v1/privacy-request/{request_id}/access_manual_webhook/scans", body, secret
        )
        result["upload_s"] = round(time.perf_counter() - t0, 1)
        result["upload_growth_mb"] = growth(before)
        (stored,) = answer["fields"]["scan"]
        if stored["sha256"] != body.hash.hexdigest() or stored["size"] != body.file_bytes:
            raise RuntimeError("the stored file is not the uploaded one")

        with app.app_context():
            before = reset_peak()
            privacy_requests.resume_request(request_id, Actor.system("attachment-probe"))
            dispatch.commit_and_run()
            result["build_growth_mb"] = growth(before)
            if db.session.get(PrivacyRequest, request_id).status != "complete":
                raise RuntimeError("the probe's request did not complete")
            db.session.remove()

        reviewer = app.test_client()
        reviewer.post(
            "/auth/login", data={"email": "probe-reviewer@example.com", "password": "probe-password-1234"}
        )
        for kind, path in (
            ("file", f"/packages/{request_id}/attachments/{stored['id']}"),
            ("zip", f"/packages/{request_id}/package.zip"),
        ):
            gc.collect()
            before = reset_peak()
            t0 = time.perf_counter()
            size, digest = drain(reviewer, path)
            result[f"{kind}_s"] = round(time.perf_counter() - t0, 1)
            result[f"{kind}_growth_mb"] = growth(before)
            if kind == "file" and (size, digest) != (stored["size"], stored["sha256"]):
                raise RuntimeError("the downloaded file is not the uploaded one")
        result["note"] = (
            f"A {size_mb} MB file: the upload grew the process by {result['upload_growth_mb']} MB, the run "
            f"by {result['build_growth_mb']} MB, its download by {result['file_growth_mb']} MB and the "
            f"ZIP's by {result['zip_growth_mb']} MB."
        )
        with app.app_context():
            db.engine.dispose()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result = probe(args.database_url, args.size_mb)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
