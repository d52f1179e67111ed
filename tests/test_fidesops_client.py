"""A client written the way fidesops' docs teach, run against a live portal over HTTP with ``requests``:
client credentials, a narrower client, storage, policy, rule and target, a manual-webhook connection and
its fields, a privacy request under that policy, upload, view, resume, status, package. Paths are written
as fidesops' docs write them, trailing slashes included; nothing but the host differs from a fidesops run.

The server is the e2e one (werkzeug in a thread, on a copy of one migrated SQLite file): the point is the
wire (form-encoded token request, redirects, status codes, JSON), which the Flask test client skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import LiveServer, migrate_template

ADMIN = "root@example.com"
SCRIPT_SCOPES = [
    "storage:create_or_update",
    "storage:read",
    "policy:create_or_update",
    "policy:read",
    "rule:create_or_update",
    "rule:read",
    "connection:create_or_update",
    "connection:read",
    "webhook:create_or_update",
    "webhook:read",
    "privacy-request:create",
    "privacy-request:read",
    "privacy-request:upload_data",
    "privacy-request:view_data",
    "privacy-request:resume",
    "privacy-request:download_package",
]


@pytest.fixture(scope="module")
def template_database(tmp_path_factory) -> Path:
    return migrate_template(tmp_path_factory.mktemp("fidesops-client-template"))


@pytest.fixture
def exports(tmp_path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def server(template_database, tmp_path, exports):
    database = tmp_path / "portal.sqlite3"
    shutil.copyfile(template_database, database)
    live = LiveServer(database, tmp_path / "instance", {"STORAGE_LOCAL_ROOT": str(exports)})
    live.start()
    live.create_user("admin", ADMIN)
    yield live
    live.stop()
    live.assert_no_server_errors()


def root_client(server: LiveServer) -> dict:
    """What a deployment hands its first script: ``flask create-client EMAIL`` (fidesops' root client)."""
    result = server.app.test_cli_runner().invoke(args=["create-client", ADMIN])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class FidesopsScript:
    """The calls of fidesops' guides, with ``requests``, never following a redirect (a PATCH body would be
    lost on one; fidesops answers both path forms itself)."""

    def __init__(self, base: str) -> None:
        self.api = base + "/api/v1"
        self.session = requests.Session()

    def token(self, client_id: str, client_secret: str) -> None:
        answer = self.session.post(
            f"{self.api}/oauth/token",
            data={"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"].lower() == "bearer"
        self.session.headers["Authorization"] = f"Bearer {body['access_token']}"

    def call(self, method: str, path: str, body=None, expect: int = 200, **kwargs):
        answer = self.session.request(
            method, self.api + path, json=body, allow_redirects=False, timeout=30, **kwargs
        )
        assert answer.status_code == expect, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    def bulk(self, method: str, path: str, items: list) -> list:
        body = self.call(method, path, items)
        assert body["failed"] == [], body["failed"]
        return body["succeeded"]


def test_fidesops_documented_sequence_runs_unchanged(server, exports):
    script = FidesopsScript(server.url)
    root = root_client(server)
    script.token(root["client_id"], root["client_secret"])

    # A client with only the scopes this script needs, as fidesops' guide creates one.
    client = script.call("POST", "/oauth/client/", SCRIPT_SCOPES)
    assert set(client) == {"client_id", "client_secret"}
    assert sorted(script.call("GET", f"/oauth/client/{client['client_id']}/scope")) == sorted(SCRIPT_SCOPES)
    script.token(client["client_id"], client["client_secret"])

    (destination,) = script.bulk(
        "PATCH",
        "/storage/config/",
        [
            {
                "name": "Local exports",
                "key": "local_exports",
                "type": "local",
                "format": "json",
                "details": {"naming": "request_id"},
            }
        ],
    )
    assert destination["key"] == "local_exports"

    (policy,) = script.bulk(
        "PATCH",
        "/policy/",
        [{"name": "Manual access policy", "key": "manual_access", "execution_timeframe": 21}],
    )
    assert policy == {
        "name": "Manual access policy",
        "key": "manual_access",
        "drp_action": None,
        "execution_timeframe": 21,
        "rules": [],
    }
    (rule,) = script.bulk(
        "PATCH",
        "/policy/manual_access/rule/",
        [
            {
                "name": "Access rule",
                "key": "access_rule",
                "action_type": "access",
                "storage_destination_key": "local_exports",
            }
        ],
    )
    assert rule["storage_destination"]["key"] == "local_exports"
    (target,) = script.bulk(
        "PATCH",
        "/policy/manual_access/rule/access_rule/target/",
        [{"name": "Everything about the user", "key": "user_data", "data_category": "user"}],
    )
    assert target == {"name": "Everything about the user", "key": "user_data", "data_category": "user"}
    erasure = script.call(
        "PATCH",
        "/policy/manual_access/rule/",
        [
            {
                "name": "Erase",
                "action_type": "erasure",
                "masking_strategy": {"strategy": "null_rewrite", "configuration": {}},
            }
        ],
    )
    assert erasure["succeeded"] == [] and "erasure is out of scope" in erasure["failed"][0]["message"]

    (connection,) = script.bulk(
        "PATCH",
        "/connection/",
        [
            {
                "name": "Manual Webhook ConnectionConfig",
                "key": "manual_webhook_key",
                "connection_type": "manual_webhook",
                "access": "read",
            }
        ],
    )
    assert connection["key"] == "manual_webhook_key"
    fields = [
        {"pii_field": "First Name", "dsr_package_label": "first_name"},
        {"pii_field": "Last Name", "dsr_package_label": "last_name"},
    ]
    webhook = script.call("PATCH", "/connection/manual_webhook_key/access_manual_webhook", {"fields": fields})
    assert [f["dsr_package_label"] for f in webhook["fields"]] == ["first_name", "last_name"]

    (created,) = script.bulk(
        "POST",
        "/privacy-request/",
        [{"identity": {"email": "customer-1@example.com"}, "policy_key": "manual_access"}],
    )
    request_id = created["id"]
    listed = script.call("GET", "/privacy-request/", params={"request_id": request_id})
    (item,) = listed["items"]
    assert item["status"] == "requires_input" and item["days_left"] == 21
    assert item["resume_endpoint"] == f"/privacy-request/{request_id}/resume_from_requires_input"
    assert [r["key"] for r in item["policy"]["rules"]] == ["access_rule"]

    upload_path = f"/privacy-request/{request_id}/access_manual_webhook/manual_webhook_key"
    script.call("PATCH", upload_path, {"first_name": "Jane", "last_name": "Customer"})
    viewed = script.call("GET", upload_path)
    assert viewed == {"checked": True, "fields": {"first_name": "Jane", "last_name": "Customer"}}

    resumed = script.call("POST", item["resume_endpoint"])
    assert resumed["status"] in ("in_processing", "complete")
    (status,) = script.call("GET", "/privacy-request/", params={"request_id": request_id})["items"]
    assert status["status"] == "complete"

    package = script.call("GET", f"/privacy-request/{request_id}/package")
    assert package == {"manual_webhook_key": [{"first_name": "Jane", "last_name": "Customer"}]}

    # Beyond fidesops: the package waits for a reviewer (the portal's own step); once approved, it is
    # written to the policy's access rule's destination, as fidesops writes it on completion.
    script.token(root["client_id"], root["client_secret"])
    script.call("POST", f"/privacy-request/{request_id}/package/approve/")
    written = json.loads((exports / f"{request_id}.json").read_text())
    assert written["manual_webhook_key"] == [{"first_name": "Jane", "last_name": "Customer"}]


def test_fidesops_error_answers_over_the_wire(server):
    script = FidesopsScript(server.url)
    bad = script.session.post(
        f"{script.api}/oauth/token/", data={"client_id": "nope", "client_secret": "nope"}, timeout=10
    )
    assert bad.status_code == 401 and bad.json()["detail"] == "Authentication Failure"
    root = root_client(server)
    script.token(root["client_id"], root["client_secret"])
    missing = script.call("GET", "/policy/nope/", expect=404)
    assert missing == {"detail": "No Policy found for key nope."}
    failed = script.call("PATCH", "/policy/", [{"name": "Needs storage"}])
    assert failed["failed"] == []
    refused = script.call(
        "PATCH",
        "/policy/needs_storage/rule/",
        [{"name": "Rule", "action_type": "access", "storage_destination_key": "none"}],
    )
    assert refused["failed"][0]["message"] == "A StorageConfig with key none does not exist"
    assert refused["failed"][0]["data"]["storage_destination_key"] == "none"
