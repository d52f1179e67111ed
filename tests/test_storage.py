"""Storage destinations (fidesops' StorageConfig): the API's shapes and refusals, secrets kept encrypted and
out of every answer and log, and packages written to a local directory (atomically, 0600, nothing left on
failure) and to S3 (moto's server on localhost: one PUT or a multipart upload, aborted on failure)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import zipfile

import pytest
import sqlalchemy as sa

from portal.crypto import Keyring
from portal.execution import destinations
from portal.extensions import db
from portal.models import AuditEvent, PrivacyRequest, StorageConfig
from portal.models.audit import Actor
from portal.models.packages import PackageChanged
from portal.services import storage, storage_export, tokens
from tests.conftest import TEST_KEY
from tests.storage_helpers import (
    ACCESS_KEY_ID,
    AWS_CREDENTIAL_VARIABLES,
    ISOLATED_AWS_ENV,
    REGION,
    SECRET_ACCESS_KEY,
    free_port,
    moto_server,
    new_bucket,
    objects,
    open_multipart_uploads,
    s3_client,
)
from tests.workflow_helpers import new_request, store_package

V1 = "/api/v1"
ACTOR = Actor.system("test")
PACKAGE = {
    "shop:customer": [
        {"id": 1, "name": "Jane <b>Customer</b>", "note": 'line\nbreak, "quotes", ü, 😀', "vip": True},
        *({"id": n, "name": f"row {n}"} for n in range(2, 30)),
    ],
    "shop:nothing": [],
    "crm": [{"first_name": "Jane", "last_name": None}],
}
PACKAGE_JSON = json.dumps(PACKAGE, ensure_ascii=False, indent=2).encode()
SECRETS = {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY}


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch):
    for name, value in ISOLATED_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in AWS_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def app_config(app_config, root):
    return {**app_config, "STORAGE_LOCAL_ROOT": str(root), "PACKAGE_CHUNK_BYTES": 256}


@pytest.fixture
def admin(client, make_user):
    """``admin(method, path, body=None)`` with an admin's token."""
    _, secret = tokens.create_token(make_user(role="admin"), "test", ACTOR)
    db.session.commit()

    def call(method: str, path: str, body=None, **kwargs):
        if body is not None:
            kwargs["json"] = body
        return client.open(V1 + path, method=method, headers={"Authorization": f"Bearer {secret}"}, **kwargs)

    return call


@pytest.fixture
def completed(app) -> str:
    request_id = new_request()  # no systems: complete at once
    store_package(request_id, PACKAGE)
    return request_id


def make_local(directory: str | None = None, *, name: str = "Local exports", **kwargs) -> StorageConfig:
    details = {"directory": directory} if directory else {}
    config = storage.create_storage_config(
        name=name, storage_type="local", details=details, actor=ACTOR, **kwargs
    )
    db.session.commit()
    return config


def make_s3(endpoint: str, bucket: str, *, secrets: dict | None = SECRETS, **details) -> StorageConfig:
    response_format = details.pop("format", None)
    config = storage.create_storage_config(
        name=f"S3 {bucket}",
        storage_type="s3",
        details={"bucket": bucket, "endpoint_url": endpoint, "region_name": REGION, **details},
        actor=ACTOR,
        response_format=response_format,
    )
    if secrets:
        storage.set_secrets(config, secrets, ACTOR)
    db.session.commit()
    return config


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def every_audit_detail() -> str:
    db.session.expire_all()
    return json.dumps([e.details for e in db.session.scalars(sa.select(AuditEvent))])


def export(request_id: str, key: str):
    written = storage_export.export_package(
        db.session.get(PrivacyRequest, request_id),
        storage.get_storage_config(key),
        ACTOR,
        before_write=db.session.commit,
    )
    db.session.commit()
    return written


def pieces_of(data: bytes, size: int = 1000):
    return (data[i : i + size] for i in range(0, len(data), size))


# --- the API: fidesops' shapes ------------------------------------------------------------------------


