"""The upload route takes ``multipart/form-data`` for entries with files; the JSON view lists them."""

from __future__ import annotations

import io
import json

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Attachment, ManualInput
from tests.test_api import admin, api, make_manual, new_request  # noqa: F401 - fixtures
from tests.test_attachments import CSV, PDF, PNG, multipart

FIELDS = [
    {"pii_field": "Customer Id"},
    {"pii_field": "Ticket export", "dsr_package_label": "tickets", "type": "file"},
]
URL = "/privacy-request/{id}/access_manual_webhook/vendor"


def setup_request(admin) -> str:  # noqa: F811
    make_manual(admin, name="Vendor", key="vendor", fields=FIELDS)
    return new_request(admin)["id"]


def files_stored() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Attachment))


def test_multipart_upload_by_pii_field_or_label(admin):  # noqa: F811
    request_id = setup_request(admin)
    url = URL.format(id=request_id)
    r = admin(
        "PATCH",
        url,
        data={
            "Customer Id": "C-7",
            "Ticket export": [(io.BytesIO(CSV), "tickets.csv"), (io.BytesIO(PDF), "t.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.json
    assert r.json["checked"] is True and r.json["fields"]["customer_id"] == "C-7"
    refs = r.json["fields"]["tickets"]
    assert [(f["file_name"], f["type"], f["size"]) for f in refs] == [
        ("tickets.csv", "text/csv", len(CSV)),
        ("t.pdf", "application/pdf", len(PDF)),
    ]
    view = admin("GET", url)
    assert view.json == {"checked": True, "fields": {"customer_id": "C-7", "tickets": refs}}
    # Keep one by id (a form value under the file field's name), add one by the label.
    r = admin(
        "PATCH",
        url,
        data={"tickets": [refs[1]["id"], (io.BytesIO(PNG), "photo.png")]},
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.json
    assert [f["file_name"] for f in r.json["fields"]["tickets"]] == ["t.pdf", "photo.png"]
    assert r.json["fields"]["customer_id"] is None  # the whole entry is replaced, as with JSON
    assert files_stored() == 2


def test_json_keeps_files_by_id_and_drops_the_rest(admin):  # noqa: F811
    request_id = setup_request(admin)
    url = URL.format(id=request_id)
    refs = admin(
        "PATCH",
        url,
        data={"tickets": [(io.BytesIO(CSV), "a.csv"), (io.BytesIO(PDF), "b.pdf")]},
        content_type="multipart/form-data",
    ).json["fields"]["tickets"]
    r = admin("PATCH", url, {"customer_id": "C-1", "tickets": [refs[0]]})  # a reference as the view gave it
    assert r.status_code == 200, r.json
    assert r.json["fields"]["tickets"] == [refs[0]]
    r = admin("PATCH", url, {"customer_id": "C-1"})  # fidesops' semantics: a missing label is null
    assert r.json["fields"]["tickets"] is None
    assert files_stored() == 0
    r = admin("PATCH", url, {"tickets": "a.csv"})
    assert r.status_code == 422
    assert "must be a list of attachment ids to keep, or null" in json.dumps(r.json)


def test_multipart_refusals_name_the_file_and_store_nothing(admin):  # noqa: F811
    request_id = setup_request(admin)
    url = URL.format(id=request_id)
    r = admin(
        "PATCH",
        url,
        data={"Customer Id": "C-7", "tickets": [(io.BytesIO(CSV), "a.csv"), (io.BytesIO(b""), "empty.csv")]},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422
    assert "the file “empty.csv” was refused: it is empty." in json.dumps(r.json, ensure_ascii=False)
    r = admin("PATCH", url, data={"nope": [(io.BytesIO(CSV), "a.csv")]}, content_type="multipart/form-data")
    assert r.status_code == 422 and "unknown label 'nope'" in json.dumps(r.json)
    assert files_stored() == 0
    assert db.session.scalar(select(func.count()).select_from(ManualInput)) == 0


def test_a_large_multipart_body_is_read_but_json_keeps_the_1_mb_limit(admin):  # noqa: F811
    request_id = setup_request(admin)
    url = URL.format(id=request_id)
    big = PDF + b"x" * (2 * 1024 * 1024)
    body, content_type = multipart([("tickets", (big, "big.pdf"))])
    r = admin("PATCH", url, data=body, content_type=content_type)
    assert r.status_code == 200, r.json
    assert r.json["fields"]["tickets"][0]["size"] == len(big)
    r = admin(
        "PATCH",
        url,
        data='{"customer_id": "' + "x" * (2 * 1024 * 1024) + '"}',
        content_type="application/json",
    )
    assert r.status_code == 413


def test_a_body_over_the_entry_limit_says_the_limit(app, admin):  # noqa: F811
    app.config.update(MAX_ATTACHMENT_MB=1, MAX_ENTRY_ATTACHMENT_MB=2)
    request_id = setup_request(admin)
    body, content_type = multipart([("tickets", (PDF + b"x" * (4 * 1024 * 1024), "big.pdf"))])
    r = admin("PATCH", URL.format(id=request_id), data=body, content_type=content_type)
    assert r.status_code == 413
    assert r.json == {"detail": "Request body too large: the limit is 3 MB."}
