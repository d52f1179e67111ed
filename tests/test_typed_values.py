"""Typed values: numbers, yes/no, dates and text reach the package as JSON types, in every export."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from sqlalchemy import update

from portal.execution import dispatch
from portal.extensions import db
from portal.models import ManualInput, PrivacyRequest
from portal.models.audit import Actor
from portal.services import ValidationFailed, manual_inputs, privacy_requests, tokens
from tests.workflow_helpers import STAFF, add_webhook, field, new_request

FIELDS = [
    field("Age", type="number"),
    field("Balance", type="number"),
    field("Newsletter", type="boolean"),
    field("Born", type="date"),
    field("Notes", type="textarea"),
    field("Email", type="email"),
]
TYPED = {
    "age": 42,
    "balance": 3.5,
    "newsletter": True,
    "born": "1980-02-29",
    "notes": "line one\nline two",
    "email": "jane@example.com",
}


def _complete(request_id: str) -> dict:
    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()
    pr = db.session.get(PrivacyRequest, request_id)
    assert pr.status == "complete"
    return pr.package.data


def test_strings_are_stored_and_packaged_as_their_types(app):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    stored = manual_inputs.save_manual_input(
        request_id,
        "crm",
        {
            "age": " 42 ",
            "balance": "3.5",
            "newsletter": "yes",
            "born": "1980-02-29",
            "notes": "line one\r\nline two",
            "email": "jane@example.com",
        },
        STAFF,
    )
    db.session.commit()
    assert stored == TYPED
    assert db.session.query(ManualInput).one().values == TYPED
    assert _complete(request_id) == {"crm": [TYPED]}


def test_json_values_are_accepted_for_numbers_and_booleans(app):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    stored = manual_inputs.save_manual_input(
        request_id, "crm", {"age": 42, "balance": 3.5, "newsletter": False}, STAFF
    )
    assert stored["age"] == 42 and stored["balance"] == 3.5 and stored["newsletter"] is False


@pytest.mark.parametrize(
    ("label", "value", "message"),
    [
        ("age", "forty", "age: must be a number"),
        ("age", True, "age: must be a string or null"),
        ("newsletter", 1, "newsletter: must be a string or null"),
        ("newsletter", "perhaps", "newsletter: must be true or false"),
        ("born", "29/02/1980", "born: must be a date as YYYY-MM-DD"),
        ("born", "1981-02-29", "born: must be a date as YYYY-MM-DD"),
    ],
)
def test_a_value_that_does_not_convert_is_refused_naming_the_field(app, label, value, message):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    with pytest.raises(ValidationFailed, match=message):
        manual_inputs.save_manual_input(request_id, "crm", {label: value}, STAFF)


def test_the_api_converts_strings_and_names_the_field_it_refuses(app, client, make_user):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    user = make_user(role="admin")
    _, secret = tokens.create_token(user, "test", Actor.system("test"))
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"/api/v1/privacy-request/{request_id}/access_manual_webhook/crm"
    refused = client.patch(url, json={"age": "12 years"}, headers=headers)
    assert refused.status_code == 422
    assert "age" in json.dumps(refused.json) and "must be a number" in json.dumps(refused.json)
    saved = client.patch(url, json={"age": "12", "newsletter": "false"}, headers=headers)
    assert saved.status_code == 200, saved.json
    shown = client.get(url, headers=headers).json["fields"]
    assert shown["age"] == 12 and shown["newsletter"] is False


def test_entries_stored_as_strings_before_are_typed_in_the_package(app):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", {"age": "1"}, STAFF)
    db.session.commit()
    legacy = {
        "age": "42",
        "balance": "3.5",
        "newsletter": "true",
        "born": "1980-02-29",
        "notes": "line one\r\nline two",
        "email": "jane@example.com",
    }
    db.session.execute(update(ManualInput).values(values=legacy))
    db.session.commit()
    assert _complete(request_id) == {"crm": [TYPED]}


def test_every_export_writes_the_types(app, client, login_as):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", dict(TYPED), STAFF)
    _complete(request_id)
    login_as("reviewer")
    as_json = client.get(f"/packages/{request_id}/package.json")
    assert json.loads(as_json.data) == {"crm": [TYPED]}
    assert b'"age": 42' in as_json.data and b'"newsletter": true' in as_json.data
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/packages/{request_id}/package.zip").data))
    assert json.loads(archive.read("package.json")) == {"crm": [TYPED]}
    rows = list(csv.reader(io.StringIO(archive.read("crm.csv").decode("utf-8-sig"))))
    assert rows[1] == ["42", "3.5", "true", "1980-02-29", "line one\nline two", "jane@example.com"]
    report = archive.read("report.html").decode()
    assert "<td>42</td>" in report and "line one\nline two" in report
    page = client.get(f"/packages/{request_id}").get_data(as_text=True)
    assert ">42<" in page and "1980-02-29" in page


def test_the_form_shows_typed_values_again(app, client, login_as):
    add_webhook("crm", FIELDS, name="CRM")
    request_id = new_request()
    manual_inputs.save_manual_input(request_id, "crm", dict(TYPED), STAFF)
    db.session.commit()
    login_as("staff")
    page = client.get(f"/requests/{request_id}/manual/crm").get_data(as_text=True)
    assert 'value="42"' in page and 'value="3.5"' in page
    assert '<option selected value="true">' in page


def test_names_replace_keys_for_manual_and_collected_data(app):
    from portal.models import ConnectionConfig, DatasetConfig

    add_webhook("crm_muller", [field("Newsletter opt-in", "newsletter_opt_in")], name="CRM Müller & Söhne")
    shop = ConnectionConfig(key="shop_db", name="Shop database", connection_type="sqlite")
    db.session.add(shop)
    db.session.flush()
    db.session.add(DatasetConfig(connection_config_id=shop.id, fides_key="shop", dataset={}))
    db.session.commit()

    names = privacy_requests.package_names(["crm_muller", "shop:orders", "gone", "gone_db:rows"])

    assert names.title("crm_muller") == "CRM Müller & Söhne"
    assert names.headers("crm_muller", ["newsletter_opt_in", "other"]) == ["Newsletter opt-in", "other"]
    assert names.title("shop:orders") == "Shop database: orders"
    assert names.title("gone") == "gone" and names.title("gone_db:rows") == "gone_db:rows"