def test_patch_creates_destinations_and_answers_in_fidesops_shapes(app, admin, root):
    (root / "eu").mkdir()
    body = [
        {"name": "Local EU", "type": "local", "details": {"naming": "request_id", "directory": "eu"}},
        {
            "name": "Packages S3",
            "key": "packages_s3",
            "type": "s3",
            "format": "csv",
            "details": {"bucket": "my-packages", "naming": "request_id", "object_name": "requests"},
        },
    ]

    response = admin("PATCH", "/storage/config", body)

    assert response.status_code == 200
    assert response.json == {
        "succeeded": [
            {
                "name": "Local EU",
                "type": "local",
                "details": {"naming": "request_id", "directory": "eu"},
                "key": "local_eu",
                "format": "json",
            },
            {
                "name": "Packages S3",
                "type": "s3",
                "details": {
                    "naming": "request_id",
                    "bucket": "my-packages",
                    "auth_method": "secret_keys",
                    "max_retries": 0,
                    "object_name": "requests",
                },
                "key": "packages_s3",
                "format": "csv",
            },
        ],
        "failed": [],
    }
    assert admin("GET", "/storage/config/local_eu").json == response.json["succeeded"][0]
    assert [e.details["storage_key"] for e in events("storage.created")] == ["local_eu", "packages_s3"]


@pytest.mark.parametrize(
    ("storage_type", "message"),
    [
        (
            "gcs",
            "Storage type 'gcs' is not supported by this portal: choose 'local' (a directory on this server) "
            "or 's3'.",
        ),
        (
            "onetrust",
            "Storage type 'onetrust' is not supported by this portal: choose 'local' (a directory on "
            "this server) or 's3'.",
        ),
        ("ftp", "Unknown storage type 'ftp': choose 'local' (a directory on this server) or 's3'."),
    ],
)
def test_other_types_are_refused_in_failed_with_a_clear_message(app, admin, storage_type, message):
    item = {"name": "Elsewhere", "type": storage_type, "details": {"bucket": "b-b-b"}, "format": "json"}

    response = admin("PATCH", "/storage/config", [item, {"name": "Fine", "type": "local", "details": {}}])

    assert response.status_code == 200
    assert response.json["failed"] == [{"message": message, "data": {**item, "key": None}}]
    assert [c["key"] for c in response.json["succeeded"]] == ["fine"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StorageConfig)) == 1


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "s3", "details": {}}, "A bucket is required for an s3 destination."),
        (
            {"type": "s3", "details": {"bucket": "Bad_Bucket"}},
            "Invalid bucket name 'Bad_Bucket': 3 to 63 lower-case letters, digits, '.' and '-', starting and "
            "ending with a letter or digit.",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "naming": "email"}},
            "File naming of email not supported: use 'request_id' (files are named <request id>.json or "
            "<request id>.zip).",
        ),
        (
            {"type": "local", "details": {"bucket": "fine-bucket"}},
            "Unknown detail for a local destination: bucket. It takes: naming, directory.",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "auth_method": "password"}},
            "Unknown auth_method 'password': choose 'secret_keys' (the keys saved as secrets) or 'automatic' "
            "(the server's own AWS credentials: instance role or environment).",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "max_retries": -1}},
            "max_retries must be a whole number from 0 to 10.",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "endpoint_url": "https://ak:sk@s3.example"}},
            "The endpoint URL must not hold credentials: save the keys as the destination's secrets.",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "endpoint_url": "file:///etc"}},
            "The endpoint URL must be an http:// or https:// address.",
        ),
        (
            {"type": "s3", "details": {"bucket": "fine-bucket", "region_name": "EU West"}},
            "Invalid region 'EU West', e.g. eu-west-1.",
        ),
        (
            {"type": "local", "details": {}, "format": "xml"},
            "Unknown format 'xml': choose 'json' (the package JSON) or 'csv' (a ZIP of CSV files, with the "
            "JSON and the HTML report).",
        ),
        (
            {"type": "local", "details": {}, "key": ".."},
            "Invalid key '..': a key cannot be only dots; add a letter, digit, '_' or '-'.",
        ),
    ],
)
def test_invalid_destinations_fail_one_by_one_naming_the_problem(app, admin, item, message):
    response = admin("PATCH", "/storage/config", [{"name": "Destination", **item}])

    assert response.status_code == 200
    assert [f["message"] for f in response.json["failed"]] == [message]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StorageConfig)) == 0


