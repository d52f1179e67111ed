"""Manual-webhook fields: the S2 rule matrix (service and form), versions, audit, and the editor's buttons."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualWebhook
from portal.models.audit import Actor
from portal.services import InvalidState, NotFound, ValidationFailed, privacy_requests
from portal.services import webhooks as svc
from tests.factories import make_connection, make_webhook

ADMIN = Actor.system("test-admin")
EMPTY_LABEL_IN_WORDS = (
    "Cannot make a package label from the PII field “{}”: it has no letters or digits. Enter a package label."
)
EMPTY_LABEL = (
    "Cannot generate a dsr_package_label from the pii_field '{}': it has no letters or digits. "
    "Enter a dsr_package_label."
)

# (fields, the ValidationFailed message, the locations marked). Rows are dicts as the API would send them.
INVALID = {
    "no fields": ([], svc.AT_LEAST_ONE_FIELD, [()]),
    "duplicate pii_field": (
        [
            {"pii_field": "first_name", "dsr_package_label": "First Name"},
            {"pii_field": "Other"},
            {"pii_field": "first_name", "dsr_package_label": "Second"},
        ],
        "pii_fields must be unique",
        [(0, "pii_field"), (2, "pii_field")],
    ),
    "pii_fields compare after strip": (
        [{"pii_field": "Email"}, {"pii_field": "  Email "}],
        "pii_fields must be unique",
        [(0, "pii_field"), (1, "pii_field")],
    ),
    "generated labels collide (Email / email)": (
        [{"pii_field": "Email"}, {"pii_field": "email"}],
        "dsr_package_labels must be unique",
        [(0, "dsr_package_label"), (1, "dsr_package_label")],
    ),
    "explicit label collides with a generated one": (
        [{"pii_field": "Phone Number"}, {"pii_field": "Mobile", "dsr_package_label": " phone_number "}],
        "dsr_package_labels must be unique",
        [(0, "dsr_package_label"), (1, "dsr_package_label")],
    ),
    "explicit labels collide": (
        [
            {"pii_field": "A", "dsr_package_label": "x"},
            {"pii_field": "B", "dsr_package_label": "y"},
            {"pii_field": "C", "dsr_package_label": "x"},
        ],
        "dsr_package_labels must be unique",
        [(0, "dsr_package_label"), (2, "dsr_package_label")],
    ),
    "label empty after generation": (
        [{"pii_field": "Name"}, {"pii_field": "!!!"}],
        EMPTY_LABEL.format("!!!"),
        [(1, "dsr_package_label")],
    ),
    "empty pii_field": (
        [
            {"pii_field": "first_name", "dsr_package_label": "First Name"},
            {"pii_field": "", "dsr_package_label": "bad"},
        ],
        "Field 2: pii_field must not be empty.",
        [(1, "pii_field")],
    ),
    "blank pii_field": (
        [{"pii_field": "   ", "dsr_package_label": "label"}],
        "Field 1: pii_field must not be empty.",
        [(0, "pii_field")],
    ),
    "pii_field too long": (
        [{"pii_field": "hello" * 41}],
        "Field 1: pii_field must be at most 200 characters long (it has 205).",
        [(0, "pii_field")],
    ),
    "label too long": (
        [{"pii_field": "Name", "dsr_package_label": "l" * 201}],
        "Field 1: dsr_package_label must be at most 200 characters long (it has 201).",
        [(0, "dsr_package_label")],
    ),
    "help text too long": (
        [{"pii_field": "Name", "help_text": "h" * 501}],
        "Field 1: help_text must be at most 500 characters long (it has 501).",
        [(0, "help_text")],
    ),
}
# The same rules as the field editor says them (the HTML UI speaks of PII fields and package labels, not
# of the API's keys): the message beside each row involved.
IN_WORDS = {
    "no fields": "Add at least one field before saving.",
    "duplicate pii_field": "Two fields have the same PII field: first_name",
    "pii_fields compare after strip": "Two fields have the same PII field: Email",
    "generated labels collide (Email / email)": "Two fields have the same package label: email",
    "explicit label collides with a generated one": "Two fields have the same package label: phone_number",
    "explicit labels collide": "Two fields have the same package label: x",
    "label empty after generation": EMPTY_LABEL_IN_WORDS.format("!!!"),
    "empty pii_field": "Enter a PII field: the name of what staff look up.",
    "blank pii_field": "Enter a PII field: the name of what staff look up.",
    "pii_field too long": "The PII field must be at most 200 characters long (it has 205).",
    "label too long": "The package label must be at most 200 characters long (it has 201).",
    "help text too long": "The help text must be at most 500 characters long (it has 501).",
}
# Only the JSON API can send these; the form cannot express them.
SERVICE_ONLY = {
    "missing pii_field": (
        [{"dsr_package_label": "x"}],
        "Field 1: pii_field is required.",
        [(0, "pii_field")],
    ),
    "pii_field not a string": (
        [{"pii_field": 5}],
        "Field 1: pii_field must be a string.",
        [(0, "pii_field")],
    ),
    "unknown key": (
        [{"pii_field": "Name", "colour": "red"}],
        "Field 1: Unknown key 'colour' in a field definition; allowed: id, pii_field, dsr_package_label, type, "
        "required, help_text.",
        [(0, "colour")],
    ),
    "unknown type": (
        [{"pii_field": "Name"}, {"pii_field": "Signature", "type": "signature"}],
        "Field 2: Unknown type 'signature'; choose one of: text, textarea, email, number, date, boolean, file.",
        [(1, "type")],
    ),
    "required not a bool": (
        [{"pii_field": "Name", "required": "yes"}],
        "Field 1: required must be true or false.",
        [(0, "required")],
    ),
    "not an object": ([["Name"]], "Field 1: Each field must be an object with at least a pii_field.", [(0,)]),
}


@pytest.fixture
def gate_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(privacy_requests, "reevaluate_waiting", lambda actor: calls.append(actor))
    return calls


def stored_webhook(key: str = "crm") -> ManualWebhook | None:
    db.session.expire_all()
    return db.session.scalar(
        select(ManualWebhook).join(ManualWebhook.connection_config).where(ConnectionConfig.key == key)
    )


def audit(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def form_data(rows: list[dict], **buttons) -> dict:
    data = {}
    for index, row in enumerate(rows):
        for key in ("pii_field", "dsr_package_label", "type", "help_text"):
            if row.get(key) is not None:
                data[f"fields-{index}-{key}"] = row[key]
        if row.get("required"):
            data[f"fields-{index}-required"] = "y"
    data.update(dict.fromkeys(buttons, "y"))
    return data


def without_id(definition: dict) -> dict:
    return {key: value for key, value in definition.items() if key != "id"}


def full(pii_field: str, label: str, type: str = "text", required: bool = False, help_text=None) -> dict:
    """A field definition as stored: every key present."""
    return {
        "pii_field": pii_field,
        "dsr_package_label": label,
        "type": type,
        "required": required,
        "help_text": help_text,
    }


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def visible_text(response) -> str:
    """Tags removed and whitespace collapsed: the words on the page."""
    return " ".join(re.sub(r"<[^>]+>", " ", page_text(response)).split()).replace(" .", ".")


def row_error(response, index: int, key: str) -> str | None:
    """The message shown under one input of one row, as a person reads it."""
    match = re.search(
        rf'<div id="fields-{index}-{key}-error" class="invalid-feedback d-block">(.*?)</div>',
        response.get_data(as_text=True),
        re.S,
    )
    return html.unescape(match.group(1)) if match else None


def input_values(response, key: str) -> list[str]:
    """The values of one input in every row, in page order."""
    body = response.get_data(as_text=True)
    values = []
    for tag in re.findall(rf'<input[^>]*name="fields-\d+-{key}"[^>]*>', body):
        match = re.search(r'value="([^"]*)"', tag)
        values.append(html.unescape(match.group(1)) if match else "")
    return values


# --- the rule matrix, through the service --------------------------------------------------------


@pytest.mark.parametrize(("fields", "message", "locations"), INVALID.values(), ids=INVALID.keys())
def test_rule_matrix_service(fields, message, locations):
    with pytest.raises(ValidationFailed) as excinfo:
        svc.normalize_fields(fields)
    assert str(excinfo.value) == message
    assert [loc for loc, _ in excinfo.value.errors] == locations


@pytest.mark.parametrize(("fields", "message", "locations"), SERVICE_ONLY.values(), ids=SERVICE_ONLY.keys())
def test_rule_matrix_service_only(fields, message, locations):
    with pytest.raises(ValidationFailed) as excinfo:
        svc.normalize_fields(fields)
    assert str(excinfo.value) == message
    assert [loc for loc, _ in excinfo.value.errors] == locations


def test_duplicate_and_empty_labels_are_reported_together():
    with pytest.raises(ValidationFailed) as excinfo:
        svc.normalize_fields([{"pii_field": "Email"}, {"pii_field": "email"}, {"pii_field": "???"}])
    assert str(excinfo.value) == "dsr_package_labels must be unique"
    assert excinfo.value.errors == [
        ((0, "dsr_package_label"), "dsr_package_labels must be unique"),
        ((1, "dsr_package_label"), "dsr_package_labels must be unique"),
        ((2, "dsr_package_label"), EMPTY_LABEL.format("???")),
    ]


def test_form_lists_every_problem_next_to_its_row(client, login_as):
    login_as("admin")
    make_connection("CRM")
    rows = [{"pii_field": "Email"}, {"pii_field": "Name"}, {"pii_field": "email"}, {"pii_field": "???"}]
    response = client.post("/admin/connections/crm/fields", data=form_data(rows, save=True))
    text = page_text(response)
    # In words, not the API's keys (which say "dsr_package_labels must be unique", fidesops' message).
    assert "Fields 1 and 3: Two fields have the same package label: email" in text
    assert "Field 4: " + EMPTY_LABEL_IN_WORDS.format("???") in text
    assert row_error(response, 1, "dsr_package_label") is None
    assert row_error(response, 3, "dsr_package_label") == EMPTY_LABEL_IN_WORDS.format("???")
    assert stored_webhook() is None


def test_the_editor_names_fields_in_words(client, login_as):
    """The API keeps fidesops' wording ("dsr_package_labels must be unique": tests/test_api.py)."""
    login_as("admin")
    make_connection("CRM")
    rows = [{"pii_field": "Email"}, {"pii_field": ""}]
    text = page_text(client.post("/admin/connections/crm/fields", data=form_data(rows, save=True)))
    assert "Field 2: Enter a PII field: the name of what staff look up." in text
    assert "pii_field must not be empty" not in text
    rows = [{"pii_field": "Email"}, {"pii_field": "E-mail", "dsr_package_label": "email"}]
    text = page_text(client.post("/admin/connections/crm/fields", data=form_data(rows, save=True)))
    assert "Two fields have the same package label: email" in text
    assert "dsr_package_labels must be unique" not in text


