"""The admin pages of storage destinations: list, create, edit, keys, test, delete — through the same
service as the API, so the rules and messages are the same."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import StorageConfig
from portal.models.audit import Actor
from portal.services import storage
from tests.storage_helpers import ACCESS_KEY_ID, AWS_CREDENTIAL_VARIABLES, ISOLATED_AWS_ENV, SECRET_ACCESS_KEY

ACTOR = Actor.system("test")


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
    return {**app_config, "STORAGE_LOCAL_ROOT": str(root)}


@pytest.fixture
def admin(client, login_as):
    login_as("admin")
    return client


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def stored() -> list[StorageConfig]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(StorageConfig).order_by(StorageConfig.id)))


def s3_config(**details) -> StorageConfig:
    config = storage.create_storage_config(
        name="Archive", storage_type="s3", details={"bucket": "archive-bucket", **details}, actor=ACTOR
    )
    db.session.commit()
    return config


def test_admins_find_storage_in_the_navigation_and_an_empty_list_says_what_it_is_for(admin, root):
    page = text(admin.get("/admin/storage"))

    assert (
        '<a class="dropdown-item active" aria-current="page" href="/admin/storage">Storage destinations</a>'
        in page
    )
    assert "No storage destinations yet" in page and str(root) in page
    assert "outside the portal's retention" in page


def test_staff_see_no_storage_entry(client, login_as):
    login_as("staff")
    assert 'href="/admin/storage"' not in text(client.get("/"))
    assert client.get("/admin/storage").status_code == 403


def test_an_admin_creates_a_local_destination_and_tests_it(admin, root):
    (root / "legal").mkdir()

    created = admin.post(
        "/admin/storage/new?type=local", data={"name": "Legal archive", "directory": "legal", "format": "csv"}
    )

    assert created.status_code == 302 and created.headers["Location"] == "/admin/storage/legal_archive"
    [config] = stored()
    assert (config.type, config.format, config.details) == (
        "local",
        "csv",
        {"naming": "request_id", "directory": "legal"},
    )
    page = text(admin.get("/admin/storage/legal_archive"))
    assert "Created the storage destination “Legal archive” (key legal_archive). Test it." in page
    assert f'Writes to <code class="text-break">{root / "legal"}</code>' in page
    assert "keys-heading" not in page  # a local destination takes none

    tested = admin.post("/admin/storage/legal_archive/test", follow_redirects=True)
    assert f"Test succeeded. Wrote and removed a test file in {root / 'legal'}." in text(tested)
    assert list((root / "legal").iterdir()) == []


def test_the_form_shows_the_service_s_message_next_to_the_field(admin, root):
    missing = admin.post(
        "/admin/storage/new?type=local", data={"name": "Nowhere", "directory": "nope", "format": "json"}
    )
    bucket = admin.post(
        "/admin/storage/new?type=s3",
        data={
            "name": "S3",
            "bucket": "Bad_Bucket",
            "format": "json",
            "auth_method": "secret_keys",
            "max_retries": "0",
        },
    )

    assert missing.status_code == 200
    assert (
        f'id="directory-error" class="invalid-feedback d-block" role="alert">The directory {root / "nope"} does not exist'
        in text(missing)
    )
    assert (
        'id="bucket-error" class="invalid-feedback d-block" role="alert">Invalid bucket name \'Bad_Bucket\''
        in text(bucket)
    )
    assert stored() == []


def test_an_unknown_type_is_not_found(admin):
    response = admin.get("/admin/storage/new?type=gcs")
    assert response.status_code == 404
    assert "Unknown storage type: choose local or s3." in text(response)


def test_keys_are_saved_encrypted_and_never_shown_again(admin):
    s3_config()

    saved = admin.post(
        "/admin/storage/archive/secrets",
        data={"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY},
        follow_redirects=True,
    )

    page = text(saved)
    assert "Saved the access keys (encrypted). Use “Test” to check them." in page
    assert "Access keys are saved (encrypted)." in page
    assert ACCESS_KEY_ID not in page and SECRET_ACCESS_KEY not in page
    assert stored()[0].secrets == {
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
    }


def test_keys_need_both_values(admin):
    s3_config()

    response = admin.post("/admin/storage/archive/secrets", data={"aws_access_key_id": ACCESS_KEY_ID})

    assert response.status_code == 400
    assert "Enter the secret access key." in text(response)
    assert stored()[0].secrets is None


def test_editing_keeps_the_key_the_type_and_what_only_the_api_sets(admin):
    s3_config(object_name="requests")

    response = admin.post(
        "/admin/storage/archive",
        data={
            "name": "Archive (EU)",
            "bucket": "archive-eu",
            "region_name": "eu-west-1",
            "format": "json",
            "auth_method": "automatic",
            "max_retries": "2",
        },
    )

    assert response.status_code == 302
    [config] = stored()
    assert (config.key, config.type, config.name) == ("archive", "s3", "Archive (EU)")
    assert config.details == {
        "naming": "request_id",
        "bucket": "archive-eu",
        "auth_method": "automatic",
        "max_retries": 2,
        "region_name": "eu-west-1",
        "object_name": "requests",
    }
    assert "keys-heading" not in text(admin.get("/admin/storage/archive"))  # automatic: none to enter


def test_a_destination_a_policys_rule_writes_to_is_kept_with_the_reason(admin):
    from portal.services import policies

    s3_config()
    policy = policies.upsert_policy(
        name="Shop access", key="shop_access", drp_action=None, execution_timeframe=30, actor=ACTOR
    )
    policies.upsert_rule(
        policy,
        name="Access",
        key="access",
        action_type="access",
        storage_destination_key="archive",
        masking_strategy=None,
        actor=ACTOR,
    )
    db.session.commit()

    response = admin.post("/admin/storage/archive/delete", follow_redirects=True)

    message = (
        "The storage destination “Archive” cannot be deleted: the rule access (policy shop_access) writes"
    )
    assert message in text(response)
    assert [config.key for config in stored()] == ["archive"]


def test_deleting_a_destination(admin):
    s3_config()

    response = admin.post("/admin/storage/archive/delete", follow_redirects=True)

    assert (
        "Deleted the storage destination “Archive” (key archive). Files it holds stay where they are."
        in text(response)
    )
    assert stored() == []
    assert admin.get("/admin/storage/archive").status_code == 404