def test_a_local_directory_must_exist_inside_the_root(app, admin, root, tmp_path):
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")

    missing = admin(
        "PATCH", "/storage/config", [{"name": "A", "type": "local", "details": {"directory": "nope"}}]
    )
    outside = admin(
        "PATCH", "/storage/config", [{"name": "B", "type": "local", "details": {"directory": "../outside"}}]
    )
    linked = admin(
        "PATCH", "/storage/config", [{"name": "C", "type": "local", "details": {"directory": "escape"}}]
    )

    assert missing.json["failed"][0]["message"] == (
        f"The directory {root / 'nope'} does not exist: create it first (owned by the portal's user, mode 700)."
    )
    for response, given in ((outside, "../outside"), (linked, "escape")):
        assert response.json["failed"][0]["message"] == (
            f"The directory {root / given} is outside {root}, the folder local destinations must be in (the "
            "operator sets it with PORTAL_STORAGE_LOCAL_ROOT)."
        )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StorageConfig)) == 0


def test_patch_updates_by_key_keeps_the_secrets_and_refuses_a_type_change(app, admin, s3_endpoint):
    config = make_s3(s3_endpoint, "first-bucket")
    key = config.key
    change = {"name": "Renamed", "key": key, "type": "s3", "details": {"bucket": "second-bucket"}}

    updated = admin("PATCH", "/storage/config", [change])
    retyped = admin("PATCH", "/storage/config", [{**change, "type": "local", "details": {}}])

    assert updated.json["succeeded"][0]["name"] == "Renamed"
    assert updated.json["succeeded"][0]["details"]["bucket"] == "second-bucket"
    assert retyped.json["failed"][0]["message"] == (
        f"Cannot change the type of '{key}' from s3 to local; create a new storage config instead."
    )
    db.session.expire_all()
    assert storage.get_storage_config(key).secrets == SECRETS
    assert events("storage.changed")[0].details["changed"] == ["name", "details"]


def test_duplicate_keys_and_names_fail_with_fidesops_messages(app, admin):
    make_local(name="Exports", key="exports")

    response = admin(
        "PATCH",
        "/storage/config",
        [
            {"name": "Exports", "key": "other", "type": "local", "details": {}},
            {"name": "Exports", "type": "local", "details": {}},
        ],
    )

    assert [f["message"] for f in response.json["failed"]] == [
        "Name Exports already exists in StorageConfig.",
        "Key exports already exists in StorageConfig. Keys will be snake-cased names if not provided. If you "
        "are seeing this error without providing a key, please provide a key or a different name.",
    ]
    response = admin(
        "PATCH",
        "/storage/config",
        [{"name": "New name", "key": "exports", "type": "s3", "details": {"bucket": "b-b-b"}}],
    )
    assert response.json["failed"][0]["message"].startswith("Cannot change the type of 'exports'")


def test_list_is_paginated_newest_first_and_get_delete_answer_404_for_unknown_keys(app, admin):
    for name in ("First", "Second", "Third"):
        make_local(name=name)

    page = admin("GET", "/storage/config?page=1&size=2").json
    rest = admin("GET", "/storage/config?page=2&size=2").json
    gone = admin("DELETE", "/storage/config/second")

    assert [c["key"] for c in page["items"]] == ["third", "second"]
    assert (page["total"], page["page"], page["size"]) == (3, 1, 2)
    assert [c["key"] for c in rest["items"]] == ["first"]
    assert gone.status_code == 204
    assert admin("GET", "/storage/config/second").json == {
        "detail": "No storage configuration with key second."
    }
    assert admin("DELETE", "/storage/config/second").status_code == 404
    assert events("storage.deleted")[0].details == {
        "storage_key": "second",
        "name": "Second",
        "type": "local",
    }


# --- secrets ----------------------------------------------------------------------------------------