def test_uniqueness_messages_name_every_row_involved():
    with pytest.raises(ValidationFailed) as excinfo:
        svc.normalize_fields([{"pii_field": "A"}, {"pii_field": "A"}, {"pii_field": "A"}])
    assert excinfo.value.errors == [((i, "pii_field"), "pii_fields must be unique") for i in range(3)]


def test_normalize_generates_labels_and_fills_defaults():
    fields = svc.normalize_fields(
        [
            {"pii_field": "  Phone Number ", "dsr_package_label": None},
            {"pii_field": "Last name", "dsr_package_label": "  "},
            {"pii_field": "Email", "dsr_package_label": ""},
            {
                "pii_field": "E-Mail (work)",
                "dsr_package_label": "Work Email",
                "type": "email",
                "required": True,
            },
            {"pii_field": "Geburtsdatum Müller", "type": "date", "help_text": "  ISO date  "},
        ]
    )
    assert fields == [
        full("Phone Number", "phone_number"),
        full("Last name", "last_name"),
        full("Email", "email"),
        full("E-Mail (work)", "Work Email", type="email", required=True),
        full("Geburtsdatum Müller", "geburtsdatum_muller", type="date", help_text="ISO date"),
    ]


def test_explicit_labels_compare_exactly():
    fields = svc.normalize_fields(
        [{"pii_field": "A", "dsr_package_label": "Email"}, {"pii_field": "B", "dsr_package_label": "email"}]
    )
    assert [f["dsr_package_label"] for f in fields] == ["Email", "email"]


