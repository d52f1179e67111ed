"""A save lands exactly where it was typed: fields have stable ids, forms carry their version (S9).

Every test here failed before fields had ids: the form posted ``field_0..N`` by position, and a field edit
committed while a form was open moved the typed values under other labels.
"""

from __future__ import annotations

import html
import re
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, ManualInput, ManualWebhookVersion
from portal.models.audit import Actor
from portal.services import tokens
from portal.services import webhooks as webhook_service
from tests.factories import make_user
from tests.hardening_helpers import sign_in
from tests.workflow_helpers import new_request

CHANGED = "The fields of CRM changed while you were typing: check the values below and save again."
ACTOR = Actor.system("test")


def _form(page: str) -> dict[str, str]:
    """label text → input name, and the form's version, read from the manual-input page's HTML."""
    names = {
        label: name
        for name, label in re.findall(r'<label class="form-label" for="(field_\w+)">([^<]+?)\s*(?:<|$)', page)
    }
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    names["version"] = version.group(1) if version else ""
    return names


def text_of(response) -> str:
    """The page as a person reads it: tags dropped, entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def _value_of(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    found = re.search(r'value="([^"]*)"', tag.group(0)) if tag else None
    return found.group(1) if found else None


@pytest.fixture
def world(app):
    admin = make_user(role="admin")
    staff = make_user(role="staff")
    token = tokens.create_token(admin, "fields", ACTOR)[1]
    headers = {"Authorization": f"Bearer {token}"}
    admin_client = app.test_client()
    assert (
        admin_client.patch(
            "/api/v1/connection",
            json=[{"name": "CRM", "key": "crm", "connection_type": "manual_webhook", "access": "read"}],
            headers=headers,
        ).status_code
        == 200
    )
    fields = {"fields": [{"pii_field": "First Name"}, {"pii_field": "Last Name"}]}
    assert (
        admin_client.patch(
            "/api/v1/connection/crm/access_manual_webhook", json=fields, headers=headers
        ).status_code
        == 200
    )
    staff_client = app.test_client()
    sign_in(staff_client, staff)
    return {"admin": admin_client, "headers": headers, "staff": staff_client, "request_id": new_request()}


def _patch_fields(world, fields: list[dict]):
    response = world["admin"].patch(
        "/api/v1/connection/crm/access_manual_webhook", json={"fields": fields}, headers=world["headers"]
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _entries() -> list[ManualInput]:
    db.session.expire_all()
    return list(db.session.scalars(select(ManualInput)))


def test_a_field_added_at_the_top_while_the_form_is_open_refuses_the_save_and_keeps_what_was_typed(world):
    url = f"/requests/{world['request_id']}/manual/crm"
    staff = world["staff"]
    names = _form(staff.get(url).get_data(as_text=True))  # staff open the form at version 1

    # Meanwhile an admin adds a field at the top (the review's reproduction).
    _patch_fields(
        world, [{"pii_field": "Passport number"}, {"pii_field": "First Name"}, {"pii_field": "Last Name"}]
    )
    events = db.session.scalar(select(func.count(AuditEvent.id)))

    response = staff.post(
        url,
        data={
            "version": names["version"],
            names["First Name"]: "Jane",
            names["Last Name"]: "Doe",
            "save": "Save",
        },
    )
    assert response.status_code == 409
    assert f"Nothing was saved. {CHANGED}" in text_of(response)
    assert _entries() == []
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events
    page = response.get_data(as_text=True)
    shown = _form(page)
    assert shown["version"] == "2"  # the form shown again is the current one
    assert _value_of(page, shown["First Name"]) == "Jane" and _value_of(page, shown["Last Name"]) == "Doe"
    assert not _value_of(page, shown["Passport number"])

    # Saving the form as shown again stores each value under its own label.
    data = {
        "version": shown["version"],
        shown["First Name"]: "Jane",
        shown["Last Name"]: "Doe",
        "save": "Save",
    }
    assert staff.post(url, data=data).status_code == 302
    (entry,) = _entries()
    assert entry.values == {"passport_number": None, "first_name": "Jane", "last_name": "Doe"}
    assert entry.version == 2


def test_a_reorder_or_rename_keeps_each_fields_input_and_a_removed_fields_value_is_listed(world):
    url = f"/requests/{world['request_id']}/manual/crm"
    staff = world["staff"]
    names = _form(staff.get(url).get_data(as_text=True))
    _patch_fields(
        world,
        [
            {"pii_field": "Surname", "dsr_package_label": "last_name"},
            {"pii_field": "Given name", "dsr_package_label": "first_name"},
        ],
    )
    after_rename = _form(staff.get(url).get_data(as_text=True))
    assert after_rename["Surname"] == names["Last Name"] and after_rename["Given name"] == names["First Name"]

    _patch_fields(world, [{"pii_field": "Given name", "dsr_package_label": "first_name"}])  # Surname removed
    response = staff.post(
        url, data={"version": names["version"], names["First Name"]: "Jane", names["Last Name"]: "<b>Doe</b>"}
    )
    assert response.status_code == 409
    text = text_of(response)
    assert "These fields were removed; what you typed in them is not part of the form any more:" in text
    assert "Last Name: <b>Doe</b>" in text  # under the name it had on the form that was typed in; escaped
    assert _value_of(response.get_data(as_text=True), names["First Name"]) == "Jane"
    assert _entries() == []


@pytest.mark.parametrize("version", [None, "", "abc", "0"])
def test_a_form_without_a_current_version_is_refused(world, version):
    url = f"/requests/{world['request_id']}/manual/crm"
    names = _form(world["staff"].get(url).get_data(as_text=True))
    data = {names["First Name"]: "Jane", "save": "Save"}
    if version is not None:
        data["version"] = version
    response = world["staff"].post(url, data=data)
    assert response.status_code == 409 and CHANGED in text_of(response)
    assert _entries() == []


def test_nothing_found_against_an_older_version_is_refused_too(world):
    url = f"/requests/{world['request_id']}/manual/crm"
    names = _form(world["staff"].get(url).get_data(as_text=True))
    _patch_fields(world, [{"pii_field": "First Name"}, {"pii_field": "Email"}])
    response = world["staff"].post(url, data={"version": names["version"], "nothing_found": "x"})
    assert response.status_code == 409 and CHANGED in text_of(response)
    assert _entries() == []


def test_the_api_upload_after_a_label_rename_refuses_the_old_label(world):
    _patch_fields(
        world, [{"pii_field": "First Name", "dsr_package_label": "given_name"}, {"pii_field": "Last Name"}]
    )
    response = world["admin"].patch(
        f"/api/v1/privacy-request/{world['request_id']}/access_manual_webhook/crm",
        json={"first_name": "Jane"},
        headers=world["headers"],
    )
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["msg"] == "unknown label 'first_name'"
    assert _entries() == []


def test_api_patches_without_ids_keep_each_fields_id_by_label_then_pii_field(app, world):
    before = _patch_fields(world, [{"pii_field": "First Name"}, {"pii_field": "Last Name"}])["fields"]
    ids = {f["pii_field"]: f["id"] for f in before}
    # a rename of the pii_field (same label), a rename of the label (same pii_field), a reorder and a new field
    after = _patch_fields(
        world,
        [
            {"pii_field": "Email"},
            {"pii_field": "Family name", "dsr_package_label": "last_name"},
            {"pii_field": "First Name", "dsr_package_label": "given_name"},
        ],
    )["fields"]
    assert after[1]["id"] == ids["Last Name"] and after[2]["id"] == ids["First Name"]
    assert after[0]["id"] not in ids.values() and webhook_service.FIELD_ID_PATTERN.match(after[0]["id"])
    # Sending the ids back (as the editor does) keeps them whatever is renamed.
    again = _patch_fields(world, [{**after[2], "pii_field": "Forename", "dsr_package_label": "forename"}])[
        "fields"
    ]
    assert again == [{**after[2], "pii_field": "Forename", "dsr_package_label": "forename"}]


def test_every_version_of_the_list_is_kept(app, world):
    _patch_fields(world, [{"pii_field": "Email"}])
    kept = db.session.execute(
        select(ManualWebhookVersion.version, ManualWebhookVersion.fields).order_by(
            ManualWebhookVersion.version
        )
    ).all()
    assert [version for version, _ in kept] == [1, 2]
    assert [f["pii_field"] for f in kept[0].fields] == ["First Name", "Last Name"]
    assert [f["pii_field"] for f in kept[1].fields] == ["Email"]


def test_a_webhook_defined_again_does_not_make_an_old_entry_current(app, world):
    url = f"/requests/{world['request_id']}/manual/crm"
    names = _form(world["staff"].get(url).get_data(as_text=True))
    assert (
        world["staff"].post(url, data={"version": names["version"], names["First Name"]: "Jane"}).status_code
        == 302
    )
    assert (
        world["admin"]
        .delete("/api/v1/connection/crm/access_manual_webhook", headers=world["headers"])
        .status_code
        == 204
    )
    created = world["admin"].post(
        "/api/v1/connection/crm/access_manual_webhook",
        json={"fields": [{"pii_field": "Order number"}]},
        headers=world["headers"],
    )
    assert created.status_code == 201
    view = (
        world["admin"]
        .get(
            f"/api/v1/privacy-request/{world['request_id']}/access_manual_webhook/crm",
            headers=world["headers"],
        )
        .get_json()
    )
    assert view == {"checked": False, "fields": {"order_number": None}}


def test_the_field_editor_refuses_to_overwrite_a_list_saved_meanwhile(client, login_as, world):
    login_as("admin")
    page = client.get("/admin/connections/crm/fields").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    row_ids = re.findall(r'name="fields-(\d+)-id" type="hidden" value="(\w+)"', page)
    assert version == "1" and len(row_ids) == 2
    _patch_fields(world, [{"pii_field": "First Name"}, {"pii_field": "Last Name"}, {"pii_field": "Email"}])

    mine = {
        "version": version,
        "fields-0-id": row_ids[0][1],
        "fields-0-pii_field": "Given name",
        "fields-0-dsr_package_label": "first_name",
        "save": "y",
    }
    response = client.post("/admin/connections/crm/fields", data=mine)
    assert response.status_code == 409
    assert (
        "Someone else saved the fields of CRM while you were editing them (they are now version 2)."
        in text_of(response)
    )
    assert [f["pii_field"] for f in webhook_service.fields_at(_webhook_id(), 2)] == [
        "First Name",
        "Last Name",
        "Email",
    ]
    assert 'name="version" type="hidden" value="2"' in response.get_data(as_text=True)

    # Saving the shown list again replaces theirs on purpose, keeping the field's id through the rename.
    assert client.post("/admin/connections/crm/fields", data={**mine, "version": "2"}).status_code == 302
    fields = webhook_service.fields_at(_webhook_id(), 3)
    assert [(f["id"], f["pii_field"]) for f in fields] == [(row_ids[0][1], "Given name")]


def _webhook_id() -> int:
    return db.session.scalar(select(ManualWebhookVersion.webhook_id).limit(1))


def test_reorders_beside_concurrent_saves_never_store_a_value_under_another_label(app, world):
    """Two clients at once: an admin reorders and renames the fields while staff save forms. Every stored
    entry has each value under the label it was typed for; a save that raced an edit is refused."""
    url = f"/requests/{world['request_id']}/manual/crm"
    layouts = [
        [{"pii_field": "First Name"}, {"pii_field": "Last Name"}],
        [{"pii_field": "Last Name"}, {"pii_field": "First Name"}],
        [{"pii_field": "Surname", "dsr_package_label": "last_name"}, {"pii_field": "First Name"}],
    ]
    done = threading.Event()
    problems: list[str] = []
    outcomes = {"saved": 0, "refused": 0}

    def admin_edits():
        client = app.test_client()
        with app.app_context():
            turn = 0
            while not done.is_set():
                turn += 1
                time.sleep(0.005)  # edits beside the saves, not a wall of them
                response = client.patch(
                    "/api/v1/connection/crm/access_manual_webhook",
                    json={"fields": layouts[turn % len(layouts)]},
                    headers=world["headers"],
                )
                if response.status_code != 200:
                    problems.append(f"edit answered {response.status_code}")

    def staff_saves():
        staff = world["staff"]
        with app.app_context():
            for turn in range(40):
                page = staff.get(url).get_data(as_text=True)
                names = _form(page)
                last = names.get("Last Name") or names["Surname"]
                data = {
                    "version": names["version"],
                    names["First Name"]: f"first-{turn}",
                    last: f"last-{turn}",
                }
                response = staff.post(url, data=data)
                if response.status_code == 302:
                    outcomes["saved"] += 1
                    entry = db.session.scalar(select(ManualInput.values))
                    db.session.rollback()
                    if entry != {"first_name": f"first-{turn}", "last_name": f"last-{turn}"}:
                        problems.append(f"turn {turn}: stored {entry}")
                elif response.status_code == 409 and CHANGED in text_of(response):
                    outcomes["refused"] += 1
                else:
                    problems.append(f"turn {turn}: answered {response.status_code}")
        done.set()

    threads = [threading.Thread(target=admin_edits), threading.Thread(target=staff_saves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert problems == []
    assert outcomes["saved"] > 0 and outcomes["saved"] + outcomes["refused"] == 40


def test_a_stale_entry_says_what_changed_and_keeps_a_renamed_fields_value(world):
    url = f"/requests/{world['request_id']}/manual/crm"
    staff = world["staff"]
    names = _form(staff.get(url).get_data(as_text=True))
    data = {"version": names["version"], names["First Name"]: "Jane", names["Last Name"]: "Doe"}
    assert staff.post(url, data=data).status_code == 302
    # Renamed (label and name), removed, added.
    _patch_fields(
        world,
        [
            {"id": names["First Name"].removeprefix("field_"), "pii_field": "Given name"},
            {"pii_field": "Passport number"},
        ],
    )

    response = staff.get(url)
    text = text_of(response)
    assert "The fields of this system changed since this entry was saved; review and save again." in text
    assert "New: Passport number (empty below)." in text
    assert "Renamed: First Name → Given name (their values are kept)." in text
    assert "Removed: Last Name (their values are no longer asked for, and saving drops them)." in text
    page = response.get_data(as_text=True)
    shown = _form(page)
    assert _value_of(page, shown["Given name"]) == "Jane"
    view = (
        world["admin"]
        .get(
            f"/api/v1/privacy-request/{world['request_id']}/access_manual_webhook/crm",
            headers=world["headers"],
        )
        .get_json()
    )
    assert view == {"checked": False, "fields": {"given_name": "Jane", "passport_number": None}}


def test_a_stale_entry_whose_names_did_not_change_says_so(world):
    url = f"/requests/{world['request_id']}/manual/crm"
    staff = world["staff"]
    names = _form(staff.get(url).get_data(as_text=True))
    assert staff.post(url, data={"version": names["version"], names["First Name"]: "Jane"}).status_code == 302
    _patch_fields(world, [{"pii_field": "First Name", "required": True}, {"pii_field": "Last Name"}])

    text = text_of(staff.get(url))
    assert (
        "The fields have the same names; their order, types, required settings or help texts changed." in text
    )
