"""The floor: a bare Flask app over the bench database doing the least work each operation needs.

Every portal figure in the report is divided by this app's figure for the same operation, measured in the
same run, on the same database, behind the same gunicorn command. What each endpoint does is the floor's
definition (``FLOOR_WORK``, printed in the report); it skips everything the portal adds on top (roles,
CSRF, WTForms, validation, audit events, the ORM, templates with a layout).

Authentication is kept to its minimal cost on both sides: the HTML endpoints read a user id from Flask's
signed session cookie and load that user (one primary-key SELECT); the API endpoints look up the bearer
token's SHA-256 (one indexed SELECT). ``POST /login`` sets the session without a password check.

Run: ``BENCH_DATABASE_URL=... BENCH_ENCRYPTION_KEY=... gunicorn -w 2 -b 127.0.0.1:8001 bench.floor:app``.

Over 400 lines because it has one endpoint per benchmarked operation, each a few statements.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, Response, abort, jsonify, redirect, request, session

from bench.seed import SOURCE_COLLECTIONS, SOURCE_KEY
from portal.crypto import Keyring
from portal.models.packages import Packer, decode_rows

FLOOR_WORK = {
    "queue_first": "session user (1 SELECT by id); 1 indexed SELECT of 50 rows (status, due order); plain table",
    "queue_status": "as queue_first, another status",
    "queue_identity": "session user; 1 SELECT of the blind-index matches (50 max); plain table",
    "queue_page500": "session user; 1 SELECT of 50 rows at OFFSET (page-1)*50 over all requests; plain table",
    "request_page": "session user; SELECT request; SELECT 50 webhooks; SELECT its inputs; plain list",
    "form_save": "session user; parse form; 1 SELECT (request status, connection, version); 1 UPSERT; commit; 302",
    "api_upload": "token (1 SELECT); 1 SELECT; encrypt; 1 UPSERT; commit; JSON",
    "api_view": "token; 1 SELECT of the input joined with its webhook; decrypt; JSON",
    "api_list": "token; 1 indexed SELECT of the 50 newest requests, policy and reviewer joined; the API's item JSON",
    "resume_build": "token; CAS UPDATE; SELECT 50 webhooks + 50 inputs; decrypt; 3 SELECTs on the source database (no rows for this subject); build; encrypt; INSERT package + its chunks (one per key); UPDATE; commit",
    "resume_collect": "as resume_build, the 3 SELECTs returning 1,000 rows each",
    "download_json": "session user; SELECT package and its chunks; INSERT audit row (S7); commit; decrypt; indent; attachment",
    "download_zip": "as download_json; ZIP of package.json + one CSV per key",
    "my_tasks": "session user; COUNT of the user's open tasks; 1 indexed SELECT of 50 (due order) with system name "
    "and request status; 1 grouped COUNT of the page's current inputs; plain table",
    "tasks_due_soon": "as my_tasks over every open task due within 7 days",
    "request_notes": "as request_page, plus 1 SELECT of the request's notes (20); decrypt each; plain list",
}
TASKS = (
    "<!doctype html><title>Tasks</title><p>{{ total }}</p><table>"
    "{% for r in rows %}<tr><td><a href='/requests/{{ r[1] }}'>{{ r[1] }}</a></td><td>{{ r[2] }}</td>"
    "<td>{{ done.get(r[1], 0) }}</td><td>{{ r[3] }}</td><td>{{ r[4] }}</td></tr>{% endfor %}</table>"
)
NOTES = "<ol>{% for n in notes %}<li>{{ n[1] }}: {{ n[0] }} ({{ n[2] }})</li>{% endfor %}</ol>"

QUEUE = (
    "<!doctype html><title>Queue</title><table>"
    "{% for r in rows %}<tr><td><a href='/requests/{{ r.id }}'>{{ r.id }}</a></td><td>{{ r.status }}</td>"
    "<td>{{ r.due_date }}</td></tr>{% endfor %}</table>"
)
DETAIL = (
    "<!doctype html><title>{{ pr.id }}</title><h1>{{ pr.id }} {{ pr.status }}</h1><ul>"
    "{% for h in hooks %}<li>{{ h.name }}: {{ 'done' if h.id in done else 'not started' }}</li>{% endfor %}</ul>"
)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("BENCH_SECRET_KEY", uuid.uuid4().hex)
    url = os.environ["BENCH_DATABASE_URL"]
    engine = sa.create_engine(url, pool_pre_ping=True)
    sqlite = engine.dialect.name == "sqlite"
    ring = Keyring(os.environ["BENCH_ENCRYPTION_KEY"])
    source_path = os.environ.get("BENCH_SOURCE_PATH")
    source = sa.create_engine(f"sqlite:///{source_path}") if source_path else None
    queue_template = app.jinja_env.from_string(QUEUE)  # compiled once, as the portal's templates are
    detail_template = app.jinja_env.from_string(DETAIL)
    tasks_template = app.jinja_env.from_string(TASKS)
    notes_template = app.jinja_env.from_string(NOTES)

    def stamp(value: datetime):
        return value.replace(tzinfo=None).isoformat(" ") if sqlite else value

    def user_or_403(conn) -> None:
        uid = session.get("uid")
        if (
            uid is None
            or conn.execute(sa.text("SELECT id FROM users WHERE id = :id"), {"id": uid}).first() is None
        ):
            abort(403)

    def token_or_401(conn) -> None:
        secret = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        row = conn.execute(sa.text("SELECT id FROM api_tokens WHERE token_hash = :h"), {"h": digest}).first()
        if row is None:
            abort(401)

    def upsert(conn, request_id: str, connection_id: int, version: int, values: dict) -> None:
        conn.execute(
            sa.text(
                'INSERT INTO manual_inputs (privacy_request_id, connection_config_id, "values", version, '
                "entered_by_label, entered_at) VALUES (:r, :c, :v, :ver, 'floor', :t) "
                "ON CONFLICT (privacy_request_id, connection_config_id) DO UPDATE SET "
                '"values" = excluded."values", version = excluded.version, entered_at = excluded.entered_at'
            ),
            {
                "r": request_id,
                "c": connection_id,
                "v": ring.encrypt(json.dumps(values).encode()),
                "ver": version,
                "t": stamp(datetime.now(UTC)),
            },
        )

    def upload_target(conn, request_id: str, key: str):
        row = conn.execute(
            sa.text(
                "SELECT pr.status, cc.id, mw.version FROM privacy_requests pr, connection_configs cc "
                "JOIN manual_webhooks mw ON mw.connection_config_id = cc.id WHERE pr.id = :r AND cc.key = :k"
            ),
            {"r": request_id, "k": key},
        ).first()
        if row is None:
            abort(404)
        if row[0] != "requires_input":
            abort(400)
        return row

    @app.get("/healthz")
    def healthz():
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return jsonify(status="ok")

    @app.post("/login")
    def login():
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT id FROM users WHERE email = :e"), {"e": request.form.get("email", "")}
            ).first()
        if row is None:
            abort(403)
        session["uid"] = row[0]
        return redirect("/queue")

    @app.get("/queue")
    def queue():
        status = request.args.get("status", "requires_input")
        identity = request.args.get("identity")
        page = max(request.args.get("page", 1, type=int), 1)
        with engine.connect() as conn:
            user_or_403(conn)
            if identity:
                where, params = "(email_index = :h OR phone_index = :h)", {"h": identity}
            elif status == "all":
                where, params = "1 = 1", {}
            else:
                where, params = "status = :s", {"s": status}
            rows = conn.execute(
                sa.text(
                    f"SELECT id, status, due_date FROM privacy_requests WHERE {where} "  # noqa: S608 - a fixed condition, values bound
                    "ORDER BY due_date, id LIMIT 50 OFFSET :o"
                ),
                {**params, "o": (page - 1) * 50},
            ).all()
        return queue_template.render(rows=rows)

    @app.get("/requests/<request_id>")
    def detail(request_id: str):
        with engine.connect() as conn:
            user_or_403(conn)
            pr = conn.execute(
                sa.text("SELECT id, status FROM privacy_requests WHERE id = :r"), {"r": request_id}
            ).first()
            if pr is None:
                abort(404)
            hooks = conn.execute(
                sa.text(
                    "SELECT cc.id, cc.name FROM connection_configs cc JOIN manual_webhooks mw "
                    "ON mw.connection_config_id = cc.id WHERE NOT cc.disabled ORDER BY cc.name"
                )
            ).all()
            done = {
                row[0]
                for row in conn.execute(
                    sa.text("SELECT connection_config_id FROM manual_inputs WHERE privacy_request_id = :r"),
                    {"r": request_id},
                )
            }
        return detail_template.render(pr=pr, hooks=hooks, done=done)

    @app.get("/requests/<request_id>/with-notes")
    def detail_with_notes(request_id: str):
        page = detail(request_id)
        with engine.connect() as conn:
            notes = conn.execute(
                sa.text(
                    "SELECT body, author_label, created_at FROM request_notes WHERE privacy_request_id = :r "
                    "ORDER BY created_at DESC, id DESC LIMIT 1000"
                ),
                {"r": request_id},
            ).all()
        shown = [(ring.decrypt(bytes(body)).decode(), author, at) for body, author, at in notes]
        return page + notes_template.render(notes=shown)

    @app.get("/tasks")
    def tasks():
        due_soon = request.args.get("due") == "soon"
        with engine.connect() as conn:
            user_or_403(conn)
            if due_soon:
                today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                where = "t.state = 'open' AND t.due_date >= :lo AND t.due_date < :hi"
                params = {"lo": stamp(today), "hi": stamp(today + timedelta(days=8))}
            else:
                where, params = "t.state = 'open' AND t.assignee_id = :u", {"u": session["uid"]}
            total = conn.execute(
                sa.text(f"SELECT count(*) FROM tasks t WHERE {where}"),  # noqa: S608 - a fixed condition, values bound
                params,
            ).scalar()
            rows = conn.execute(
                sa.text(
                    "SELECT t.id, t.privacy_request_id, cc.name, t.due_date, pr.status FROM tasks t "  # noqa: S608 - a fixed condition, values bound
                    "JOIN connection_configs cc ON cc.id = t.connection_config_id "
                    f"JOIN privacy_requests pr ON pr.id = t.privacy_request_id WHERE {where} "
                    "ORDER BY t.due_date, t.id LIMIT 50"
                ),
                params,
            ).all()
            ids = sorted({row[1] for row in rows})
            done = {}
            if ids:
                done = dict(
                    conn.execute(
                        sa.text(
                            "SELECT mi.privacy_request_id, count(*) FROM manual_inputs mi JOIN manual_webhooks mw "
                            "ON mw.connection_config_id = mi.connection_config_id AND mw.version = mi.version "
                            "WHERE mi.privacy_request_id IN :ids GROUP BY mi.privacy_request_id"
                        ).bindparams(sa.bindparam("ids", expanding=True)),
                        {"ids": ids},
                    ).all()
                )
        return tasks_template.render(rows=rows, total=total, done=done)

    @app.post("/requests/<request_id>/manual/<key>")
    def form_save(request_id: str, key: str):
        values = {name: value or None for name, value in request.form.items() if name.startswith("field_")}
        with engine.begin() as conn:
            user_or_403(conn)
            _, connection_id, version = upload_target(conn, request_id, key)
            upsert(conn, request_id, connection_id, version, values)
        return redirect(f"/requests/{request_id}")

    @app.route("/api/privacy-request/<request_id>/access_manual_webhook/<key>", methods=["PATCH"])
    def api_upload(request_id: str, key: str):
        values = request.get_json()
        with engine.begin() as conn:
            token_or_401(conn)
            _, connection_id, version = upload_target(conn, request_id, key)
            upsert(conn, request_id, connection_id, version, values)
        return jsonify(checked=True, fields=values)

    @app.get("/api/privacy-request/<request_id>/access_manual_webhook/<key>")
    def api_view(request_id: str, key: str):
        with engine.connect() as conn:
            token_or_401(conn)
            row = conn.execute(
                sa.text(
                    'SELECT mi."values", mi.version = mw.version FROM manual_inputs mi '
                    "JOIN connection_configs cc ON cc.id = mi.connection_config_id "
                    "JOIN manual_webhooks mw ON mw.connection_config_id = cc.id "
                    "WHERE mi.privacy_request_id = :r AND cc.key = :k"
                ),
                {"r": request_id, "k": key},
            ).first()
        if row is None:
            return jsonify(checked=False, fields={})
        return jsonify(checked=bool(row[1]), fields=json.loads(ring.decrypt(bytes(row[0]))))

    def decrypted_text(value) -> str | None:
        return None if value is None else ring.decrypt(bytes(value)).decode()

    def iso(value) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite hands back text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC).isoformat() if value.tzinfo is None else value.isoformat()

    @app.get("/api/privacy-request")
    def api_list():
        """The same item shape as the API's (S6): what the operation must return, read in one SELECT."""
        with engine.connect() as conn:
            token_or_401(conn)
            rows = conn.execute(
                sa.text(
                    "SELECT pr.id, pr.external_id, pr.status, p.key, p.name, pr.created_at, pr.due_date, "
                    "pr.started_processing_at, pr.finished_processing_at, pr.reviewed_at, u.email, "
                    "pr.denial_reason, pr.error_message FROM privacy_requests pr "
                    "JOIN policies p ON p.id = pr.policy_id LEFT JOIN users u ON u.id = pr.reviewed_by_id "
                    "ORDER BY pr.created_at DESC, pr.id DESC LIMIT 50"
                )
            ).all()
        items = [
            {
                "id": r[0],
                "external_id": decrypted_text(r[1]),
                "status": r[2],
                "policy": {"key": r[3], "name": r[4]},
                "created_at": iso(r[5]),
                "due_date": iso(r[6]),
                "started_processing_at": iso(r[7]),
                "finished_processing_at": iso(r[8]),
                "reviewed_at": iso(r[9]),
                "reviewed_by": r[10],
                "denial_reason": decrypted_text(r[11]),
                "error_message": r[12],
            }
            for r in rows
        ]
        return jsonify(items=items, page=1, size=50)

    @app.post("/api/privacy-request/<request_id>/resume")
    def resume(request_id: str):
        now = datetime.now(UTC)
        with engine.begin() as conn:
            token_or_401(conn)
            claimed = conn.execute(
                sa.text(
                    "UPDATE privacy_requests SET status = 'in_processing', updated_at = :t "
                    "WHERE id = :r AND status = 'requires_input'"
                ),
                {"r": request_id, "t": stamp(now)},
            )
            if claimed.rowcount != 1:
                abort(400)
            hooks = conn.execute(
                sa.text(
                    "SELECT cc.id, cc.key, mw.fields FROM connection_configs cc JOIN manual_webhooks mw "
                    "ON mw.connection_config_id = cc.id WHERE NOT cc.disabled"
                )
            ).all()
            inputs = dict(
                conn.execute(
                    sa.text(
                        'SELECT connection_config_id, "values" FROM manual_inputs WHERE privacy_request_id = :r'
                    ),
                    {"r": request_id},
                ).all()
            )
            package = {}
            if source is not None:  # the automated part: the same 3 collections the portal's dataset names
                blob = conn.execute(
                    sa.text("SELECT identity FROM privacy_requests WHERE id = :r"), {"r": request_id}
                ).scalar()
                email = json.loads(ring.decrypt(bytes(blob))).get("email", "").lower()
                with source.connect() as source_conn:
                    for table in SOURCE_COLLECTIONS:
                        rows = source_conn.execute(
                            sa.text(
                                f"SELECT id, email, kind, detail, at FROM {table} WHERE lower(email) = :e ORDER BY id"  # noqa: S608 - the bench's own table names
                            ),
                            {"e": email},
                        )
                        package[f"{SOURCE_KEY}:{table}"] = [dict(row) for row in rows.mappings()]
            for connection_id, key, fields in hooks:
                fields = json.loads(fields) if isinstance(fields, str) else fields
                values = json.loads(ring.decrypt(bytes(inputs[connection_id])))
                package[key] = [{f["dsr_package_label"]: values.get(f["dsr_package_label"]) for f in fields}]
            packer = Packer()
            parts = [chunk for key, rows in package.items() for chunk in packer.add(key, rows)]
            package_id = conn.execute(
                sa.text(
                    "INSERT INTO access_packages (privacy_request_id, summary, created_at) VALUES (:r, :s, :t) "
                    "RETURNING id"
                ),
                {"r": request_id, "s": ring.encrypt(json.dumps(packer.summary()).encode()), "t": stamp(now)},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO access_package_chunks (package_id, key_index, seq, row_count, data) "
                    "VALUES (:p, :k, :s, :n, :d)"
                ),
                [
                    {
                        "p": package_id,
                        "k": c.key_index,
                        "s": c.seq,
                        "n": c.row_count,
                        "d": ring.encrypt(c.plaintext),
                    }
                    for c in parts
                ],
            )
            conn.execute(
                sa.text(
                    "UPDATE privacy_requests SET status = 'complete', finished_processing_at = :t WHERE id = :r"
                ),
                {"r": request_id, "t": stamp(now + timedelta(microseconds=1))},
            )
        return jsonify(id=request_id, status="complete")

    def package_of(request_id: str, kind: str) -> dict:
        """The package, and the audit row every download needs (S7): one SELECT, one INSERT, commit."""
        with engine.begin() as conn:
            user_or_403(conn)
            row = conn.execute(
                sa.text("SELECT id, summary FROM access_packages WHERE privacy_request_id = :r"),
                {"r": request_id},
            ).first()
            if row is None:
                abort(404)
            stored = conn.execute(
                sa.text(
                    "SELECT key_index, data FROM access_package_chunks WHERE package_id = :p ORDER BY key_index, seq"
                ),
                {"p": row[0]},
            ).all()
            conn.execute(
                sa.text(
                    "INSERT INTO audit_events (created_at, actor_type, actor_label, action, privacy_request_id, "
                    "details) VALUES (:t, 'user', 'floor', 'package.downloaded', :r, :d)"
                ),
                {"t": stamp(datetime.now(UTC)), "r": request_id, "d": json.dumps({"format": kind})},
            )
        package: dict[str, list] = {
            item["key"]: [] for item in json.loads(ring.decrypt(bytes(row[1])))["keys"]
        }
        keys = list(package)
        for key_index, data in stored:
            package[keys[key_index]].extend(decode_rows(ring.decrypt(bytes(data))))
        return package

    def attachment(data: bytes, mimetype: str, name: str) -> Response:
        response = Response(data, mimetype=mimetype)
        response.headers.set("Content-Disposition", "attachment", filename=name)
        return response

    @app.get("/packages/<request_id>/json")
    def download_json(request_id: str):
        data = json.dumps(package_of(request_id, "json"), ensure_ascii=False, indent=2).encode()
        return attachment(data, "application/json", f"{request_id}.json")

    @app.get("/packages/<request_id>/zip")
    def download_zip(request_id: str):
        package = package_of(request_id, "zip")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("package.json", json.dumps(package, ensure_ascii=False, indent=2))
            for key, rows in package.items():
                text = io.StringIO()
                writer = csv.writer(text)
                columns = list(rows[0]) if rows else []
                writer.writerow(columns)
                writer.writerows([row.get(c) for c in columns] for row in rows)
                archive.writestr(f"{key}.csv", text.getvalue())
        return attachment(buffer.getvalue(), "application/zip", f"{request_id}.zip")

    return app


app = create_app() if "BENCH_DATABASE_URL" in os.environ else None