LABELS_THAT_ARE_PYTHON_NAMES = ["dict", "__class__", "_x", "fields", "items", "__init__", "keys", "copy"]


def test_labels_that_look_like_python_names_are_plain_data(app):
    conn = make_connection("CRM")
    fields = [
        {"pii_field": f"Field {n}", "dsr_package_label": label}
        for n, label in enumerate(LABELS_THAT_ARE_PYTHON_NAMES)
    ]
    webhook = svc.create_webhook(conn, fields, ADMIN)
    db.session.commit()
    assert stored_webhook().labels == LABELS_THAT_ARE_PYTHON_NAMES
    assert webhook.version == 1


def test_labels_that_look_like_python_names_through_the_form(client, login_as):
    login_as("admin")
    make_connection("CRM")
    rows = [
        {"pii_field": f"Field {n}", "dsr_package_label": label}
        for n, label in enumerate(LABELS_THAT_ARE_PYTHON_NAMES)
    ]
    response = client.post("/admin/connections/crm/fields", data=form_data(rows, save=True))
    assert response.status_code == 302
    assert stored_webhook().labels == LABELS_THAT_ARE_PYTHON_NAMES
    assert (
        input_values(client.get("/admin/connections/crm/fields"), "dsr_package_label")
        == LABELS_THAT_ARE_PYTHON_NAMES
    )


