"""Access packages stored as encrypted chunks and streamed: the stored format reads back exactly,
downloads are the same bytes as before, a run streams rows, re-runs replace packages atomically, and key
rotation and retention reach every chunk. Memory itself is measured by ``bench/package_memory.py``."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import create_app
from portal.crypto import Keyring, generate_key
from portal.execution import dispatch
from portal.execution.connectors.fides import CollectionNode, DatasetGraph
from portal.execution.connectors.sql import traverse
from portal.execution.package import PackageWriter
from portal.extensions import db
from portal.models import AccessPackage, AccessPackageChunk, AuditEvent, PrivacyRequest, utcnow
from portal.models import packages as packages_model
from portal.models.audit import Actor
from portal.models.packages import PackageChanged, StoredPackage
from portal.services import key_rotation, reports, retention, tokens
from tests.collection_helpers import JANE, LOYALTY_YAML, SHOP_YAML, add_database, sqlite_source
from tests.conftest import TEST_KEY
from tests.workflow_helpers import new_request, store_package

CHUNK_BYTES = 64  # every package below spans many chunks

PACKAGE = {
    "shop:customer": [
        {
            "id": 1,
            "name": "Jane <b>Customer</b>",
            "note": 'line\nbreak, "quotes", ü, 😀, \u2028',
            "score": 0.1 + 0.2,
            "tiny": 1e-07,
            "big": 12345678901234567890,
            "tags": ["=SUM(A1)", {"nested": None, "list": []}],
            "vip": True,
            "gone": None,
        },
        *({"id": n, "name": f"row {n}"} for n in range(2, 40)),
    ],
    "shop:nothing": [],
    "zendesk": [{"first_name": None, "last_name": None}],
    "crm": [{"first_name": "Ann", "last_name": "O'Brien"}],
}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "PACKAGE_CHUNK_BYTES": CHUNK_BYTES}


@pytest.fixture
def stored(app) -> str:
    """A completed request whose package is ``PACKAGE``."""
    request_id = new_request()  # no systems: completes at once
    store_package(request_id, PACKAGE)
    return request_id


def chunk_rows(request_id: str) -> list[tuple[int, int, int, int]]:
    """(id, key_index, seq, row_count) of the request's chunks, as any other connection sees them."""
    with db.engine.connect() as conn:
        return conn.execute(
            sa.select(
                AccessPackageChunk.id,
                AccessPackageChunk.key_index,
                AccessPackageChunk.seq,
                AccessPackageChunk.row_count,
            )
            .join(AccessPackage, AccessPackage.id == AccessPackageChunk.package_id)
            .where(AccessPackage.privacy_request_id == request_id)
            .order_by(AccessPackageChunk.key_index, AccessPackageChunk.seq)
        ).all()


def package_of(request_id: str) -> dict:
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id).package.data


def reviewer_token(make_user) -> dict[str, str]:
    _, secret = tokens.create_token(make_user(role="reviewer"), "reviewer", Actor.system("test"))
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


# --- the stored format ---------------------------------------------------------------------------------


def test_a_package_of_many_chunks_reads_back_exactly_in_key_order(stored):
    read = package_of(stored)
    assert read == PACKAGE
    assert list(read) == list(PACKAGE)
    assert json.dumps(read, ensure_ascii=False) == json.dumps(
        PACKAGE, ensure_ascii=False
    )  # row key order too

    chunks = chunk_rows(stored)
    assert len(chunks) > len(PACKAGE)
    assert {key_index for _, key_index, _, _ in chunks} == {0, 2, 3}  # an empty key has no chunk
    assert [row_count for _, key_index, _, row_count in chunks if key_index == 0] != [39]
    assert sum(row_count for _, key_index, _, row_count in chunks if key_index == 0) == 39


def test_every_chunk_is_encrypted_on_its_own_and_stays_within_the_chunk_size(stored):
    ring = Keyring(TEST_KEY)
    with db.engine.connect() as conn:
        stored_chunks = conn.execute(sa.text("SELECT row_count, data FROM access_package_chunks")).all()
    for row_count, data in stored_chunks:
        plaintext = ring.decrypt(bytes(data))  # raises unless encrypted with the portal's key
        assert b"Jane" not in bytes(data) and b"row " not in bytes(data)
        assert len(plaintext.split(b"\n")) == row_count
        assert len(plaintext) <= CHUNK_BYTES or row_count == 1  # a larger row gets a chunk of its own