def test_secrets_are_encrypted_at_rest_and_tested_by_writing_a_probe(app, admin, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket, secrets=None)

    response = admin("PUT", f"/storage/config/{config.key}/secret", SECRETS)

    assert response.status_code == 200
    assert response.json == {
        "msg": f"Secrets updated for StorageConfig with key: {config.key}.",
        "test_status": "succeeded",
        "failure_reason": None,
    }
    raw = db.session.execute(sa.text("SELECT secrets FROM storage_configs")).scalar_one()
    assert SECRET_ACCESS_KEY.encode() not in bytes(raw) and ACCESS_KEY_ID.encode() not in bytes(raw)
    assert json.loads(Keyring(TEST_KEY).decrypt(bytes(raw))) == SECRETS
    assert objects(s3_endpoint, bucket) == {}  # the probe was deleted
    assert events("storage.secrets_changed")[0].details == {
        "storage_key": config.key,
        "keys": ["aws_access_key_id", "aws_secret_access_key"],
    }


def test_secrets_put_without_verify_and_a_failing_test_say_so(app, admin, s3_endpoint):
    config = make_s3(s3_endpoint, "no-such-bucket-here", secrets=None)

    unverified = admin("PUT", f"/storage/config/{config.key}/secret?verify=false", SECRETS)
    failing = admin("PUT", f"/storage/config/{config.key}/secret", SECRETS)

    assert unverified.json["test_status"] is None
    assert failing.json["test_status"] == "failed"
    assert failing.json["failure_reason"] == "The bucket 'no-such-bucket-here' does not exist."


@pytest.mark.parametrize(
    ("details", "body", "status", "detail"),
    [
        (
            None,
            SECRETS,
            400,
            "Storage config 'local_exports' is of type local: it writes to a directory on this "
            "server and takes no secrets.",
        ),
        (
            {"auth_method": "automatic"},
            SECRETS,
            400,
            "Storage config 's3_automatic' uses auth_method 'automatic' (the server's own AWS credentials) and "
            "takes no secrets; set auth_method to 'secret_keys' first.",
        ),
        ({}, {"aws_access_key_id": ACCESS_KEY_ID}, 422, "aws_secret_access_key is required."),
        (
            {},
            {**SECRETS, "token": "x"},
            422,
            "Unknown secret: token. An s3 destination takes: aws_access_key_id, aws_secret_access_key.",
        ),
    ],
)
def test_secrets_are_refused_where_they_do_not_belong(app, admin, details, body, status, detail):
    if details is None:
        key = make_local().key
    else:
        key = storage.create_storage_config(
            name="S3 automatic", storage_type="s3", details={"bucket": "b-b-b", **details}, actor=ACTOR
        ).key
        db.session.commit()

    response = admin("PUT", f"/storage/config/{key}/secret", body)

    assert response.status_code == status
    found = response.json["detail"] if status == 400 else response.json["detail"][0]["msg"]
    assert found == detail
    assert storage.get_storage_config(key).secrets is None


def test_secrets_never_appear_in_an_answer_an_audit_event_or_the_log(app, admin, s3_endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="portal")
    caplog.set_level(logging.INFO)
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket, secrets=None)
    answers = [
        admin("PUT", f"/storage/config/{config.key}/secret", SECRETS),
        admin("GET", "/storage/config"),
        admin("GET", f"/storage/config/{config.key}"),
        admin(
            "PATCH",
            "/storage/config",
            [
                {
                    "name": "x",
                    "key": config.key,
                    "type": "s3",
                    "details": {"bucket": "no-such-bucket-here", "endpoint_url": s3_endpoint},
                }
            ],
        ),
        admin("PUT", f"/storage/config/{config.key}/secret", SECRETS),  # a failing test's reason
    ]

    seen = "".join(a.get_data(as_text=True) for a in answers) + every_audit_detail() + caplog.text
    assert answers[-1].json["test_status"] == "failed"
    assert SECRET_ACCESS_KEY not in seen and ACCESS_KEY_ID not in seen


# --- writing to a local directory ---------------------------------------------------------------------


def test_a_local_destination_gets_exactly_the_json_download_as_a_0600_file(
    app, client, login_as, completed, root
):
    (root / "eu").mkdir()
    config = make_local("eu")
    login_as("reviewer")
    download = client.get(f"/packages/{completed}/package.json").data

    written = export(completed, config.key)

    target = root / "eu" / f"{completed}.json"
    assert download == PACKAGE_JSON
    assert target.read_bytes() == download
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(root / "eu") == [target.name]  # no temporary file left
    assert (written.location, written.size) == (str(target), len(download))
    assert written.sha256 == hashlib.sha256(download).hexdigest()
    assert [e.details for e in events("package.exported")] == [{"storage_key": config.key, "format": "json"}]
    assert events("storage.package_written")[0].details == {
        "storage_key": config.key,
        "location": str(target),
        "size": len(download),
        "sha256": written.sha256,
    }