# --- the rule matrix, through the form -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "row_message", "locations"),
    [(fields, IN_WORDS[case], locations) for case, (fields, _, locations) in INVALID.items()],
    ids=INVALID.keys(),
)
def test_rule_matrix_form(client, login_as, fields, row_message, locations):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Existing"}])
    response = client.post("/admin/connections/crm/fields", data=form_data(fields, save=True))
    assert response.status_code == 200
    text = page_text(response)
    assert "Nothing was saved." in text
    for location in locations:
        if location:
            index, key = location
            assert row_error(response, index, key) == row_message, f"row {index} {key}"
        else:
            assert "Add at least one field before saving." in text
    numbers = [str(loc[0] + 1) for loc in locations if loc]
    if len(numbers) == 1:
        assert f"Field {numbers[0]}: {row_message}" in text
    elif numbers:
        assert f"Fields {', '.join(numbers[:-1])} and {numbers[-1]}: {row_message}" in text
    # Rows that are fine carry no message.
    marked = {loc[0] for loc in locations if loc}
    for index in range(len(fields)):
        if index not in marked:
            assert row_error(response, index, "pii_field") is None
            assert row_error(response, index, "dsr_package_label") is None
    # Nothing saved; what was typed is still there.
    hook = stored_webhook()
    assert (hook.version, hook.labels) == (1, ["existing"])
    assert input_values(response, "pii_field") == [f.get("pii_field", "") for f in fields]


# --- the service: create / replace / get / delete -------------------------------------------------


def test_create_webhook_only_for_manual_connections(app):
    conn = make_connection("Customers DB", connection_type="postgres")
    with pytest.raises(InvalidState) as excinfo:
        svc.create_webhook(conn, [{"pii_field": "Email"}], ADMIN)
    assert (
        str(excinfo.value)
        == "You can only create manual webhooks for ConnectionConfigs of type 'manual_webhook'."
    )
    with pytest.raises(InvalidState):
        svc.replace_fields(conn, [{"pii_field": "Email"}], ADMIN)


def test_create_webhook_twice_is_refused(app):
    webhook = make_webhook("CRM", [{"pii_field": "Email"}])
    with pytest.raises(InvalidState) as excinfo:
        svc.create_webhook(webhook.connection_config, [{"pii_field": "Name"}], ADMIN)
    assert str(excinfo.value) == "An Access Manual Webhook already exists for ConnectionConfig 'crm'."


def test_get_webhook_not_found_message(app):
    conn = make_connection("CRM")
    with pytest.raises(NotFound) as excinfo:
        svc.get_webhook(conn)
    assert str(excinfo.value) == "No access manual webhook exists for connection config with key 'crm'"


def test_create_and_replace_bump_the_version_and_audit_labels(app):
    conn = make_connection("CRM")
    webhook = svc.replace_fields(conn, [{"pii_field": "First Name"}, {"pii_field": "Email"}], ADMIN)
    db.session.commit()
    assert webhook.version == 1
    created = audit("webhook.created")
    assert [(e.connection_key, e.details) for e in created] == [
        ("crm", {"key": "crm", "version": 1, "labels": ["first_name", "email"]})
    ]

    # The same list again (even spelled differently) is not a change: no new version, no event.
    same = [
        {"pii_field": " First Name ", "dsr_package_label": "first_name", "type": "text"},
        {"pii_field": "Email"},
    ]
    assert svc.replace_fields(conn, same, ADMIN).version == 1
    db.session.commit()
    assert audit("webhook.changed") == []

    webhook = svc.replace_fields(conn, [{"pii_field": "Email"}, {"pii_field": "Phone"}], ADMIN)
    db.session.commit()
    assert stored_webhook().version == 2
    assert stored_webhook().labels == ["email", "phone"]
    (changed,) = audit("webhook.changed")
    assert changed.details == {
        "key": "crm",
        "version": 2,
        "labels": ["email", "phone"],
        "added_labels": ["phone"],
        "removed_labels": ["first_name"],
    }

    # Order, type, required and help text are part of the definition too.
    svc.replace_fields(conn, [{"pii_field": "Phone"}, {"pii_field": "Email"}], ADMIN)
    svc.replace_fields(conn, [{"pii_field": "Phone"}, {"pii_field": "Email", "required": True}], ADMIN)
    db.session.commit()
    assert stored_webhook().version == 4