def test_a_run_streams_the_collected_rows_into_chunks_equal_to_the_package_it_always_built(app, tmp_path):
    with sqlite_source(tmp_path) as secrets:
        add_database("Shop DB", "sqlite", secrets, SHOP_YAML, LOYALTY_YAML)
        request_id = new_request("jane@example.com")
    assert package_of(request_id) == JANE
    assert list(package_of(request_id)) == list(JANE)
    assert len(chunk_rows(request_id)) == 4  # 4 rows, each longer than 64 bytes


def test_traverse_hands_rows_on_while_the_source_is_still_being_read():
    node = CollectionNode(
        connection_key="source",
        dataset="big",
        name="rows",
        schema=None,
        fields=["id", "email"],
        primary_keys=["id"],
        data_types={"id": None, "email": None},
        identities={"email": "email"},
    )
    produced = []

    def fetch(node, field, values, case_insensitive):
        for n in range(1000):
            produced.append(n)
            yield {"id": n, "email": values[0]}

    walk = traverse(DatasetGraph(nodes={node.id: node}), {"email": "a@example.com"}, fetch)
    found, rows = next(walk)
    first = next(rows)
    assert (found.key, first, len(produced)) == ("big:rows", {"id": 0, "email": "a@example.com"}, 1)
    assert sum(1 for _ in rows) == 999 and next(walk, None) is None


def test_a_package_replaced_while_it_is_read_stops_the_read(stored, monkeypatch):
    monkeypatch.setattr(packages_model, "READ_AHEAD_BYTES", 1)  # one chunk per fetch: "crm" is read later
    opened = db.session.get(PrivacyRequest, stored).package.contents()
    store_package(stored, {**PACKAGE, "crm": [{"first_name": "New", "last_name": "Rows"}]})  # same shape
    with pytest.raises(PackageChanged):
        list(opened.rows(3))


def _chunk_queries(call) -> int:
    """How many SELECTs on the chunks ``call`` sends."""
    sent = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM access_package_chunks" in statement:
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    return len(sent)


def test_a_small_package_is_read_in_one_query_however_many_chunks_it_has(stored):
    read = {}

    def open_and_read():
        opened = db.session.get(PrivacyRequest, stored).package.contents()
        db.session.commit()  # as a download does: the rows are read after the audit commit
        read.update(opened.to_dict())

    queries = _chunk_queries(open_and_read)

    assert read == PACKAGE
    assert len(chunk_rows(stored)) > 3 and queries == 1  # listed and fetched at once, while opening


def test_a_large_package_is_read_a_bounded_batch_at_a_time_in_any_order(stored, monkeypatch):
    monkeypatch.setattr(packages_model, "READ_AHEAD_BYTES", 200)  # a few 64-byte chunks per query
    opened = db.session.get(PrivacyRequest, stored).package.contents()
    chunks = len(chunk_rows(stored))
    largest_batch = []
    fetch = opened._read

    def read(ref):
        data = fetch(ref)
        largest_batch.append(len(opened._ahead) + 1)
        return data

    monkeypatch.setattr(opened, "_read", read)
    text = []
    queries = _chunk_queries(lambda: text.extend(reports.iter_package_json(opened, sort_keys=True)))

    assert b"".join(text).decode() == json.dumps(PACKAGE, ensure_ascii=False, indent=2, sort_keys=True)
    assert 1 < queries < chunks  # batches: neither all chunks at once nor one query per chunk
    assert max(largest_batch) <= 200 // 64  # never more than one batch held, whatever the order


# --- downloads -----------------------------------------------------------------------------------------


def test_the_json_download_streams_exactly_the_bytes_json_dumps_gave(client, login_as, stored):
    login_as("reviewer")
    response = client.get(f"/packages/{stored}/package.json")
    assert response.status_code == 200 and response.is_streamed
    assert response.data == json.dumps(PACKAGE, ensure_ascii=False, indent=2).encode()


def test_the_api_streams_exactly_the_bytes_jsonify_gave(app, client, make_user, stored):
    response = client.get(f"/api/v1/privacy-request/{stored}/package", headers=reviewer_token(make_user))
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/json" and response.headers["Cache-Control"] == "no-store"
    assert response.data == app.json.response(PACKAGE).get_data()


@pytest.mark.parametrize(
    "package",
    [
        {},
        {"a": []},
        {"a": [{}]},
        PACKAGE,
        {"z": [{"b": 1, "a": {"d": [1, {}], "c": "é"}}], "a": [{"x": None}]},
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        {"indent": 2, "ensure_ascii": False},
        {"indent": None, "separators": (",", ":"), "sort_keys": True, "ensure_ascii": True},
        {"indent": None, "ensure_ascii": True},
        {"indent": 4, "sort_keys": True, "ensure_ascii": False},
    ],
)
def test_the_streamed_json_is_json_dumps_byte_for_byte(package, options):
    assert b"".join(reports.iter_package_json(package, **options)) == json.dumps(package, **options).encode()