def test_the_csv_format_writes_the_zip_download(app, completed, root):
    config = make_local(response_format="csv")

    written = export(completed, config.key)

    with zipfile.ZipFile(root / f"{completed}.zip") as archive:
        assert archive.read("package.json") == PACKAGE_JSON
        assert sorted(archive.namelist()) == [
            "crm.csv",
            "package.json",
            "report.html",
            "shop_customer.csv",
            "shop_nothing.csv",
        ]
    assert written.location == str(root / f"{completed}.zip")


def test_a_write_replaces_the_file_atomically_and_a_failed_one_leaves_the_old_file_and_nothing_else(
    app, completed, root, monkeypatch
):
    config = make_local()
    export(completed, config.key)
    target = root / f"{completed}.json"
    seen_midway = []

    def failing(package, **kwargs):
        yield next(original(package, **kwargs))
        # Mid-write: the old file is whole, the new bytes are only in a hidden temporary file.
        seen_midway.append((target.read_bytes(), sorted(p.name for p in root.iterdir())))
        raise PackageChanged("replaced while read")

    original = storage_export.reports.iter_package_json
    monkeypatch.setattr(storage_export.reports, "iter_package_json", failing)
    store_package(completed, {"other": [{"value": "x" * 500}]})

    with pytest.raises(PackageChanged):
        export(completed, config.key)

    old, names = seen_midway[0]
    assert old == PACKAGE_JSON
    assert names[1] == target.name and names[0].startswith(f".{target.name}.") and names[0].endswith(".part")
    assert target.read_bytes() == PACKAGE_JSON
    assert sorted(p.name for p in root.iterdir()) == [target.name]


def test_a_local_write_that_fails_is_reported_without_leaving_a_file(app, completed, root, monkeypatch):
    config = make_local()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(destinations.os, "replace", full_disk)

    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)
    db.session.commit()

    message = f"Could not write the package to storage 'local_exports': Could not write {root / (completed + '.json')}: No space left on device."
    assert str(failure.value) == message
    assert list(root.iterdir()) == []
    assert events("storage.write_failed")[0].details == {"storage_key": "local_exports", "reason": message}


def test_a_directory_removed_after_it_was_configured_fails_before_anything_is_read(app, completed, root):
    (root / "gone").mkdir()
    config = make_local("gone")
    (root / "gone").rmdir()

    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)

    assert str(failure.value) == (
        f"Storage config 'local_exports' cannot be used: The directory {root / 'gone'} does not exist: create it "
        "first (owned by the portal's user, mode 700)."
    )
    assert events("package.exported") == []


@pytest.mark.parametrize("request_id", ["../escape", "..", "a/b", ""])
def test_a_file_is_never_named_after_anything_but_a_request_id(app, root, request_id):
    config = make_local()

    with pytest.raises(storage.ValidationFailed):
        storage_export.write_package(config, request_id, [b"{}"])

    assert list(root.iterdir()) == []


def test_the_local_test_writes_and_removes_a_probe(app, root):
    config = make_local()
    (root / "other").mkdir()

    result = storage_export.test_storage(config, ACTOR)

    assert result == storage_export.StorageTest(True, f"Wrote and removed a test file in {root}.")
    assert [p.name for p in root.iterdir()] == ["other"]
    assert events("storage.tested")[0].details == {"storage_key": config.key, "succeeded": True}


# --- writing to S3 (moto's server on localhost) ----------------------------------------------------------


def test_an_s3_destination_gets_exactly_the_json_download_in_one_put(app, completed, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket)

    written = export(completed, config.key)

    assert objects(s3_endpoint, bucket) == {f"{completed}.json": PACKAGE_JSON}
    assert written == destinations.Written(
        f"s3://{bucket}/{completed}.json", len(PACKAGE_JSON), hashlib.sha256(PACKAGE_JSON).hexdigest()
    )
    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key=f"{completed}.json")
    assert head["ContentType"] == "application/json"
    assert "-" not in head["ETag"]  # a single PUT