def test_identical_save_of_an_older_shaped_list_is_not_a_change(app):
    """Rows stored before the optional keys existed compare equal to their normalized form."""
    webhook = make_webhook("CRM", [{"pii_field": "Email"}])
    webhook.fields = [{"id": webhook.fields[0]["id"], "pii_field": "Email", "dsr_package_label": "email"}]
    db.session.commit()
    assert svc.replace_fields(webhook.connection_config, [{"pii_field": "Email"}], ADMIN).version == 1


def test_invalid_replace_changes_nothing(app):
    webhook = make_webhook("CRM", [{"pii_field": "Email"}])
    with pytest.raises(ValidationFailed):
        svc.replace_fields(webhook.connection_config, [{"pii_field": "A"}, {"pii_field": "A"}], ADMIN)
    db.session.rollback()
    hook = stored_webhook()
    assert (hook.version, hook.labels) == (1, ["email"])


def test_delete_webhook_keeps_the_connection_and_calls_the_gate(app, gate_calls):
    webhook = make_webhook("CRM", [{"pii_field": "Email"}])
    conn = webhook.connection_config
    svc.delete_webhook(conn, ADMIN)
    db.session.commit()
    assert stored_webhook() is None
    assert conn.manual_webhook is None
    assert gate_calls == [ADMIN]
    (deleted,) = audit("webhook.deleted")
    assert deleted.details == {"key": "crm", "version": 1, "labels": ["email"]}
    with pytest.raises(NotFound):
        svc.delete_webhook(conn, ADMIN)


# --- the editor page ----------------------------------------------------------------------------


def test_editor_shows_rows_version_and_generated_label_hint(client, login_as):
    login_as("admin")
    make_webhook(
        "CRM", [{"pii_field": "Phone Number"}, {"pii_field": "Notes", "type": "textarea", "required": True}]
    )
    response = client.get("/admin/connections/crm/fields")
    assert response.status_code == 200
    text = page_text(response)
    assert "Version 1" in text
    note = (
        "Saving a changed list creates version 2. "
        "Staff will then be asked to re-review every entry saved against version 1"
    )
    assert note in visible_text(response)
    assert input_values(response, "pii_field") == ["Phone Number", "Notes"]
    assert input_values(response, "dsr_package_label") == ["phone_number", "notes"]
    assert 'placeholder="phone_number"' in response.get_data(as_text=True)
    assert "Blank: phone_number" in text
    assert '<label class="form-label small fw-semibold" for="fields-0-pii_field">PII field</label>' in text
    assert re.search(r'<input[^>]*checked[^>]*name="fields-1-required"', text)
    assert not re.search(r'<input[^>]*checked[^>]*name="fields-0-required"', text)
    assert "field_editor.js" in text


def test_new_webhook_starts_with_one_empty_row(client, login_as):
    login_as("admin")
    make_connection("CRM")
    response = client.get("/admin/connections/crm/fields")
    assert input_values(response, "pii_field") == [""]
    assert "No fields are saved yet" in page_text(response)


def test_editor_is_only_for_manual_webhooks(client, login_as):
    login_as("admin")
    make_connection("Customers DB", connection_type="postgres")
    assert client.get("/admin/connections/customers_db/fields").status_code == 404
    assert client.get("/admin/connections/nope/fields").status_code == 404