def test_a_small_package_is_read_once_for_the_three_parts_of_its_zip(client, login_as, stored):
    login_as("reviewer")
    archive = []

    queries = _chunk_queries(lambda: archive.append(client.get(f"/packages/{stored}/package.zip").data))

    assert zipfile.ZipFile(io.BytesIO(archive[0])).testzip() is None
    assert queries == 1  # package.json, report.html and the CSVs all come from that one read


def test_the_zip_download_streams_every_file_exactly(client, login_as, stored):
    login_as("reviewer")
    response = client.get(f"/packages/{stored}/package.zip")
    assert response.status_code == 200 and response.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert archive.testzip() is None
    assert archive.namelist() == [
        "package.json",
        "report.html",
        "shop_customer.csv",
        "shop_nothing.csv",
        "zendesk.csv",
        "crm.csv",
    ]
    assert archive.read("package.json") == json.dumps(PACKAGE, ensure_ascii=False, indent=2).encode()
    customers = list(csv.reader(io.StringIO(archive.read("shop_customer.csv").decode("utf-8-sig"))))
    assert customers[0] == ["id", "name", "note", "score", "tiny", "big", "tags", "vip", "gone"]
    assert customers[1] == [
        "1",
        "Jane <b>Customer</b>",
        'line\nbreak, "quotes", ü, 😀, \u2028',
        "0.30000000000000004",
        "1e-07",
        "12345678901234567890",
        '["=SUM(A1)", {"nested": null, "list": []}]',
        "true",
        "",
    ]
    assert customers[2:] == [[str(n), f"row {n}", "", "", "", "", "", "", ""] for n in range(2, 40)]
    assert archive.read("shop_nothing.csv") == b"\xef\xbb\xbf\r\n"
    assert archive.read("crm.csv").decode("utf-8-sig") == "first_name,last_name\r\nAnn,O'Brien\r\n"
    report = archive.read("report.html").decode()
    assert "Jane &lt;b&gt;Customer&lt;/b&gt;" in report and "<b>Customer" not in report
    assert "row 39" in report and report.count("<tr>") == (1 + 39) + (1 + 1) + (
        1 + 1
    )  # header and rows; no table when empty
    assert "shop:customer: 39 entries" in report and "(searched — nothing found)" in report


@pytest.mark.parametrize("route", ["/packages/{id}/package.json", "/packages/{id}/package.zip", "api"])
def test_the_download_is_audited_and_committed_before_the_first_byte(
    client, login_as, make_user, stored, monkeypatch, route
):
    at_first_chunk = []
    read_chunk = StoredPackage._read

    def spying(self, ref):
        if not at_first_chunk:
            with db.engine.connect() as conn:  # another connection sees only what is committed
                audited = conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.privacy_request_id == stored, AuditEvent.action == "package.downloaded")
                )
            at_first_chunk.append((audited, db.session().in_transaction()))
        return read_chunk(self, ref)

    monkeypatch.setattr(StoredPackage, "_read", spying)
    if route == "api":
        response = client.get(f"/api/v1/privacy-request/{stored}/package", headers=reviewer_token(make_user))
    else:
        login_as("reviewer")
        response = client.get(route.format(id=stored))
    assert response.status_code == 200 and response.data
    assert at_first_chunk == [(1, False)]  # committed, and the request's session holds no transaction


def test_the_package_page_shows_the_first_rows_of_each_system_and_says_where_the_rest_is(
    app, client, login_as, stored
):
    app.config["PACKAGE_PREVIEW_ROWS"] = 5
    login_as("reviewer")
    page = client.get(f"/packages/{stored}").get_data(as_text=True)
    assert "Showing the first 5 of 39 entries" in page and "39 entries" in page
    assert f'href="/packages/{stored}/package.json">JSON</a>' in page
    assert "row 5" in page and "row 6" not in page
    assert "Jane &lt;b&gt;Customer&lt;/b&gt;" in page and "<b>Customer" not in page
    assert page.count("Showing the first") == 1  # the other systems are shown whole


# --- re-runs: the old package stays until the new one is committed --------------------------------------


@pytest.fixture
def shop(app, tmp_path):
    with sqlite_source(tmp_path) as secrets:
        add_database("Shop DB", "sqlite", secrets, SHOP_YAML, LOYALTY_YAML)
        yield secrets["path"]