def test_a_package_larger_than_a_part_is_uploaded_in_parts(app, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket, format="csv")
    data = os.urandom(destinations.PART_BYTES * 2 + 12345)

    written = storage_export.write_package(config, "pri_large", pieces_of(data, 64 * 1024))

    assert objects(s3_endpoint, bucket) == {"pri_large.zip": data}
    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key="pri_large.zip")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert (written.size, written.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_an_upload_that_fails_midway_is_aborted_and_leaves_nothing(app, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket)
    sent = []

    def stream():
        for piece in pieces_of(os.urandom(destinations.PART_BYTES * 2), 1024 * 1024):
            sent.append(len(piece))
            yield piece
        raise PackageChanged("replaced while read")

    with pytest.raises(PackageChanged):
        storage_export.write_package(config, "pri_broken", stream())

    assert sum(sent) > destinations.PART_BYTES  # a part had been uploaded when it failed
    assert objects(s3_endpoint, bucket) == {}
    assert open_multipart_uploads(s3_endpoint, bucket) == []


def test_an_s3_write_that_fails_says_why_without_secrets_and_is_audited(app, completed, s3_endpoint):
    config = make_s3(s3_endpoint, "no-such-bucket-here")

    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)
    db.session.commit()

    message = f"Could not write the package to storage '{config.key}': The bucket 'no-such-bucket-here' does not exist."
    assert str(failure.value) == message
    assert events("storage.write_failed")[0].details == {"storage_key": config.key, "reason": message}
    assert events("package.exported")  # the package was read for the attempt, and that is recorded


def test_an_unreachable_s3_endpoint_is_a_clear_failure(app, completed):
    config = make_s3(f"http://127.0.0.1:{free_port()}", "some-bucket")

    result = storage_export.test_storage(config, ACTOR)
    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)

    where = f"s3://some-bucket at {config.details['endpoint_url']}"
    assert result == storage_export.StorageTest(False, f"Could not connect to S3 for {where}.")
    assert str(failure.value).endswith(f"Could not connect to S3 for {where}.")


def test_s3_without_saved_keys_fails_before_reading_the_package(app, completed, s3_endpoint):
    config = make_s3(s3_endpoint, new_bucket(s3_endpoint), secrets=None)

    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)

    assert str(failure.value) == (
        f"Storage config '{config.key}' has no secrets yet: save its aws_access_key_id and aws_secret_access_key "
        "first."
    )
    assert events("package.exported") == []


def test_automatic_auth_uses_the_server_s_own_credentials(app, completed, s3_endpoint, monkeypatch):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket, secrets=None, auth_method="automatic")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)

    export(completed, config.key)
    assert list(objects(s3_endpoint, bucket)) == [f"{completed}.json"]

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = storage_export.test_storage(config, ACTOR)
    assert result.message == (
        "No AWS credentials were found: save an access key id and secret access key, or give the server an AWS "
        "role or environment credentials (auth method 'automatic')."
    )