def test_save_through_the_form_bumps_version_only_on_change(client, login_as):
    login_as("admin")
    make_connection("CRM")
    rows = [
        {"pii_field": "Email", "type": "email", "required": True},
        {"pii_field": "Order number", "help_text": "From the invoice"},
    ]
    response = client.post("/admin/connections/crm/fields", data=form_data(rows, save=True))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/connections/crm/fields")
    hook = stored_webhook()
    assert hook.version == 1
    assert [without_id(f) for f in hook.fields] == [
        full("Email", "email", type="email", required=True),
        full("Order number", "order_number", help_text="From the invoice"),
    ]
    assert "Saved 2 fields as version 1." in page_text(client.get("/admin/connections/crm/fields"))

    # Saving what the editor shows (labels now explicit) is not a change.
    shown = [
        {**row, "dsr_package_label": label}
        for row, label in zip(rows, ["email", "order_number"], strict=True)
    ]
    client.post("/admin/connections/crm/fields", data=form_data(shown, save=True))
    assert stored_webhook().version == 1
    assert "Nothing changed: the fields are the same as version 1." in page_text(
        client.get("/admin/connections/crm/fields")
    )
    assert len(audit("webhook.created")) == 1 and audit("webhook.changed") == []

    client.post("/admin/connections/crm/fields", data=form_data([*shown, {"pii_field": "Phone"}], save=True))
    assert stored_webhook().version == 2
    assert "Entries saved against version 1 now need a re-review by staff." in page_text(
        client.get("/admin/connections/crm/fields")
    )
    (changed,) = audit("webhook.changed")
    assert changed.details["labels"] == ["email", "order_number", "phone"]
    assert changed.actor_type == "user"


def test_enter_key_default_button_is_save(client, login_as):
    """The first submit button in the form is Save, so Enter in a text box never moves or removes a row."""
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Email"}])
    body = client.get("/admin/connections/crm/fields").get_data(as_text=True)
    form = body[body.index('id="field-editor"') :]
    first_button = re.search(r"<button[^>]*>", form).group(0)
    assert 'name="save"' in first_button


def test_add_a_field_keeps_typed_values_and_saves_nothing(client, login_as):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Email"}])
    typed = [{"pii_field": "Email (changed)", "dsr_package_label": "mail", "help_text": "typed"}]
    response = client.post("/admin/connections/crm/fields", data=form_data(typed, add=True))
    assert response.status_code == 200
    assert input_values(response, "pii_field") == ["Email (changed)", ""]
    assert input_values(response, "dsr_package_label") == ["mail", ""]
    assert input_values(response, "help_text") == ["typed", ""]
    assert "Not saved yet" in page_text(response)
    assert 'id="fields-1-pii_field"' in response.get_data(as_text=True)
    assert re.search(r'<input[^>]*autofocus[^>]*name="fields-1-pii_field"', response.get_data(as_text=True))
    hook = stored_webhook()
    assert (hook.version, hook.labels) == (1, ["email"])


def test_remove_and_move_rows_without_saving(client, login_as):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "A"}])
    rows = [{"pii_field": "First"}, {"pii_field": "Second"}, {"pii_field": "Third", "required": True}]

    response = client.post("/admin/connections/crm/fields", data=form_data(rows, **{"fields-1-remove": True}))
    assert input_values(response, "pii_field") == ["First", "Third"]

    response = client.post(
        "/admin/connections/crm/fields", data=form_data(rows, **{"fields-0-move_down": True})
    )
    assert input_values(response, "pii_field") == ["Second", "First", "Third"]

    response = client.post(
        "/admin/connections/crm/fields", data=form_data(rows, **{"fields-2-move_up": True})
    )
    assert input_values(response, "pii_field") == ["First", "Third", "Second"]
    body = response.get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*name="fields-1-required"', body)

    # Moving past either end changes nothing.
    response = client.post(
        "/admin/connections/crm/fields", data=form_data(rows, **{"fields-0-move_up": True})
    )
    assert input_values(response, "pii_field") == ["First", "Second", "Third"]

    hook = stored_webhook()
    assert (hook.version, hook.labels) == (1, ["a"])


def test_removing_every_row_shows_the_empty_state_and_cannot_be_saved(client, login_as):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Email"}])
    response = client.post(
        "/admin/connections/crm/fields", data=form_data([{"pii_field": "Email"}], **{"fields-0-remove": True})
    )
    assert "No fields in the list — add the first field." in page_text(response)
    response = client.post("/admin/connections/crm/fields", data={"save": "y"})
    assert "Add at least one field before saving." in page_text(response)
    assert stored_webhook().labels == ["email"]


def test_delete_all_fields_asks_first(client, login_as, gate_calls):
    login_as("admin")
    make_webhook("CRM", [{"pii_field": "Email"}, {"pii_field": "Phone"}])
    page = page_text(client.get("/admin/connections/crm/fields/delete"))
    assert "Delete the fields of “CRM”?" in page and "email" in page and "phone" in page
    assert stored_webhook() is not None
    response = client.post("/admin/connections/crm/fields/delete")
    assert response.status_code == 302
    assert stored_webhook() is None
    assert gate_calls
    assert [e.action for e in audit("webhook.deleted")] == ["webhook.deleted"]
    assert client.get("/admin/connections/crm/fields/delete").status_code == 302
