"""Reviewer access packages: the list, the package page, the JSON and ZIP downloads, and the exports."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.execution import dispatch
from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, PrivacyRequest
from portal.services import manual_inputs, privacy_requests, reports
from tests.workflow_helpers import STAFF, add_webhook, field, new_request, store_package

SCRIPT = "<script>alert(1)</script>"
SUBJECT_EMAIL = "jane.subject@example.com"
AUTOMATED = {
    "postgres_example:customer": [
        {"id": 1, "name": "Jane Customer", "email": SUBJECT_EMAIL, "vip": True},
        {"id": 2, "name": SCRIPT, "email": None, "vip": False},
    ],
}


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def completed_request(values: dict | None = None, *, email: str = SUBJECT_EMAIL, **kwargs) -> str:
    """A request run to completion with one manual system, ``crm`` (first_name, last_name, notes)."""
    if "crm" not in _webhook_keys():
        add_webhook("crm", [field("First Name"), field("Last Name"), field("Notes")])
    request_id = new_request(email=email, **kwargs)
    manual_inputs.save_manual_input(request_id, "crm", values or {}, STAFF)
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    return request_id


def _webhook_keys() -> set[str]:
    return set(db.session.scalars(select(ConnectionConfig.key)))


def with_automated_data(request_id: str) -> dict:
    """Put automated rows in front of the manual entry, as a database connection would."""
    pr = db.session.get(PrivacyRequest, request_id)
    store_package(request_id, {**AUTOMATED, **pr.package.data})
    return pr.package.data


def package_events(request_id: str) -> list[tuple[str, str, dict]]:
    db.session.expire_all()
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.privacy_request_id == request_id, AuditEvent.action.like("package.%"))
        .order_by(AuditEvent.id)
    )
    return [(e.action, e.actor_label, e.details) for e in events]


@pytest.fixture
def reviewer(login_as):
    return login_as("reviewer")


# --- access ----------------------------------------------------------------------------------------

ROUTES = ["/packages/", "/packages/{id}", "/packages/{id}/package.json", "/packages/{id}/package.zip"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("role", ["reviewer", "admin"])
def test_reviewers_and_admins_may_open_every_package_route(client, login_as, route, role):
    request_id = completed_request({"first_name": "Jane"})
    login_as(role)
    response = client.get(route.format(id=request_id))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("route", ROUTES)
def test_staff_cannot_read_packages(client, login_as, route):
    request_id = completed_request({"first_name": "Jane"})
    login_as("staff")
    assert client.get(route.format(id=request_id)).status_code == 403
    assert package_events(request_id) == []


@pytest.mark.parametrize("route", ROUTES)
def test_signed_out_users_are_sent_to_login(client, route):
    response = client.get(route.format(id="pri_x"))
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_the_nav_links_the_packages_page(client, reviewer):
    assert 'href="/packages/"' in client.get("/").get_data(as_text=True)


# --- the list --------------------------------------------------------------------------------------


def test_empty_list_says_so(client, reviewer):
    add_webhook("crm", [field("First Name")])
    new_request()  # waits in requires_input: no package yet
    page = text_of(client.get("/packages/"))
    assert "No completed packages yet." in page


def test_list_shows_completed_requests_masked_newest_completed_first(client, reviewer):
    add_webhook("crm", [field("First Name"), field("Last Name"), field("Notes")])
    older = completed_request({"first_name": "A"}, email="older.person@example.com", external_id="T-1")
    newer = completed_request(
        {"first_name": "B"}, email="newer.person@example.org", identity={"phone_number": "+4915112345678"}
    )
    waiting = new_request(email="waiting.person@example.com")  # stays in requires_input
    # The older request completed last: it comes first.
    now = datetime.now(UTC)
    db.session.get(PrivacyRequest, older).finished_processing_at = now - timedelta(hours=1, seconds=5)
    db.session.get(PrivacyRequest, newer).finished_processing_at = now - timedelta(hours=2, seconds=5)
    db.session.commit()

    response = client.get("/packages/")
    page = text_of(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert page.index(older) < page.index(newer)
    assert waiting not in page
    assert "2 completed requests" in page
    assert "o•••@e•••.com" in page and "n•••@e•••.org" in page and "•••78" in page
    for value in ("older.person@example.com", "newer.person@example.org", "+4915112345678"):
        assert value not in page
    assert page.count("Default access policy") == 2
    assert "T-1" in page
    assert re.search(r"1 hour ago\s*</time>\s*<span[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d UTC</span>", page)
    assert "2 hours ago" in page


def test_list_is_paginated_in_pages_of_page_size(client, app, reviewer):
    ids = [completed_request({"first_name": str(n)}) for n in range(3)]
    app.config["PAGE_SIZE"] = 2
    first = text_of(client.get("/packages/"))
    second = text_of(client.get("/packages/?page=2"))
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert sum(rid in first for rid in ids) == 2
    assert sum(rid in second for rid in ids) == 1
    assert "There are no packages on page 5." in text_of(client.get("/packages/?page=5"))


# --- the package page ------------------------------------------------------------------------------


def test_package_page_renders_each_key_as_a_table_and_escapes_values(client, reviewer):
    request_id = completed_request({"first_name": "Jane", "notes": SCRIPT})
    with_automated_data(request_id)

    response = client.get(f"/packages/{request_id}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    # Hostile text is shown as text, never as markup.
    assert SCRIPT not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # Columns are the row keys in order, one table per key.
    headers = re.findall(r"<thead.*?</thead>", body, re.S)
    assert len(headers) == 2
    assert re.findall(r"<th scope=\"col\">(.*?)</th>", headers[0]) == ["id", "name", "email", "vip"]
    # A manual system by its name and its fields by their names (PII fields), not keys and labels.
    assert re.findall(r"<th scope=\"col\">(.*?)</th>", headers[1]) == ["First Name", "Last Name", "Notes"]
    page = text_of(response)
    assert "postgres_example:customer" in page and "Collected automatically" in page
    assert "Crm" in page and "Entered by hand" in page
    assert "Jane Customer" in page and "true" in page and "false" in page
    # A null is a muted dash that reads "empty".
    assert '<span aria-hidden="true">—</span><span class="visually-hidden">empty</span>' in body
    assert "Searched — nothing found" not in page
    assert "j•••@e•••.com" in page and SUBJECT_EMAIL not in page.split("postgres_example:customer")[0]


def test_an_all_null_manual_entry_says_nothing_found(client, reviewer):
    request_id = completed_request({})
    page = text_of(client.get(f"/packages/{request_id}"))
    assert "Searched — nothing found" in page


def test_viewing_a_package_is_audited(client, reviewer):
    request_id = completed_request({"first_name": "Jane"})
    client.get(f"/packages/{request_id}")
    assert package_events(request_id) == [("package.viewed", reviewer.email, {})]


def test_a_request_that_is_not_complete_has_no_package_page(client, reviewer):
    add_webhook("crm", [field("First Name")])
    request_id = new_request()  # waits in requires_input
    for route in ROUTES[1:]:
        response = client.get(route.format(id=request_id))
        assert response.status_code == 404
        assert f"No access package for privacy request '{request_id}' yet: it is not complete." in text_of(
            response
        )
    assert package_events(request_id) == []


def test_an_unknown_request_is_404(client, reviewer):
    response = client.get("/packages/pri_missing")
    assert response.status_code == 404
    assert "No privacy request found with id 'pri_missing'." in text_of(response)


# --- downloads -------------------------------------------------------------------------------------


def test_json_download_is_the_stored_package_exactly(client, reviewer):
    request_id = completed_request({"first_name": "Jane", "notes": SCRIPT})
    stored = with_automated_data(request_id)

    response = client.get(f"/packages/{request_id}/package.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == f"attachment; filename=access-package-{request_id}.json"
    assert json.loads(response.data) == stored
    assert list(json.loads(response.data)) == list(stored)  # key order kept
    assert package_events(request_id) == [("package.downloaded", reviewer.email, {"format": "json"})]


def open_zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(response.data))


def read_csv(archive: zipfile.ZipFile, name: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))


def test_zip_download_holds_json_report_and_one_csv_per_key(client, reviewer):
    request_id = completed_request({"first_name": '=HYPERLINK("x")', "last_name": "-2+3", "notes": SCRIPT})
    stored = with_automated_data(request_id)

    response = client.get(f"/packages/{request_id}/package.zip")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == f"attachment; filename=access-package-{request_id}.zip"
    archive = open_zip(response)
    assert archive.namelist() == ["package.json", "report.html", "postgres_example_customer.csv", "crm.csv"]
    assert json.loads(archive.read("package.json")) == stored

    assert read_csv(archive, "postgres_example_customer.csv") == [
        ["id", "name", "email", "vip"],
        ["1", "Jane Customer", SUBJECT_EMAIL, "true"],
        ["2", SCRIPT, "", "false"],
    ]
    assert read_csv(archive, "crm.csv") == [
        ["first_name", "last_name", "notes"],
        ['\'=HYPERLINK("x")', "'-2+3", SCRIPT],
    ]
    assert package_events(request_id) == [("package.downloaded", reviewer.email, {"format": "zip"})]


def test_zip_report_is_self_contained_and_escapes_values(client, reviewer):
    request_id = completed_request({"first_name": "Jane", "notes": SCRIPT})
    with_automated_data(request_id)
    report = open_zip(client.get(f"/packages/{request_id}/package.zip")).read("report.html").decode()

    assert "<script" not in report.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*(https?:|//)""", report, re.I)
    assert "<link" not in report.lower() and "@import" not in report
    assert "<style>" in report
    assert request_id in report
    assert "Default access policy" in report
    assert "Report generated" in report and "UTC" in report
    assert report.count("<table>") == 2
    assert "Crm" in report and "postgres_example:customer" in report
    assert '<th scope="col">First Name</th>' in report and ">first_name<" not in report