def test_the_s3_test_writes_and_deletes_a_probe(app, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    config = make_s3(s3_endpoint, bucket)

    result = storage_export.test_storage(config, ACTOR)

    assert result == storage_export.StorageTest(
        True, f"Wrote and deleted a test object in s3://{bucket} at {s3_endpoint}."
    )
    assert objects(s3_endpoint, bucket) == {}


# --- the command line ---------------------------------------------------------------------------------


def test_export_package_writes_and_prints_the_location(app, runner, completed, root):
    config = make_local()

    result = runner.invoke(args=["export-package", completed, "--storage", config.key])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{root / completed}.json\n"
    assert (
        f"Wrote {len(PACKAGE_JSON)} bytes (SHA-256 {hashlib.sha256(PACKAGE_JSON).hexdigest()})."
        in result.stderr
    )
    assert (root / f"{completed}.json").read_bytes() == PACKAGE_JSON
    exported, written = events("package.exported"), events("storage.package_written")
    assert [(e.actor_label, e.privacy_request_id) for e in exported + written] == [("cli", completed)] * 2


def test_export_package_failures_exit_1_with_the_reason(app, runner, completed, root, s3_endpoint):
    waiting = new_request(email="other@example.com", identity={})
    from sqlalchemy import update

    db.session.execute(update(PrivacyRequest).where(PrivacyRequest.id == waiting).values(status="pending"))
    db.session.commit()
    local = make_local()
    broken = make_s3(s3_endpoint, "no-such-bucket-here")

    unknown = runner.invoke(args=["export-package", completed, "--storage", "nope"])
    not_complete = runner.invoke(args=["export-package", waiting, "--storage", local.key])
    failed = runner.invoke(args=["export-package", completed, "--storage", broken.key])

    assert (unknown.exit_code, unknown.stderr) == (1, "Error: No storage configuration with key nope.\n")
    assert not_complete.exit_code == 1
    assert (
        not_complete.stderr
        == f"Error: No access package for privacy request '{waiting}' yet: it is not complete.\n"
    )
    assert failed.exit_code == 1
    assert failed.stderr == (
        f"Error: Could not write the package to storage '{broken.key}': The bucket 'no-such-bucket-here' does "
        "not exist.\n"
    )
    assert [e.privacy_request_id for e in events("storage.write_failed")] == [completed]
    assert list(root.iterdir()) == []


# --- key rotation ---------------------------------------------------------------------------------------


def test_key_rotation_re_encrypts_the_secrets_and_the_new_key_alone_reads_them(
    app, app_config, tmp_path, s3_endpoint
):
    from portal import create_app
    from portal.crypto import generate_key

    key = make_s3(s3_endpoint, "rotated-bucket").key  # read here: the other apps must not load it
    new_key = generate_key()
    rotated = create_app(
        {**app_config, "ENCRYPTION_KEY": f"{new_key},{TEST_KEY}"}, instance_path=str(tmp_path / "r")
    )
    with rotated.app_context():
        result = rotated.test_cli_runner().invoke(args=["rotate-encryption-key"])
        db.session.remove()
        db.engine.dispose()
    assert result.exit_code == 0, result.output

    raw = bytes(db.session.execute(sa.text("SELECT secrets FROM storage_configs")).scalar_one())
    assert Keyring.key_id_of(raw) == Keyring(new_key).first_key_id
    reader = create_app({**app_config, "ENCRYPTION_KEY": new_key}, instance_path=str(tmp_path / "n"))
    with reader.app_context():
        assert storage.get_storage_config(key).secrets == SECRETS
        db.session.remove()
        db.engine.dispose()


def test_the_secrets_are_committed_before_the_probe_talks_to_s3(app, admin, monkeypatch):
    config = make_s3("http://127.0.0.1:9", "slow-bucket", secrets=None)
    seen = []

    def probe(target):
        with db.engine.connect() as other:  # what every other process sees meanwhile
            seen.append(
                other.execute(sa.text("SELECT secrets IS NOT NULL FROM storage_configs")).scalar_one()
            )
        return "probed"

    monkeypatch.setattr(destinations, "probe_s3", probe)

    response = admin("PUT", f"/storage/config/{config.key}/secret", SECRETS)

    assert response.json["test_status"] == "succeeded"
    assert seen == [True]


def test_max_retries_reaches_the_s3_client():
    target = destinations.S3Target("some-bucket", endpoint_url="http://127.0.0.1:9", max_retries=3)

    retries = destinations._client(target).meta.config.retries

    assert retries == {"total_max_attempts": 4, "mode": "standard"}


def test_secrets_that_cannot_be_decrypted_stop_the_write_with_a_message(app, completed, s3_endpoint):
    config = make_s3(s3_endpoint, "some-bucket")
    db.session.execute(
        sa.text("UPDATE storage_configs SET secrets = :junk"), {"junk": b"\x01" + b"\x00" * 40}
    )
    db.session.commit()

    with pytest.raises(storage_export.StorageWriteFailed) as failure:
        export(completed, config.key)

    assert str(failure.value) == (
        f"The secrets of storage config '{config.key}' cannot be decrypted with the configured encryption keys; "
        "save them again."
    )
