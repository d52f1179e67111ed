"""Seed a benchmark database fast: migrate, then bulk-insert with SQLAlchemy Core in chunks.

What a large company's portal holds after months of use: ``--scale`` privacy requests (20% in
``requires_input``, waiting 45–90 days; the rest spread over the other statuses), 50 manual webhooks of 8
fields, manual inputs for half of the waiting requests (a random share of the 50 systems each), an open
task for every system a waiting request still waits on (shared among 200 staff, owners of most systems),
and the audit events all of that leaves behind. Identities, values and packages are encrypted exactly as the
portal does it (the column types' own ``process_bind_param``), and the blind indexes are the keyring's.

Small things the load driver needs are set aside and listed in a manifest (JSON): users and an API token,
requests in ``requires_input`` with all 50 inputs (one pool for the portal's resumes, one for the floor's),
completed requests with packages (downloads), and one data subject with several requests (identity search).

Usage: ``python -m bench.seed --database-url URL --scale 100k --manifest out.json`` on an empty database.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCALES = {"smoke": 400, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
# (status, share). requires_input is 20%; the rest is what a busy queue looks like.
STATUS_MIX = (
    ("requires_input", 0.20),
    ("complete", 0.40),
    ("canceled", 0.10),
    ("pending", 0.10),
    ("denied", 0.06),
    ("approved", 0.03),
    ("error", 0.03),
    ("in_processing", 0.03),
    ("paused", 0.03),
    ("identity_unverified", 0.02),
)
WEBHOOKS = 50
FIELDS = (
    ("Customer ID", "text", True),
    ("Contact email", "email", False),
    ("Notes", "textarea", False),
    ("Orders placed", "number", False),
    ("Last activity", "date", False),
    ("Marketing consent", "boolean", False),
    ("Account name", "text", False),
    ("Region", "text", False),
)
PASSWORD = "bench-password-not-secret"  # noqa: S105 - a throwaway database on loopback
USERS = {"admin": "bench-admin@example.com", "staff": "bench-staff@example.com"}
REPEAT_SUBJECT = "repeat.subject@example.com"
REPEAT_REQUESTS = 7
CHUNK = 5_000
# The automated collection of every resume: 3 collections of 1,000 rows, among others' rows.
SOURCE_KEY = "bench_source"
SOURCE_COLLECTIONS = ("events", "tickets", "logins")
SOURCE_ROWS = 1_000
SOURCE_NOISE = 10  # one row in ten belongs to the bench's data subject
COLLECT_SUBJECT = "collected.subject@example.com"
# Versions of what the seed writes; bump when the shape changes, so stale databases are not reused.
SEED_FORMAT = 5
# The team workflow: one open task per (waiting request, system not entered yet); one in TASK_SHARE goes to
# the bench's staff user ("My tasks"), TEAM_SHARE of the others to one of TEAM staff (the daily digest's
# readers), the rest to nobody. Each system has TEAM_OWNERS owners from the team, but one in OWNERLESS has
# none (its unassigned tasks are the admins'). One waiting request carries NOTES notes.
TASK_SHARE = 20
TEAM = 200
TEAM_SHARE = 0.5
TEAM_OWNERS = 2
OWNERLESS = 10
NOTES = 20


ERROR_MESSAGE = "Unexpected error while processing (OperationalError). Nothing entered by hand was lost."
REQUEST_COLUMNS = (
    "id",
    "external_id",
    "external_id_index",
    "policy_id",
    "identity",
    "email_index",
    "phone_index",
    "status",
    "created_at",
    "updated_at",
    "due_date",
    "started_processing_at",
    "finished_processing_at",
    "error_message",
)
AUDIT_COLUMNS = (
    "created_at",
    "actor_type",
    "actor_user_id",
    "actor_label",
    "action",
    "privacy_request_id",
    "connection_key",
    "details",
)
INPUT_COLUMNS = (
    "privacy_request_id",
    "connection_config_id",
    "values",
    "version",
    "entered_by_user_id",
    "entered_by_label",
    "entered_at",
)
TASK_COLUMNS = (
    "privacy_request_id",
    "connection_config_id",
    "assignee_id",
    "state",
    "due_date",
    "created_at",
    "updated_at",
)
NOTE_COLUMNS = ("privacy_request_id", "author_id", "author_label", "body", "created_at")
PACKAGE_COLUMNS = ("privacy_request_id", "summary", "created_at")
CHUNK_COLUMNS = ("package_id", "key_index", "seq", "row_count", "data")
BULK_TABLES = (
    "privacy_requests",
    "audit_events",
    "manual_inputs",
    "tasks",
    "access_packages",
    "access_package_chunks",
)


class BulkWriter:
    """Rows as plain tuples straight to the driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

    Values are converted here exactly as the portal's column types would store them (``UTCDateTime``:
    naive UTC text on SQLite; ``EncryptedJSON``: the keyring's AES-GCM of the JSON, ``EncryptedText``: of the
    text; ``JSON``: its text), which is ~5× faster than letting SQLAlchemy process 25 bound parameters per
    row.
    """

    def __init__(self, engine, ring):
        self.engine = engine
        self.ring = ring
        self.sqlite = engine.dialect.name == "sqlite"

    def time(self, value: datetime | None):
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(" ") if self.sqlite else value

    def encrypted(self, value: Any) -> bytes:
        return self.ring.encrypt(json.dumps(value, ensure_ascii=False).encode())

    def encrypted_text(self, value: str) -> bytes:
        return self.ring.encrypt(value.encode())

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value)

    def write(self, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        names = ", ".join(f'"{c}"' for c in columns)
        raw = self.engine.raw_connection()
        try:
            if self.sqlite:
                cursor = raw.cursor()
                cursor.execute("PRAGMA synchronous=OFF")
                marks = ", ".join("?" * len(columns))
                for batch in chunks(rows):
                    cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)  # noqa: S608 - the schema's own names
            else:
                with raw.driver_connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            raw.commit()
        finally:
            raw.close()

    def package_ids(self) -> dict[str, int]:
        """Privacy request id → access package id, for the chunks that follow the packages."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return dict(conn.execute(text("SELECT privacy_request_id, id FROM access_packages")).all())

    @contextlib.contextmanager
    def bulk_load(self, tables: tuple[str, ...]):
        """Drop the secondary indexes of ``tables`` while loading and recreate them from their own DDL."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            if self.sqlite:
                rows = conn.execute(
                    text(
                        "SELECT name, sql, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                    )
                ).all()
                saved = [(name, sql) for name, sql, table in rows if table in tables]
            else:
                saved = conn.execute(
                    text(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND tablename = ANY(:tables) AND indexname NOT IN (SELECT conname FROM pg_constraint)"
                    ),
                    {"tables": list(tables)},
                ).all()
            for name, _ in saved:
                conn.execute(text(f'DROP INDEX "{name}"'))
        yield
        with self.engine.begin() as conn:
            for _, ddl in saved:
                conn.execute(text(ddl))


def chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@dataclass
class Pools:
    """How many special-purpose rows to set aside (independent of the scale)."""

    resume: int = 200  # per pool (resume, collect) and target (portal, floor): every input present
    downloads: int = 100  # completed requests with a 50-system package
    uploads: int = 1_000  # waiting requests the upload and form-save operations write to


@dataclass
class Manifest:
    database_url: str
    scale: int
    seed_format: int = SEED_FORMAT
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    password: str = PASSWORD
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    token: str = ""
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    upload_ids: list[str] = field(default_factory=list)
    detail_id: str = ""
    resume_portal: list[str] = field(default_factory=list)
    resume_floor: list[str] = field(default_factory=list)
    collect_portal: list[str] = field(default_factory=list)  # resumes whose subject the database knows
    collect_floor: list[str] = field(default_factory=list)
    download_ids: list[str] = field(default_factory=list)
    identity_hash: str = ""
    collection: dict[str, Any] = field(default_factory=dict)
    notes_id: str = ""  # a waiting request with NOTES notes (the request page with notes)


def field_definitions() -> list[dict[str, Any]]:
    return [{"pii_field": name, "type": kind, "required": required} for name, kind, required in FIELDS]


def sample_value(kind: str, n: int) -> str:
    """A plausible value of a field type (the portal's validation accepts every one)."""
    if kind == "email":
        return f"contact{n}@example.org"
    if kind == "textarea":
        return f"Ticket {n}: the customer called twice about a parcel; see the CRM export for the history."
    if kind == "number":
        return str(n % 997)
    if kind == "date":
        return f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}"
    if kind == "boolean":
        return "true" if n % 2 else "false"
    return f"Value {n}"