def test_zip_report_says_nothing_found_in_words(client, reviewer):
    request_id = completed_request({})
    archive = open_zip(client.get(f"/packages/{request_id}/package.zip"))
    assert "Searched — nothing found" in archive.read("report.html").decode()
    assert read_csv(archive, "crm.csv") == [["first_name", "last_name", "notes"], ["", "", ""]]


# --- the export functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+49 151", "'+49 151"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain = text", "plain = text"),
        ("", ""),
        (None, ""),
        (-5, "-5"),  # a JSON number cannot hold a formula
        (2.5, "2.5"),
        (True, "true"),
        (["=a", "b"], '["=a", "b"]'),
        ({"k": "v"}, '{"k": "v"}'),
    ],
)
def test_csv_cells_are_injection_safe(value, cell):
    assert reports.csv_cell(value) == cell


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        (["postgres_example:customer"], ["postgres_example_customer.csv"]),
        (["a:b", "a_b", "a/b"], ["a_b.csv", "a_b-2.csv", "a_b-3.csv"]),
        ([".hidden", "../up", "é ü"], ["hidden.csv", "_up.csv", "_.csv"]),
        (["package", "report"], ["package.csv", "report.csv"]),
    ],
)
def test_csv_file_names_are_safe_and_unique(keys, names):
    assert list(reports.csv_filenames(keys).values()) == names


def test_columns_are_the_union_of_row_keys_in_order():
    table = reports.key_table("k", [{"a": 1, "b": None}, {"c": "x", "a": 2}])
    assert table.columns == ["a", "b", "c"]
    assert [row.values for row in table.rows] == [[1, None, None], [2, None, "x"]]
    assert not table.nothing_found
    assert reports.key_table("k", [{"a": None}]).nothing_found
    assert reports.key_table("k", []).nothing_found


def test_report_of_an_empty_package_says_so():
    meta = reports.ReportMeta("pri_1", "Default", None, datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    report = reports.report_html({}, meta)
    assert "the package is empty" in report
    assert "2024-05-01 12:00 UTC" in report
    archive = zipfile.ZipFile(io.BytesIO(reports.package_zip_bytes({}, meta)))
    assert archive.namelist() == ["package.json", "report.html"]
    assert json.loads(archive.read("package.json")) == {}
