"""Attachments in the access package: the JSON, the ZIP, the reviewer's and the subject's downloads."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from portal.services import delivery, privacy_requests
from tests.test_attachments import CSV, PDF, PNG, complete_with_files, files_field, save, upload
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

PHONE = "+15555550123"


@pytest.fixture
def vendor(app):
    add_webhook("vendor", [field("Customer Id"), files_field()])
    return new_request(email=None, identity={"phone_number": PHONE})


@pytest.fixture
def completed(vendor):
    refs = complete_with_files(vendor, [("scan.pdf", PDF), ("list.csv", CSV), ("scan.pdf", PDF + b"2")])
    return vendor, refs


def downloads(request_id: str) -> list[dict]:
    db.session.expire_all()
    return db.session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == "attachment.downloaded", AuditEvent.privacy_request_id == request_id
        )
    ).all()


def test_the_json_lists_each_file_under_its_label(app, completed):
    request_id, _ = completed
    entry = db.session.get(privacy_requests.PrivacyRequest, request_id).package.data["vendor"][0]
    assert entry["customer_id"] == "C-1"
    assert entry["exports"] == [
        {
            "file_name": "scan.pdf",
            "type": "application/pdf",
            "size": len(PDF),
            "sha256": hashlib.sha256(PDF).hexdigest(),
        },
        {
            "file_name": "list.csv",
            "type": "text/csv",
            "size": len(CSV),
            "sha256": hashlib.sha256(CSV).hexdigest(),
        },
        {
            "file_name": "scan.pdf",
            "type": "application/pdf",
            "size": len(PDF) + 1,
            "sha256": hashlib.sha256(PDF + b"2").hexdigest(),
        },
    ]
    assert "att_" not in json.dumps(entry)  # internal ids stay internal


def test_the_zip_holds_the_files_byte_for_byte(app, client, login_as, completed):
    request_id, _ = completed
    login_as("reviewer")
    response = client.get(f"/packages/{request_id}/package.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.read("attachments/vendor/scan.pdf") == PDF
    assert archive.read("attachments/vendor/list.csv") == CSV
    assert archive.read("attachments/vendor/scan (2).pdf") == PDF + b"2"
    assert json.loads(archive.read("package.json"))["vendor"][0]["exports"][1]["file_name"] == "list.csv"


def test_reviewer_page_lists_and_downloads_files(app, client, login_as, completed):
    request_id, refs = completed
    login_as("reviewer")
    page = client.get(f"/packages/{request_id}").get_data(as_text=True)
    assert "list.csv" in page and hashlib.sha256(CSV).hexdigest() in page
    url = f"/packages/{request_id}/attachments/{refs[1]['id']}"
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200
    assert response.get_data() == CSV
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="list.csv"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == "sandbox"  # even opened directly, no script runs
    (event,) = downloads(request_id)
    assert event["attachment_id"] == refs[1]["id"] and "list.csv" not in json.dumps(event)


def test_a_file_name_with_odd_characters_downloads_safely(app, client, login_as, vendor):
    complete_with_files(vendor, [('Jöns "report".csv', CSV)])
    attachment_id = (
        db.session.get(privacy_requests.PrivacyRequest, vendor).package.contents().attachments[0]["id"]
    )
    login_as("reviewer")
    response = client.get(f"/packages/{vendor}/attachments/{attachment_id}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Jons report.csv\"; filename*=UTF-8''J%C3%B6ns%20%22report%22.csv"
    )


@pytest.mark.parametrize("role", ["staff"])
def test_downloads_need_a_reviewer_or_admin(app, client, login_as, completed, role):
    request_id, refs = completed
    url = f"/packages/{request_id}/attachments/{refs[0]['id']}"
    assert client.get(url).status_code == 302  # signed out: the login page
    login_as(role)
    assert client.get(url).status_code == 403
    assert downloads(request_id) == []


def test_only_the_files_of_that_package_download(app, client, login_as, completed):
    request_id, _ = completed
    other = new_request(email="other@example.com")
    theirs = save(other, {}, {"exports": [upload("theirs.png", PNG)]})["exports"][0]["id"]
    login_as("admin")
    assert client.get(f"/packages/{request_id}/attachments/{theirs}").status_code == 404
    assert client.get(f"/packages/{request_id}/attachments/att_{'0' * 32}").status_code == 404
    assert downloads(request_id) == []


def test_the_subject_lists_and_downloads_the_files(app, completed):
    request_id, refs = completed
    release = delivery.approve(request_id, STAFF)
    db.session.commit()
    subject = app.test_client()
    link = "/" + release.url.split("://", 1)[-1].partition("/")[2]
    page = subject.get(link)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    url = f"{link}/attachments/{refs[2]['id']}"
    assert "scan.pdf" in text and f'href="{url}"' in text
    response = subject.get(url)
    assert response.status_code == 200 and response.get_data() == PDF + b"2"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.mimetype == "application/octet-stream"
    assert downloads(request_id)[0]["attachment_id"] == refs[2]["id"]
    assert subject.get(f"{link}/attachments/att_{'0' * 32}").status_code == 404


def test_the_subject_must_prove_the_address_first(app, client):
    add_webhook("vendor", [field("Customer Id"), files_field()])
    request_id = new_request(email="jane@example.com")
    refs = complete_with_files(request_id, [("a.pdf", PDF)])
    release = delivery.approve(request_id, STAFF)
    db.session.commit()
    link = "/" + release.url.split("://", 1)[-1].partition("/")[2]
    response = app.test_client().get(f"{link}/attachments/{refs[0]['id']}")
    assert response.status_code == 302 and response.headers["Location"].endswith(link)
    assert downloads(request_id) == []


def test_a_file_dropped_after_the_package_was_built_stops_the_zip_before_it_starts(
    app, client, login_as, completed
):
    request_id, _ = completed
    from portal.models import Attachment

    db.session.execute(Attachment.__table__.delete())
    db.session.commit()
    login_as("reviewer")
    response = client.get(f"/packages/{request_id}/package.zip")
    assert response.status_code == 404
    assert re.search(r"no longer stored", response.get_data(as_text=True))