def sample_values(labels_and_types: list[tuple[str, str]], n: int) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        label: sample_value(kind, n + i) for i, (label, kind) in enumerate(labels_and_types)
    }
    if n % 5 == 0:  # some systems hold only part of what is asked for
        values[labels_and_types[-1][0]] = None
    return values


def status_plan(total: int, rng: random.Random) -> list[str]:
    """Exactly ``share × total`` of each status (the remainder goes to ``complete``), shuffled."""
    plan: list[str] = []
    for status, share in STATUS_MIX:
        plan.extend([status] * int(total * share))
    plan.extend(["complete"] * (total - len(plan)))
    rng.shuffle(plan)
    return plan


def seed(app, scale: int, pools: Pools | None = None, *, rng_seed: int = 9) -> Manifest:
    """Fill the (migrated, empty) database of ``app``; returns what the load driver needs."""
    from sqlalchemy import select

    from portal.crypto import keyring
    from portal.extensions import db
    from portal.models import Policy, utcnow
    from portal.models.audit import Actor
    from portal.models.packages import Packer
    from portal.services import connections, tokens, users, webhooks
    from portal.services.identities import external_id_index

    pools = pools or Pools()
    rng = random.Random(rng_seed)
    actor = Actor.system("bench-seed")
    manifest = Manifest(database_url=app.config["SQLALCHEMY_DATABASE_URI"], scale=scale)
    started = time.perf_counter()

    # --- the small things, through the services (so the rules and formats are the portal's own) -------
    people = {
        role: users.create_user(email, role, PASSWORD, actor, name=f"Bench {role}")
        for role, email in USERS.items()
    }
    _, manifest.token = tokens.create_token(people["staff"], "bench", actor)
    hooks = []
    for index in range(WEBHOOKS):
        conn = connections.create_connection(
            name=f"Bench system {index:02d}",
            key=f"bench_system_{index:02d}",
            connection_type="manual_webhook",
            description=f"A manual system the bench seeds ({index}).",
            actor=actor,
        )
        hook = webhooks.create_webhook(conn, field_definitions(), actor)
        hooks.append((conn, hook))
    db.session.commit()
    policy = db.session.scalar(select(Policy).where(Policy.key == "default_access_policy"))
    webhook_info = [
        {
            "index": index,
            "id": conn.id,
            "key": conn.key,
            "version": hook.version,
            "fields": [(f["dsr_package_label"], f["type"]) for f in hook.fields],
            "ids": [f["id"] for f in hook.fields],
        }
        for index, (conn, hook) in enumerate(hooks)
    ]
    manifest.webhooks = [
        {"key": w["key"], "fields": w["fields"], "ids": w["ids"], "version": w["version"]}
        for w in webhook_info
    ]
    staff = people["staff"]
    staff_id, staff_label = staff.id, staff.email
    team = add_team(staff.password_hash, [w["id"] for w in webhook_info], rng)
    manifest.seconds["setup"] = round(time.perf_counter() - started, 2)

    # --- privacy requests -------------------------------------------------------------------------------
    ring = keyring()
    writer = BulkWriter(db.engine, ring)
    plan = status_plan(scale, rng)
    now = utcnow()
    waiting: list[str] = []
    waiting_since: dict[str, tuple[datetime, datetime]] = {}  # request id → (created, due)
    completed: list[str] = []
    repeat_index = ring.blind_index(REPEAT_SUBJECT)
    manifest.identity_hash = repeat_index
    repeat_slots = set(rng.sample(range(scale), min(REPEAT_REQUESTS, scale)))
    all_keys = [w["key"] for w in webhook_info]
    events: list[tuple] = []  # audit rows written after the rows they describe

    def audit(action, when, request_id, *, by_staff=False, connection_key=None, **details) -> tuple:
        return (
            writer.time(when),
            "user" if by_staff else "system",
            staff_id if by_staff else None,
            staff_label if by_staff else "system",
            action,
            request_id,
            connection_key,
            writer.json(details),
        )

    def request_rows() -> Iterator[tuple]:
        for n, status in enumerate(plan):
            request_id = f"pri_{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            if status == "requires_input":
                created = now - timedelta(days=rng.uniform(45, 90))
                waiting.append(request_id)
                waiting_since[request_id] = (created, created + timedelta(days=days_to_respond))
            else:
                created = now - timedelta(days=rng.uniform(0, 180))
            if status == "complete":
                completed.append(request_id)
            email = REPEAT_SUBJECT if n in repeat_slots else f"subject{n}@example.com"
            identity: dict[str, str] = {"email": email}
            phone_index = None
            if n % 3 == 0:
                identity["phone_number"] = f"+1555{n:07d}"
                phone_index = ring.blind_index(identity["phone_number"])
            running = status not in ("pending", "identity_unverified")
            started_at = created + timedelta(minutes=1) if running else None
            finished = created + timedelta(days=rng.uniform(1, 40)) if status == "complete" else None
            events.append(audit("request.created", created, request_id, identity_kinds=sorted(identity)))
            if started_at:
                events.append(audit("request.run_started", started_at, request_id))
            if status == "requires_input":
                events.append(audit("request.requires_input", started_at, request_id, missing=all_keys))
            elif status == "complete":
                events.append(audit("request.completed", finished, request_id, keys=all_keys))
            ticket = f"TICKET-{n:07d}" if n % 4 == 0 else None
            yield (
                request_id,
                writer.encrypted_text(ticket) if ticket else None,
                external_id_index(ticket, ring) if ticket else None,
                policy_id,
                writer.encrypted(identity),
                repeat_index if email == REPEAT_SUBJECT else ring.blind_index(email),
                phone_index,
                status,
                writer.time(created),
                writer.time(finished or started_at or created),
                writer.time(created + timedelta(days=days_to_respond)),
                writer.time(started_at),
                writer.time(finished),
                ERROR_MESSAGE if status == "error" else None,
            )

    policy_id, days_to_respond = policy.id, policy.days_to_respond
    t0 = time.perf_counter()
    with writer.bulk_load(BULK_TABLES):
        writer.write("privacy_requests", REQUEST_COLUMNS, request_rows())
        writer.write("audit_events", AUDIT_COLUMNS, events)
        events.clear()
        manifest.seconds["requests"] = round(time.perf_counter() - t0, 2)

        # --- special pools, then manual inputs for half of the waiting requests --------------------------
        rng.shuffle(waiting)
        resume_count = min(pools.resume, max(1, len(waiting) // 16))
        pools_of_full = [waiting[i * resume_count : (i + 1) * resume_count] for i in range(4)]
        manifest.resume_portal, manifest.resume_floor, manifest.collect_portal, manifest.collect_floor = (
            pools_of_full
        )
        manifest.detail_id = waiting[4 * resume_count]
        manifest.notes_id = waiting[4 * resume_count + 1]
        rest = waiting[4 * resume_count + 2 :]
        partly = rest[: len(rest) // 2]
        manifest.upload_ids = rest[len(rest) // 2 :][: pools.uploads]
        full = [*itertools.chain(*pools_of_full), manifest.detail_id]
        full_set = set(full)
        inputs = 0
        entered_masks: dict[str, int] = {}  # request id → bit mask of the systems entered (by webhook index)

        def input_rows() -> Iterator[tuple]:
            nonlocal inputs
            for request_id in full + partly:
                if request_id in full_set:
                    chosen = webhook_info
                else:
                    chosen = rng.sample(webhook_info, rng.randint(1, WEBHOOKS - 1))
                for hook in chosen:
                    inputs += 1
                    entered_masks[request_id] = entered_masks.get(request_id, 0) | (1 << hook["index"])
                    entered = now - timedelta(days=rng.uniform(0, 40))
                    labels = [label for label, _ in hook["fields"]]
                    events.append(
                        audit(
                            "manual_input.saved",
                            entered,
                            request_id,
                            by_staff=True,
                            connection_key=hook["key"],
                            labels=labels,
                            nothing_found=False,
                            version=hook["version"],
                            replaced=False,
                        )
                    )
                    yield (
                        request_id,
                        hook["id"],
                        writer.encrypted(sample_values(hook["fields"], inputs)),
                        hook["version"],
                        staff_id,
                        staff_label,
                        writer.time(entered),
                    )

        t0 = time.perf_counter()
        writer.write("manual_inputs", INPUT_COLUMNS, input_rows())
        writer.write("audit_events", AUDIT_COLUMNS, events)
        events.clear()
        manifest.seconds["manual_inputs"] = round(time.perf_counter() - t0, 2)

        # --- tasks: every system a waiting request still waits for; notes on one request -----------------
        tasks = 0

        def task_rows() -> Iterator[tuple]:
            nonlocal tasks
            for request_id in waiting:
                created, due = waiting_since[request_id]
                mask = entered_masks.get(request_id, 0)
                for hook in webhook_info:
                    if mask & (1 << hook["index"]):
                        continue
                    tasks += 1
                    if rng.randrange(TASK_SHARE) == 0:
                        assignee = staff_id
                    else:
                        assignee = rng.choice(team) if rng.random() < TEAM_SHARE else None
                    opened = writer.time(created + timedelta(minutes=1))
                    yield (request_id, hook["id"], assignee, "open", writer.time(due), opened, opened)

        t0 = time.perf_counter()
        writer.write("tasks", TASK_COLUMNS, task_rows())
        writer.write(
            "request_notes",
            NOTE_COLUMNS,
            (
                (
                    manifest.notes_id,
                    staff_id,
                    "Bench staff",
                    writer.encrypted_text(
                        f"Note {n}: called the subject back.\nThe archive box is off site."
                    ),
                    writer.time(now - timedelta(hours=NOTES - n)),
                )
                for n in range(NOTES)
            ),
        )
        manifest.seconds["tasks"] = round(time.perf_counter() - t0, 2)

        # --- packages of completed requests (the download pool) -------------------------------------------
        manifest.download_ids = completed[: pools.downloads]
        t0 = time.perf_counter()
        packed = []  # (request id, summary, chunks) in the portal's stored format
        for i, request_id in enumerate(manifest.download_ids):
            packer = Packer()
            parts = [
                chunk
                for j, hook in enumerate(webhook_info)
                for chunk in packer.add(hook["key"], [sample_values(hook["fields"], i * WEBHOOKS + j)])
            ]
            packed.append((request_id, packer.summary(), parts))
        writer.write(
            "access_packages",
            PACKAGE_COLUMNS,
            ((request_id, writer.encrypted(summary), writer.time(now)) for request_id, summary, _ in packed),
        )
        package_ids = writer.package_ids()
        writer.write(
            "access_package_chunks",
            CHUNK_COLUMNS,
            (
                (package_ids[request_id], c.key_index, c.seq, c.row_count, writer.ring.encrypt(c.plaintext))
                for request_id, _, parts in packed
                for c in parts
            ),
        )
        manifest.seconds["packages"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
    manifest.seconds["indexes"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    manifest.collection = add_collection_source(
        Path(app.instance_path) / f"bench-source-{uuid.uuid4().hex[:8]}.sqlite3",
        [*manifest.collect_portal, *manifest.collect_floor],
        writer,
        actor,
    )
    manifest.seconds["collection_source"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    analyze(db.engine)
    manifest.seconds["analyze"] = round(time.perf_counter() - t0, 2)
    manifest.seconds["total"] = round(time.perf_counter() - started, 2)
    counts = {status: plan.count(status) for status, _ in STATUS_MIX}
    manifest.counts = {
        "privacy_requests": scale,
        **{f"status_{k}": v for k, v in counts.items()},
        "manual_webhooks": WEBHOOKS,
        "fields_per_webhook": len(FIELDS),
        "manual_inputs": inputs,
        "waiting_with_inputs": len(partly) + len(full),
        "open_tasks": tasks,
        "team_staff": len(team),
        "notes": NOTES,
        "access_packages": len(manifest.download_ids),
    }
    return manifest


def add_team(password_hash: str, connection_ids: list[int], rng: random.Random) -> list[int]:
    """TEAM staff users (one INSERT; they share the bench staff's password hash, nobody signs in as them)
    and the systems' owners among them; returns their ids."""
    from sqlalchemy import insert, select

    from portal.extensions import db
    from portal.models import User, WebhookOwner, utcnow

    now = utcnow()
    db.session.execute(
        insert(User.__table__),
        [
            {
                "email": f"bench-team-{n:03d}@example.com",
                "name": f"Bench team {n:03d}",
                "password_hash": password_hash,
                "role": "staff",
                "active": True,
                "must_change_password": False,
                "session_version": 1,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(TEAM)
        ],
    )
    team = list(db.session.scalars(select(User.id).where(User.email.like("bench-team-%")).order_by(User.id)))
    owners = [
        {"connection_config_id": connection_id, "user_id": user_id}
        for index, connection_id in enumerate(connection_ids)
        if index % OWNERLESS
        for user_id in rng.sample(team, TEAM_OWNERS)
    ]
    db.session.execute(insert(WebhookOwner.__table__), owners)
    db.session.commit()
    return team


def add_collection_source(path: Path, request_ids: list[str], writer: BulkWriter, actor) -> dict[str, Any]:
    """The automated part of the resumes: a SQLite database with 3 collections holding
    ``SOURCE_ROWS`` rows each for the data subject of every request in ``request_ids`` (among others' rows),
    attached as a connection with its fides dataset, as an admin would."""
    import sqlite3

    from sqlalchemy import update

    from portal.extensions import db
    from portal.models import PrivacyRequest
    from portal.services import connections, datasets, db_connections

    connection = sqlite3.connect(path)
    try:
        for table in SOURCE_COLLECTIONS:
            connection.execute(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email TEXT NOT NULL, kind TEXT, detail TEXT, at TEXT)"
            )
            # The connector matches emails case-insensitively (lower(email) IN ...): index that expression.
            connection.execute(f"CREATE INDEX ix_{table}_email ON {table} (lower(email))")
            rows = (
                (
                    COLLECT_SUBJECT if n % SOURCE_NOISE == 0 else f"other{n}@example.com",
                    f"{table}-{n % 7}",
                    f"{table} {n}: the customer did something worth keeping for a while; reference {n:08d}.",
                    f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z",
                )
                for n in range(SOURCE_ROWS * SOURCE_NOISE)
            )
            connection.executemany(f"INSERT INTO {table} (email, kind, detail, at) VALUES (?, ?, ?, ?)", rows)  # noqa: S608 - the bench's own table names
        connection.commit()
    finally:
        connection.close()
    conn = connections.create_connection(
        name="Bench source database", key=SOURCE_KEY, connection_type="sqlite", actor=actor
    )
    db_connections.save_secrets(conn, {"path": str(path.resolve())}, actor)
    datasets.save_dataset_text(conn, source_dataset_yaml(), actor)
    identity = {"email": COLLECT_SUBJECT}  # encrypted by the column type
    db.session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.id.in_(request_ids))
        .values(identity=identity, email_index=writer.ring.blind_index(COLLECT_SUBJECT), phone_index=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return {
        "path": str(path.resolve()),
        "key": SOURCE_KEY,
        "collections": list(SOURCE_COLLECTIONS),
        "rows_per_collection": SOURCE_ROWS,
        "email": COLLECT_SUBJECT,
    }


def email_dataset_yaml(fides_key: str, name: str, tables: Iterable[str], fields: dict[str, str]) -> str:
    """A fides dataset of ``tables`` with the same columns: an integer ``id`` key, the ``email`` identity,
    then ``fields`` (name → data category)."""
    lines = """
          - name: id
            data_categories: [system.operations]
            fides_meta: {primary_key: true, data_type: integer}
          - name: email
            data_categories: [user.contact.email]
            fides_meta: {identity: email, data_type: string}"""
    lines += "".join(
        f"\n          - name: {f}\n            data_categories: [{c}]" for f, c in fields.items()
    )
    collections = "".join(f"\n      - name: {table}\n        fields:{lines}" for table in tables)
    return f"dataset:\n  - fides_key: {fides_key}\n    name: {name}\n    collections:{collections}\n"


def source_dataset_yaml() -> str:
    fields = {"kind": "system.operations", "detail": "user.behavior", "at": "system.operations"}
    return email_dataset_yaml(SOURCE_KEY, "Bench source database", SOURCE_COLLECTIONS, fields)


def analyze(engine) -> None:
    """What autovacuum gives a production database: planner statistics and, on PostgreSQL, a visibility
    map (without it an index-only scan visits the table for every row it skips)."""
    from sqlalchemy import text

    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def bench_config(database_url: str, instance_path: str, encryption_key: str) -> dict[str, Any]:
    """The config the seed (and the bench's portal processes) run with."""
    return {
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": encryption_key,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
    }


def migrate_and_seed(
    database_url: str, scale: int, instance_path: str, encryption_key: str, pools: Pools | None = None
) -> Manifest:
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db

    app = create_app(bench_config(database_url, instance_path, encryption_key), instance_path=instance_path)
    with app.app_context():
        t0 = time.perf_counter()
        upgrade()
        migrated = round(time.perf_counter() - t0, 2)
        manifest = seed(app, scale, pools)
        manifest.seconds["migrate"] = migrated
        db.session.remove()
        db.engine.dispose()
    return manifest


def parse_scale(text: str) -> int:
    text = text.strip().lower()
    if text in SCALES:
        return SCALES[text]
    return int(text.replace("_", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scale", default="100k", help="10k, 100k, 1m, or a number of requests")
    parser.add_argument("--instance-path", required=True)
    parser.add_argument(
        "--encryption-key",
        default=os.environ.get("BENCH_ENCRYPTION_KEY"),
        help="default: $BENCH_ENCRYPTION_KEY",
    )
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--resume-pool", type=int, default=Pools.resume)
    args = parser.parse_args(argv)
    if not args.encryption_key:
        parser.error("give --encryption-key or set BENCH_ENCRYPTION_KEY")
    pools = Pools(resume=args.resume_pool)
    manifest = migrate_and_seed(
        args.database_url, parse_scale(args.scale), args.instance_path, args.encryption_key, pools
    )
    with open(args.manifest, "w") as fh:
        json.dump(asdict(manifest), fh, indent=1)
    print(json.dumps({"counts": manifest.counts, "seconds": manifest.seconds}))


if __name__ == "__main__":
    main()