def rerun(request_id: str) -> PrivacyRequest:
    pr = db.session.get(PrivacyRequest, request_id)
    pr.status = "pending"
    db.session.commit()
    dispatch.enqueue(request_id)
    db.session.expire_all()
    return db.session.get(PrivacyRequest, request_id)


def test_a_run_that_fails_while_rows_stream_leaves_the_old_package_as_it_was(app, shop):
    request_id = new_request("jane@example.com")
    before = chunk_rows(request_id)
    app.config["COLLECTION_MAX_ROWS"] = 1  # shop:orders has 2 rows for Jane: the first is already written

    pr = rerun(request_id)

    assert pr.status == "error"
    assert "collection 'shop:orders' matched more than 1 rows" in pr.error_message
    assert chunk_rows(request_id) == before
    assert package_of(request_id) == JANE


def test_a_run_that_fails_after_storing_its_package_rolls_it_back(app, shop, monkeypatch):
    request_id = new_request("jane@example.com")
    before = chunk_rows(request_id)
    saved = []
    save = PackageWriter.save
    monkeypatch.setattr(PackageWriter, "save", lambda self, rid: saved.append(rid) or save(self, rid))

    failed = []

    def fail_on_completion(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO audit_events") and "request.completed" in str(parameters):
            failed.append(statement)
            raise RuntimeError("boom")  # the request's completion and its event fail together

    sa.event.listen(db.engine, "before_cursor_execute", fail_on_completion)
    try:
        pr = rerun(request_id)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", fail_on_completion)

    assert failed and saved == [request_id] and pr.status == "error"
    assert pr.error_message.startswith("Unexpected error while processing (RuntimeError).")
    assert chunk_rows(request_id) == before
    assert package_of(request_id) == JANE


def test_a_rerun_replaces_the_package_at_its_commit_and_not_before(app, shop, monkeypatch):
    request_id = new_request("jane@example.com")
    before = chunk_rows(request_id)
    with sa.create_engine(f"sqlite:///{shop}").begin() as source:
        source.execute(sa.text("UPDATE customer SET name = 'Janet' WHERE id = 1"))
    seen_meanwhile = []
    save = PackageWriter.save

    def spying(self, rid):
        package = save(self, rid)
        db.session.flush()
        seen_meanwhile.append(chunk_rows(rid))  # from another connection: not committed yet
        return package

    monkeypatch.setattr(PackageWriter, "save", spying)
    pr = rerun(request_id)

    assert pr.status == "complete"
    assert seen_meanwhile == [before]
    assert {chunk_id for chunk_id, *_ in chunk_rows(request_id)}.isdisjoint(
        chunk_id for chunk_id, *_ in before
    )
    assert package_of(request_id)["shop:customer"][0]["name"] == "Janet"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessPackage)) == 1


# --- key rotation and retention ------------------------------------------------------------------------


def test_key_rotation_re_encrypts_every_chunk_and_the_new_key_alone_reads_the_package(
    app, app_config, runner, stored, tmp_path
):
    new_key = generate_key()
    batches = []
    report = key_rotation.rotate(
        Keyring(TEST_KEY).rotated(new_key),
        after_batch=lambda: batches.append(db.session.commit()),
        batch_size=500,
    )
    assert report.complete
    chunks = len(chunk_rows(stored))
    assert len(batches) >= chunks / 4  # large values are rotated a few at a time

    with db.engine.connect() as conn:
        key_ids = {
            Keyring.key_id_of(bytes(data))
            for data in conn.scalars(sa.text("SELECT data FROM access_package_chunks"))
        }
    assert key_ids == {Keyring(new_key).first_key_id}
    reader = create_app({**app_config, "ENCRYPTION_KEY": new_key}, instance_path=str(tmp_path / "reader"))
    with reader.app_context():
        assert db.session.get(PrivacyRequest, stored).package.data == PACKAGE
        db.session.remove()
        db.engine.dispose()


def test_retention_purges_every_chunk_of_the_package(app, stored):
    kept = new_request("kept@example.com")
    store_package(kept, PACKAGE)
    db.session.execute(
        sa.update(PrivacyRequest)
        .where(PrivacyRequest.id == stored)
        .values(finished_processing_at=utcnow() - timedelta(days=400))
    )
    db.session.commit()

    purged = retention.purge_expired(Actor.system("test"))
    db.session.commit()

    assert [p.request_id for p in purged] == [stored]
    assert chunk_rows(stored) == [] and len(chunk_rows(kept)) > len(PACKAGE)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessPackageChunk)) == len(
        chunk_rows(kept)
    )
