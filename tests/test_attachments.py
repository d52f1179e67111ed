"""The ``file`` field type: uploads through the form and the service, the checks, storage and the saves."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.crypto import Keyring, generate_key
from portal.execution import dispatch
from portal.extensions import db
from portal.models import Attachment, AttachmentChunk, AuditEvent, ManualInput, PrivacyRequest, utcnow
from portal.services import (
    ValidationFailed,
    key_rotation,
    manual_inputs,
    privacy_requests,
    retention,
    webhooks,
)
from portal.services.attachments import Upload
from portal.services.key_rotation import raw_table
from portal.uploads import EncryptedSpool
from tests.workflow_helpers import STAFF, add_webhook, field, new_request, post_manual

PDF = b"%PDF-1.4\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 50 + b"%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64
CSV = "name,city\nJöns,Malmö\n".encode()


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("word/document.xml", "<document/>")
    return buffer.getvalue()


def files_field(pii_field: str = "Exports", **extra) -> dict:
    return field(pii_field, type="file", **extra)


@pytest.fixture
def vendor(app):
    """A manual system with a text field (0) and a file field (1), and a request waiting for it."""
    add_webhook("vendor", [field("Customer Id"), files_field()])
    return new_request()


def save(request_id: str, values: dict, uploads: dict | None = None):
    result = manual_inputs.save_manual_input(request_id, "vendor", values, STAFF, uploads=uploads)
    db.session.commit()
    return result


def upload(name: str, data: bytes) -> Upload:
    return Upload(name, io.BytesIO(data))


def stored_entry(request_id: str) -> dict:
    db.session.expire_all()
    return db.session.scalars(
        select(ManualInput.values).where(ManualInput.privacy_request_id == request_id)
    ).one()


def counts() -> tuple[int, int]:
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(Attachment)),
        db.session.scalar(select(func.count()).select_from(AttachmentChunk)),
    )


def test_file_is_a_field_type(app):
    fields = webhooks.normalize_fields([{"pii_field": "Scans", "type": "file"}])
    assert fields[0]["type"] == "file"


def test_saved_files_are_references_and_encrypted_chunks(app, vendor):
    stored = save(
        vendor, {"customer_id": "C-1"}, {"exports": [upload("export.pdf", PDF), upload("list.csv", CSV)]}
    )
    refs = stored["exports"]
    assert [(r["file_name"], r["type"], r["size"], r["sha256"]) for r in refs] == [
        ("export.pdf", "application/pdf", len(PDF), hashlib.sha256(PDF).hexdigest()),
        ("list.csv", "text/csv", len(CSV), hashlib.sha256(CSV).hexdigest()),
    ]
    assert all(r["id"].startswith("att_") for r in refs)
    assert stored_entry(vendor)["exports"] == refs
    # Neither the bytes nor the names are stored in the clear.
    raw = db.session.execute(select(func.count()).select_from(AttachmentChunk)).scalar()
    assert raw == 2
    blobs = [
        bytes(b) for b in db.session.execute(select(raw_table("attachment_chunks", "data").c.data)).scalars()
    ]
    metas = [bytes(b) for b in db.session.execute(select(raw_table("attachments", "meta").c.meta)).scalars()]
    assert not any(b"%PDF" in blob or b"Malm" in blob for blob in blobs)
    assert not any(b"export.pdf" in meta for meta in metas)


def test_a_large_file_is_stored_in_pieces(app, vendor):
    data = PDF + bytes(range(256)) * 9000  # about 2.3 MB
    save(vendor, {}, {"exports": [upload("big.pdf", data)]})
    assert counts() == (1, 3)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.pdf", b"", "it is empty"),
        ("scan.png", PDF, "its name ends in .png but its content is a PDF document"),
        (
            "page.pdf",
            b"<html><body>hello</body></html>",
            "its name ends in .pdf but its content is plain text",
        ),
        ("noextension", PDF, "its name has no extension but its content is a PDF document"),
        ("tool.exe", b"MZ" + b"\x90" * 100, "not an allowed type"),
        ("binary.txt", b"abc\x00def", "its type could not be recognised"),
        ("latin1.csv", "Malmö".encode("latin-1"), "its type could not be recognised"),
        ("doc.pdf", docx_bytes(), "its name ends in .pdf but its content is a Word document"),
    ],
)
def test_refused_file_is_named_and_nothing_is_stored(app, vendor, name, data, reason):
    with pytest.raises(ValidationFailed) as refused:
        manual_inputs.save_manual_input(
            vendor,
            "vendor",
            {"customer_id": "C-1"},
            STAFF,
            uploads={"exports": [upload("fine.pdf", PDF), upload(name, data)]},
        )
    db.session.rollback()
    assert f"“{name}”" in str(refused.value)
    assert reason in str(refused.value)
    assert counts() == (0, 0)
    assert db.session.scalar(select(func.count()).select_from(ManualInput)) == 0


def test_office_document_with_its_own_extension_is_accepted(app, vendor):
    stored = save(vendor, {}, {"exports": [upload("letter.docx", docx_bytes())]})
    assert stored["exports"][0]["type"].endswith("wordprocessingml.document")


def test_per_file_limit(app, vendor):
    app.config["MAX_ATTACHMENT_MB"] = 1
    with pytest.raises(
        ValidationFailed, match="“big.pdf” was refused: it is larger than 1 MB, the limit per file"
    ):
        save(vendor, {}, {"exports": [upload("big.pdf", PDF + b"x" * (1024 * 1024))]})
    db.session.rollback()
    assert counts() == (0, 0)


def test_per_entry_limit_counts_kept_files(app, vendor):
    app.config.update(MAX_ATTACHMENT_MB=1, MAX_ENTRY_ATTACHMENT_MB=2)
    half = PDF + b"x" * (700 * 1024)
    first = save(vendor, {}, {"exports": [upload("a.pdf", half), upload("b.pdf", half)]})
    kept = [ref["id"] for ref in first["exports"]]
    with pytest.raises(
        ValidationFailed, match="“c.pdf” was refused: the files of this entry would pass 2 MB"
    ):
        save(vendor, {"exports": kept}, {"exports": [upload("c.pdf", half)]})
    db.session.rollback()
    assert [r["file_name"] for r in stored_entry(vendor)["exports"]] == ["a.pdf", "b.pdf"]
    assert counts()[0] == 2


def test_many_files(app, vendor):
    app.config["MAX_ATTACHMENTS_PER_ENTRY"] = 5
    many = {"exports": [upload(f"f{n}.csv", b"a,b\n%d,2\n" % n) for n in range(5)]}
    assert len(save(vendor, {}, many)["exports"]) == 5
    too_many = {"exports": [upload(f"g{n}.csv", b"a\n") for n in range(6)]}
    with pytest.raises(ValidationFailed, match="at most 5 files; this one would hold 6"):
        save(vendor, {}, too_many)
    db.session.rollback()
    assert counts()[0] == 5


def test_replacing_and_removing_files_is_a_save(app, vendor):
    first = save(vendor, {}, {"exports": [upload("a.pdf", PDF), upload("b.csv", CSV)]})
    a, _ = (ref["id"] for ref in first["exports"])
    second = save(vendor, {"exports": [a]}, {"exports": [upload("c.png", PNG)]})
    assert [r["file_name"] for r in second["exports"]] == ["a.pdf", "c.png"]
    assert set(db.session.scalars(select(Attachment.id))) == {a, second["exports"][1]["id"]}
    events = db.session.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "manual_input.saved").order_by(AuditEvent.id)
    ).all()
    assert events[-1]["files"] == 2 and events[-1]["files_removed"] == 1
    assert "a.pdf" not in str(events)
    # Nothing found: the entry is all null and its files are gone.
    assert save(vendor, {}) == {"customer_id": None, "exports": None}
    assert counts() == (0, 0)


def test_a_file_of_another_entry_cannot_be_kept(app, vendor):
    other = new_request(email="other@example.com")
    theirs = save(other, {}, {"exports": [upload("theirs.pdf", PDF)]})["exports"][0]["id"]
    with pytest.raises(ValidationFailed, match="has no file with the id"):
        save(vendor, {"exports": [theirs]})


def test_required_file_field(app):
    add_webhook("vendor", [field("Customer Id"), files_field(required=True)])
    request_id = new_request()
    with pytest.raises(ValidationFailed, match="exports: is required"):
        save(request_id, {"customer_id": "C-1"})
    db.session.rollback()
    assert save(request_id, {}, {"exports": [upload("a.pdf", PDF)]})["exports"][0]["file_name"] == "a.pdf"


def test_files_only_for_file_fields(app, vendor):
    with pytest.raises(ValidationFailed, match="customer_id: only a field of type file takes files"):
        save(vendor, {}, {"customer_id": [upload("a.pdf", PDF)]})


# --- the form ------------------------------------------------------------------------------------------


def form_url(request_id: str) -> str:
    return f"/requests/{request_id}/manual/vendor"


def test_form_uploads_files(app, client, login_as, vendor):
    login_as("staff")
    page = client.get(form_url(vendor)).get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file" multiple' in page and 'name="field_1"' in page
    response = post_manual(
        client,
        form_url(vendor),
        {
            "field_0": "C-9",
            "field_1": [(io.BytesIO(PDF), "export.pdf"), (io.BytesIO(CSV), "list.csv")],
            "save": "Save",
        },
    )
    assert response.status_code == 302
    refs = stored_entry(vendor)["exports"]
    assert [r["file_name"] for r in refs] == ["export.pdf", "list.csv"]
    # The form lists them, to keep or remove; unchecking one removes it at the next save.
    page = client.get(form_url(vendor)).get_data(as_text=True)
    assert "Keep export.pdf" in page and f'value="{refs[0]["id"]}"' in page
    response = post_manual(
        client, form_url(vendor), {"field_0": "C-9", "field_1-keep": refs[1]["id"], "save": "Save"}
    )
    assert response.status_code == 302
    assert [r["file_name"] for r in stored_entry(vendor)["exports"]] == ["list.csv"]
    assert counts()[0] == 1


def test_form_refused_file_stores_nothing_and_says_why(app, client, login_as, vendor):
    login_as("staff")
    response = post_manual(
        client,
        form_url(vendor),
        {
            "field_0": "C-9",
            "field_1": [(io.BytesIO(PDF), "fine.pdf"), (io.BytesIO(PDF), "scan.png")],
            "save": "Save",
        },
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "The file “scan.png” was refused: its name ends in .png but its content is a PDF document" in text
    assert "Choose the files again: nothing was saved." in text
    assert counts() == (0, 0)
    assert db.session.scalar(select(func.count()).select_from(ManualInput)) == 0


def test_form_files_only_is_enough_and_nothing_found_still_works(app, client, login_as, vendor):
    login_as("staff")
    response = post_manual(
        client, form_url(vendor), {"field_1": [(io.BytesIO(PNG), "photo.png")], "save": "Save"}
    )
    assert response.status_code == 302
    assert stored_entry(vendor)["exports"][0]["type"] == "image/png"
    response = post_manual(client, form_url(vendor), {"nothing_found": "Nothing found in this system"})
    assert response.status_code == 302
    assert stored_entry(vendor) == {"customer_id": None, "exports": None}
    assert counts() == (0, 0)


def test_stale_entry_keeps_its_files_until_saved(app, client, login_as, vendor):
    login_as("staff")
    ref = save(vendor, {"customer_id": "C-1"}, {"exports": [upload("a.pdf", PDF)]})["exports"][0]
    connection = db.session.scalar(select(ManualInput.connection_config_id))
    from portal.models import ConnectionConfig

    conn = db.session.get(ConnectionConfig, connection)
    webhooks.replace_fields(conn, [field("Customer Id"), files_field(), field("Notes")], STAFF)
    db.session.commit()
    page = client.get(form_url(vendor)).get_data(as_text=True)
    assert "Keep a.pdf" in page and "review and save again" in page
    assert counts()[0] == 1 and stored_entry(vendor)["exports"][0]["id"] == ref["id"]
    response = post_manual(
        client, form_url(vendor), {"field_0": "C-1", "field_1-keep": ref["id"], "save": "Save"}
    )
    assert response.status_code == 302
    assert stored_entry(vendor)["exports"][0]["id"] == ref["id"]


def multipart(fields: list[tuple[str, str | tuple[bytes, str]]]) -> tuple[bytes, str]:
    """A multipart body built in memory (the test client spools large ones to a file it never closes)."""
    boundary = "----portal-test-boundary"
    parts = []
    for name, value in fields:
        if isinstance(value, tuple):
            data, file_name = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
            head += "Content-Type: application/octet-stream\r\n\r\n"
            parts.append(f"--{boundary}\r\n{head}".encode() + data + b"\r\n")
        else:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_upload_body_limit_is_the_entry_limit_there_only(app, client, login_as, vendor):
    login_as("staff")
    big = PDF + b"x" * (2 * 1024 * 1024)  # over the 1 MB every other route allows
    body, content_type = multipart([("version", "1"), ("field_1", (big, "big.pdf")), ("save", "Save")])
    response = client.post(form_url(vendor), data=body, content_type=content_type)
    assert response.status_code == 302
    assert stored_entry(vendor)["exports"][0]["size"] == len(big)
    body, content_type = multipart([("x", (big, "big.pdf"))])
    assert client.post("/requests/new", data=body, content_type=content_type).status_code == 413


def test_uploaded_parts_are_spooled_encrypted():
    spool = EncryptedSpool()
    data = b"Jane Doe, 12 Main Street\n" * 100_000  # 2.5 MB: past one block, so it goes to the disk
    for start in range(0, len(data), 64 * 1024):
        spool.write(data[start : start + 64 * 1024])
    assert spool.seek(0, os.SEEK_END) == len(data)
    spool.seek(0)
    on_disk = spool._file
    on_disk.seek(0)
    assert b"Jane Doe" not in on_disk.read()
    spool.seek(0)
    assert b"".join(iter(lambda: spool.read(300_000), b"")) == data
    spool.close()
    assert on_disk.closed


# --- purge and key rotation ----------------------------------------------------------------------------


def complete_with_files(request_id: str, files: list[tuple[str, bytes]]) -> list[dict]:
    """Save the files on the vendor entry, resume and run the request to completion; the references."""
    refs = save(request_id, {"customer_id": "C-1"}, {"exports": [upload(n, d) for n, d in files]})["exports"]
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    db.session.expire_all()
    assert db.session.get(PrivacyRequest, request_id).status == "complete"
    return refs


def test_purge_deletes_the_files(app, vendor):
    app.config["REQUIRE_PACKAGE_REVIEW"] = False
    complete_with_files(vendor, [("a.pdf", PDF), ("b.csv", CSV)])
    other = new_request(email="other@example.com")
    save(other, {}, {"exports": [upload("kept.pdf", PDF)]})  # still open: never purged
    purged = retention.purge_expired(STAFF, now=utcnow() + timedelta(days=400))
    db.session.commit()
    assert [item.request_id for item in purged] == [vendor]
    assert counts() == (1, 1)
    assert db.session.scalar(select(Attachment.privacy_request_id)) == other
    details = db.session.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "request.purged")
    ).one()
    assert details["attachments_deleted"] == 2


def test_key_rotation_re_encrypts_the_files(app, runner, vendor):
    data = PDF + bytes(range(256)) * 5000  # two chunks
    save(vendor, {}, {"exports": [upload("a.pdf", data), upload("b.csv", CSV)]})
    assert {("attachments", "id", "meta"), ("attachment_chunks", "id", "data")} <= set(
        key_rotation.encrypted_columns()
    )
    new_key = generate_key()
    result = runner.invoke(args=["rotate-encryption-key", "--new-key", new_key, "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    new_only = Keyring(new_key)
    chunks = db.session.execute(select(raw_table("attachment_chunks", "attachment_id", "seq", "data"))).all()
    assert {Keyring.key_id_of(bytes(row.data)) for row in chunks} == {new_only.first_key_id}
    metas = [bytes(m) for m in db.session.execute(select(raw_table("attachments", "meta").c.meta)).scalars()]
    names = {json.loads(new_only.decrypt(meta))["file_name"] for meta in metas}
    assert names == {"a.pdf", "b.csv"}
    by_file: dict[str, list] = {}
    for row in sorted(chunks, key=lambda r: (r.attachment_id, r.seq)):
        by_file.setdefault(row.attachment_id, []).append(new_only.decrypt(bytes(row.data)))
    assert sorted(b"".join(pieces) for pieces in by_file.values()) == sorted([data, CSV])


def test_a_form_over_the_entry_limit_says_the_limit(app, client, login_as, vendor):
    login_as("staff")
    app.config.update(MAX_ATTACHMENT_MB=1, MAX_ENTRY_ATTACHMENT_MB=2)
    body, content_type = multipart(
        [("version", "1"), ("field_1", (PDF + b"x" * (4 * 1024 * 1024), "big.pdf"))]
    )
    response = client.post(form_url(vendor), data=body, content_type=content_type)
    assert response.status_code == 413
    assert "the files of one entry may total 3 MB at most" in response.get_data(as_text=True)


def test_staff_download_a_saved_file_from_the_form(app, client, login_as, vendor):
    refs = save(vendor, {}, {"exports": [upload("a.pdf", PDF), upload("b.csv", CSV)]})["exports"]
    other = new_request(email="other@example.com")
    theirs = save(other, {}, {"exports": [upload("theirs.pdf", PDF)]})["exports"][0]["id"]
    login_as("staff")
    url = f"{form_url(vendor)}/files/{refs[1]['id']}"
    assert f'href="{url}"' in client.get(form_url(vendor)).get_data(as_text=True)
    response = client.get(url)
    assert response.status_code == 200 and response.get_data() == CSV
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="b.csv"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"{form_url(vendor)}/files/{theirs}").status_code == 404
    events = db.session.scalars(
        select(AuditEvent.details).where(AuditEvent.action == "attachment.downloaded")
    ).all()
    assert [e["attachment_id"] for e in events] == [refs[1]["id"]]


def test_a_file_field_removed_drops_its_files_at_the_next_save(app, vendor):
    save(vendor, {"customer_id": "C-1"}, {"exports": [upload("a.pdf", PDF)]})
    from portal.models import ConnectionConfig

    conn = db.session.scalar(select(ConnectionConfig).where(ConnectionConfig.key == "vendor"))
    webhooks.replace_fields(conn, [field("Customer Id")], STAFF)  # no file field any more
    db.session.commit()
    assert counts()[0] == 1  # the stale entry still refers to its file
    assert save(vendor, {"customer_id": "C-2"}) == {"customer_id": "C-2"}
    assert counts() == (0, 0)


def test_a_save_without_files_does_not_delete(app, monkeypatch):
    """A system that never had a file field skips the DELETE of unreferenced files."""
    from portal.services import attachments

    add_webhook("plain", [field("Customer Id")])
    request_id = new_request()
    calls = []
    real = attachments.drop_unreferenced
    monkeypatch.setattr(attachments, "drop_unreferenced", lambda *a: calls.append(a) or real(*a))
    for value in ("C-1", "C-2"):
        manual_inputs.save_manual_input(request_id, "plain", {"customer_id": value}, STAFF)
        db.session.commit()
    assert calls == []
    # With a file field, the same save does run it (the patch is in the path the save takes).
    add_webhook("vendor", [field("Customer Id"), files_field()])
    manual_inputs.save_manual_input(request_id, "vendor", {"customer_id": "C-3"}, STAFF)
    assert len(calls) == 1
