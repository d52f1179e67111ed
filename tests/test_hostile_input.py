"""Hostile input: property-based on the services, then through forms and the API.

Every input is either stored and shown back verbatim (escaped), or refused with a clear 4xx and nothing
written; never a server error, never half a write. Hypothesis runs derandomized (the same examples on
every run, so CI cannot flake) and is pinned in requirements-dev.txt.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualInput, ManualWebhook, PrivacyRequest
from portal.routing import DatabaseIdConverter
from portal.services import (
    DomainError,
    ValidationFailed,
    audit_log,
    connections,
    datasets,
    manual_inputs,
    privacy_requests,
)
from portal.services import webhooks as webhook_service
from portal.services.keys import KEY_PATTERN
from portal.services.manual_inputs import MAX_VALUE_LENGTH
from portal.services.webhooks import MAX_FIELDS
from tests.collection_helpers import SHOP_YAML, add_database, sqlite_source
from tests.factories import TEST_PASSWORD
from tests.hardening_helpers import (
    FIELDS,
    FORM_DATA,
    TEST_ACTOR,
    WEBHOOK_KEY,
    api_body,
    build_world,
    params_for,
    path_with,
    problem_of,
    route_methods,
    server_error_or_silence,
    sign_in,
    text_of,
    url_for_rule,
)


def without_id(definition: dict) -> dict:
    return {key: value for key, value in definition.items() if key != "id"}


SERVICE_EXAMPLES = 60
HTTP_EXAMPLES = 20
PROPERTY = settings(
    max_examples=SERVICE_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
OVER_HTTP = settings(PROPERTY, max_examples=HTTP_EXAMPLES)

TEMPLATE_SYNTAX = "{{7*7}}"
SCRIPT = "<script>alert(1)</script>"
NASTY = [
    TEMPLATE_SYNTAX,
    "{% for x in range(3) %}x{% endfor %}",
    "${7*7} #{7*7} <%= 7*7 %>",
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "'; DROP TABLE privacy_requests; --",
    "1' OR '1'='1",
    "\u202eexe.txt\u202c",  # right-to-left override
    "مرحبا بالعالم",
    "שלום עולם",
    "zero\u200bwidth\u200cjoin\u200dmark\ufeff",
    "e\u0301 vs é",  # combining accent, and the precomposed one
    "İstanbul ß ǅ ﬁ",
    "🙂 👩\u200d👩\u200d👧 🏳️\u200d🌈",
    "  padded  ",
    "line\nbreak\r\nand\ttab",
    "&amp; &lt; &#x3c; %3Cscript%3E",
    "\\x00 \\u0000 not a real null",
    "x" * MAX_VALUE_LENGTH,
]
BAD_TEXT = ["a\x00b", "\x00"]  # refused everywhere: databases cannot store NUL characters

hostile_text = st.one_of(
    st.sampled_from(NASTY + BAD_TEXT),
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(list("<>{}%'\"\\&;=`$#\u200b\u202e\u0000 é")), max_size=40),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), hostile_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
field_definition = st.one_of(
    st.fixed_dictionaries(
        {"pii_field": hostile_text},
        optional={
            "dsr_package_label": st.none() | hostile_text,
            "type": st.sampled_from(["text", "textarea", "email", "number", "date", "boolean", "html"]),
            "required": st.booleans() | json_scalars,
            "help_text": st.none() | hostile_text,
            "extra": json_values,
        },
    ),
    json_values,
)
field_lists = st.one_of(st.lists(field_definition, max_size=5), json_values)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _no_storage_problem(value: str) -> bool:
    return "\x00" not in value


# --- services --------------------------------------------------------------------------------------


@PROPERTY
@given(raw=field_lists)
@example(raw=[{"pii_field": label} for label in NASTY[:5]])
@example(raw=[{"pii_field": "Email"}, {"pii_field": "email"}])
@example(raw=[{"pii_field": "dict", "dsr_package_label": "__class__"}])
def test_normalize_fields_returns_clean_rows_or_a_validation_error(app, raw):
    try:
        rows = webhook_service.normalize_fields(raw)
    except ValidationFailed as exc:
        assert str(exc) and exc.errors
        return
    assert isinstance(raw, list) and len(rows) == len(raw) > 0
    labels = [row["dsr_package_label"] for row in rows]
    assert len(set(labels)) == len(labels) and all(labels)
    for given_row, row in zip(raw, rows, strict=True):
        assert set(row) | {"id"} == set(webhook_service.FIELD_KEYS)
        assert row["pii_field"] == given_row["pii_field"].strip() != ""
        assert all(_no_storage_problem(v) for v in row.values() if isinstance(v, str))


@PROPERTY
@given(fields=st.lists(field_definition, min_size=1, max_size=4))
@example(fields=[{"pii_field": TEMPLATE_SYNTAX}, {"pii_field": SCRIPT, "dsr_package_label": SCRIPT}])
def test_field_definitions_are_stored_verbatim_or_not_at_all(app, fields):
    world = _world_once(app)
    conn = connections.get_connection(WEBHOOK_KEY)
    before = (conn.manual_webhook.version, list(conn.manual_webhook.fields))
    try:
        webhook_service.replace_fields(conn, fields, TEST_ACTOR)
        db.session.flush()
        expected = webhook_service.normalize_fields(fields)
        db.session.expire_all()
        stored = db.session.scalar(select(ManualWebhook).where(ManualWebhook.id == conn.manual_webhook.id))
        assert [without_id(f) for f in stored.fields] == [without_id(f) for f in expected]
        assert all(webhook_service.FIELD_ID_PATTERN.match(f["id"]) for f in stored.fields)
    except ValidationFailed:
        db.session.rollback()
        webhook = connections.get_connection(WEBHOOK_KEY).manual_webhook
        assert (webhook.version, webhook.fields) == before
    finally:
        db.session.rollback()
    assert world


@PROPERTY
@given(
    values=st.dictionaries(st.sampled_from(["first_name", "last_name", "notes"]) | hostile_text, json_values)
)
@example(values={"first_name": TEMPLATE_SYNTAX, "notes": "x" * MAX_VALUE_LENGTH})
@example(values={"first_name": "x" * (MAX_VALUE_LENGTH + 1)})
@example(values={"first_name": 42, "last_name": ["a"], "notes": {"a": 1}})
def test_manual_values_are_saved_verbatim_or_nothing_changes(app, values):
    world = _world_once(app)
    before = _entry_state(world.waiting_id)
    events = _count(AuditEvent)
    try:
        manual_inputs.save_manual_input(world.waiting_id, WEBHOOK_KEY, values, TEST_ACTOR)
        db.session.flush()
        db.session.expire_all()
        stored = _entry_state(world.waiting_id)["values"]
        assert set(stored) == {"first_name", "last_name", "notes"}
        for label, value in values.items():
            assert stored[label] == (value if value and value.strip() else None)
        assert _count(AuditEvent) == events + 1
    except ValidationFailed as exc:
        assert str(exc)
        db.session.rollback()
        assert _entry_state(world.waiting_id) == before
        assert _count(AuditEvent) == events
    finally:
        db.session.rollback()


@PROPERTY
@given(name=hostile_text, key=st.none() | hostile_text, description=st.none() | hostile_text)
@example(name=SCRIPT, key=None, description=TEMPLATE_SYNTAX)
@example(name="\u202eevil", key="ok.key-1_", description=None)
@example(name="💥", key=None, description=None)
@example(name="Dots", key="..", description=None)
def test_connections_are_created_verbatim_or_refused(app, name, key, description):
    count = _count(ConnectionConfig)
    try:
        conn = connections.create_connection(
            name=name, key=key, description=description, connection_type="manual_webhook", actor=TEST_ACTOR
        )
        db.session.expire_all()
        stored = db.session.get(ConnectionConfig, conn.id)
        assert stored.name == name.strip()
        assert stored.description == ((description or "").strip() or None)
        assert KEY_PATTERN.match(stored.key) and stored.key.strip(".")
        if key and key.strip():
            assert stored.key == key.strip()
    except DomainError as exc:
        assert str(exc)
        db.session.rollback()
        assert _count(ConnectionConfig) == count
    finally:
        db.session.rollback()


@PROPERTY
@given(
    email=st.none() | hostile_text | st.emails(),
    phone=st.none() | hostile_text | st.from_regex(r"\+?[0-9]{6,15}", fullmatch=True),
    external_id=st.none() | hostile_text,
    policy_key=st.just("default_access_policy") | hostile_text,
)
@example(email="jane@example.com", phone=None, external_id=SCRIPT, policy_key="default_access_policy")
@example(email=42, phone=["1"], external_id=7, policy_key=None)
def test_requests_are_created_from_clean_identities_or_refused(app, email, phone, external_id, policy_key):
    count = _count(PrivacyRequest)
    try:
        pr = privacy_requests.create_request(
            identity={"email": email, "phone_number": phone},
            policy_key=policy_key,
            external_id=external_id,
            actor=TEST_ACTOR,
        )
        db.session.flush()
        db.session.expire_all()
        stored = db.session.get(PrivacyRequest, pr.id)
        assert stored.identity and set(stored.identity) <= {"email", "phone_number"}
        assert stored.external_id == ((external_id or "").strip() or None)
    except DomainError as exc:
        assert str(exc)
        db.session.rollback()
        assert _count(PrivacyRequest) == count
    finally:
        db.session.rollback()


def _world_once(app):
    """One populated portal per test (hypothesis calls the test body many times with the same app)."""
    if "hostile_world" not in app.extensions:
        app.extensions["hostile_world"] = build_world()
    return app.extensions["hostile_world"]


def _entry_state(request_id: str) -> dict:
    entry = db.session.scalar(select(ManualInput).where(ManualInput.privacy_request_id == request_id))
    pr = db.session.get(PrivacyRequest, request_id)
    return {"values": entry.values, "version": entry.version, "updated": pr.updated_at, "status": pr.status}


# --- through the browser ---------------------------------------------------------------------------


class FormValues(HTMLParser):
    """The values of inputs and textareas by name, as a browser would show them (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value") or ""
        if tag == "textarea":
            self._textarea = attrs.get("name")
            self.values[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            # HTML drops the one newline WTForms puts right after <textarea>.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\r\n")
            self._textarea = None


def form_values_of(response) -> dict[str, str]:
    parser = FormValues()
    parser.feed(response.get_data(as_text=True))
    return parser.values


@pytest.fixture
def world(app):
    return build_world()


@pytest.fixture
def staff_client(app, world):
    client = app.test_client()
    sign_in(client, world.users["staff"])
    return client


@pytest.fixture
def admin_client(app, world):
    client = app.test_client()
    sign_in(client, world.users["admin"])
    return client


@pytest.mark.parametrize("label", [text for text in NASTY if len(text) <= 200 and text.strip()])
def test_a_hostile_field_label_is_shown_verbatim_and_escaped(admin_client, staff_client, world, label):
    saved = admin_client.post(
        f"/admin/connections/{WEBHOOK_KEY}/fields",
        data={
            "fields-0-pii_field": label,
            "fields-0-dsr_package_label": "the_field",
            "fields-0-type": "text",
            "fields-0-help_text": label,
            "save": "Save fields",
        },
    )
    assert saved.status_code == 302, text_of(saved)[:2000]

    page = staff_client.get(f"/requests/{world.empty_waiting_id}/manual/{WEBHOOK_KEY}")
    raw = page.get_data(as_text=True)

    assert page.status_code == 200
    assert label.strip() in text_of(page)  # shown as typed (surrounding spaces are stripped on save)
    assert SCRIPT not in raw and "<img src=x" not in raw
    if label == TEMPLATE_SYNTAX:
        assert ">49<" not in raw and "{{7*7}}" in raw


@OVER_HTTP
@given(value=hostile_text)
@example(value=SCRIPT)
@example(value=TEMPLATE_SYNTAX)
@example(value="x" * MAX_VALUE_LENGTH)
@example(value="x" * (MAX_VALUE_LENGTH + 1))
@example(value="a\x00b")
def test_manual_input_form_round_trips_any_value(app, value):
    world = _world_once(app)
    client = app.test_client()
    sign_in(client, world.users["staff"])
    url = f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}"
    before = _entry_state(world.waiting_id)

    response = client.post(url, data={"version": "1", "field_0": "Jane", "field_2": value})

    db.session.expire_all()
    if response.status_code == 302:
        assert "\x00" not in value and len(value) <= MAX_VALUE_LENGTH
        # blank means "not entered"; text keeps its value with "\n" line ends
        stored = value.replace("\r\n", "\n").replace("\r", "\n") if value.strip() else None
        assert _entry_state(world.waiting_id)["values"]["notes"] == stored
        assert form_values_of(client.get(url))["field_2"] == (stored or "")
    else:
        assert response.status_code in (200, 400), response.status_code
        assert _entry_state(world.waiting_id)["values"] == before["values"]
        if "\x00" in value:
            assert "null character" in text_of(response)
        else:
            assert len(value) > MAX_VALUE_LENGTH
            assert f"Enter at most {MAX_VALUE_LENGTH} characters." in text_of(response)


def test_hostile_values_reach_the_package_escaped(app, staff_client, world):
    values = {
        "version": "1",
        "field_0": SCRIPT,
        "field_1": TEMPLATE_SYNTAX,
        "field_2": "\u202eevil\nline two",
    }
    assert (
        staff_client.post(f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}", data=values).status_code
        == 302
    )
    assert staff_client.post(f"/requests/{world.waiting_id}/resume").status_code == 302
    reviewer = app.test_client()
    sign_in(reviewer, world.users["reviewer"])

    page = reviewer.get(f"/packages/{world.waiting_id}")
    package = reviewer.get(
        f"/api/v1/privacy-request/{world.waiting_id}/package", headers=world.headers("reviewer")
    )

    raw = page.get_data(as_text=True)
    assert page.status_code == 200
    assert SCRIPT not in raw and html.escape(SCRIPT, quote=False) in raw
    assert TEMPLATE_SYNTAX in raw
    assert package.get_json()[WEBHOOK_KEY] == [
        {"first_name": SCRIPT, "last_name": TEMPLATE_SYNTAX, "notes": "\u202eevil\nline two"}
    ]


def test_hostile_names_and_ids_are_escaped_on_every_page(app, admin_client, world):
    created = admin_client.post("/admin/connections/new", data={"name": SCRIPT + " 🙂", "key": "xss"})
    request = admin_client.post(
        "/requests/new",
        data={"email": "new@example.com", "policy": "default_access_policy", "external_id": SCRIPT},
    )
    assert (created.status_code, request.status_code) == (302, 302)
    request_page = admin_client.get(request.headers["Location"])

    for page in (
        admin_client.get("/admin/connections"),
        request_page,
        admin_client.get("/requests/?status=all"),
    ):
        raw = page.get_data(as_text=True)
        assert page.status_code == 200
        assert SCRIPT not in raw
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (
            "/requests/new",
            {"email": "a@example.com", "policy": "default_access_policy", "external_id": "a\x00"},
        ),
        ("/admin/connections/new", {"name": "evil\x00name"}),
        ("/requests/?q=pri_\x00", None),
    ],
)
def test_null_characters_in_forms_and_queries_are_a_clear_400(admin_client, url, data):
    count = (_count(PrivacyRequest), _count(ConnectionConfig))
    response = admin_client.post(url, data=data) if data else admin_client.get(url)

    assert response.status_code == 400
    assert "The request contains a null character (\\u0000), which is not allowed." in text_of(response)
    assert (_count(PrivacyRequest), _count(ConnectionConfig)) == count


# --- through the API -------------------------------------------------------------------------------


def _api(client, world, method, path, body):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.open(
        "/api/v1" + path,
        method=method,
        data=data,
        content_type="application/json",
        headers=world.headers("admin"),
    )


def _webhook_state():
    db.session.expire_all()
    return [
        (w.version, w.fields) for w in db.session.scalars(select(ManualWebhook).order_by(ManualWebhook.id))
    ]


@OVER_HTTP
@given(body=json_values | st.fixed_dictionaries({"fields": field_lists}))
@example(body={"fields": [{"pii_field": SCRIPT}, {"pii_field": TEMPLATE_SYNTAX}]})
@example(body={"fields": [{"pii_field": "x", "required": "yes"}]})
def test_api_webhook_fields_accept_or_refuse_whole(app, body):
    world = _world_once(app)
    client = app.test_client()
    before = _webhook_state()

    response = _api(client, world, "PATCH", f"/connection/{WEBHOOK_KEY}/access_manual_webhook", body)

    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)[:500]
    assert "detail" in response.get_json() or response.status_code == 200
    if response.status_code == 200:
        assert [without_id(f) for f in response.get_json()["fields"]] == webhook_service.normalize_fields(
            body["fields"]
        )
    else:
        assert _webhook_state() == before


@OVER_HTTP
@given(body=json_values | st.dictionaries(st.sampled_from(["first_name", "last_name", "notes"]), json_values))
@example(body={"first_name": "\ud800"})
@example(body={"first_name": SCRIPT, "notes": "x" * MAX_VALUE_LENGTH})
@example(body={"first_name": 5})
def test_api_uploads_are_stored_verbatim_or_refused_whole(app, body):
    world = _world_once(app)
    client = app.test_client()
    before = _entry_state(world.waiting_id)
    path = f"/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"

    response = _api(client, world, "PATCH", path, body)

    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)[:500]
    db.session.expire_all()
    if response.status_code == 200:
        fields = response.get_json()["fields"]
        assert {label: v for label, v in body.items() if v and v.strip()} == {
            label: v for label, v in fields.items() if v is not None
        }
    else:
        assert response.get_json()["detail"]
        assert _entry_state(world.waiting_id) == before


@OVER_HTTP
@given(body=json_values)
@example(body=[{"name": SCRIPT, "connection_type": "manual_webhook"}])
@example(body=[{"identity": {"email": "x@example.com"}, "external_id": TEMPLATE_SYNTAX}])
def test_api_bulk_creates_never_fail_with_a_server_error(app, body):
    world = _world_once(app)
    client = app.test_client()
    counts = (_count(ConnectionConfig), _count(PrivacyRequest))

    connection = _api(client, world, "PATCH", "/connection", body)
    request = _api(client, world, "POST", "/privacy-request", body)

    for response in (connection, request):
        assert response.status_code in (200, 400, 422), response.get_data(as_text=True)[:500]
    if 200 not in (connection.status_code, request.status_code):
        assert (_count(ConnectionConfig), _count(PrivacyRequest)) == counts


@pytest.mark.parametrize("depth", [50, 900, 5_000, 100_000])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/connection/crm/access_manual_webhook"),
        ("PATCH", "/privacy-request/{waiting}/access_manual_webhook/crm"),
        ("POST", "/privacy-request"),
        ("PATCH", "/connection"),
    ],
)
def test_deeply_nested_json_is_refused_with_a_4xx(app, world, method, path, depth):
    client = app.test_client()
    nested = "[" * depth + "]" * depth
    body = {"/connection/crm/access_manual_webhook": '{"fields": %s}', "/connection": "%s"}.get(
        path, '{"a": %s}'
    )
    if path == "/privacy-request":
        body = "%s"
    before = (_webhook_state(), _entry_state(world.waiting_id), _count(PrivacyRequest))

    response = _api(client, world, method, path.format(waiting=world.waiting_id), body % nested)

    assert response.status_code in (400, 422), response.get_data(as_text=True)[:300]
    assert response.get_json()["detail"]
    assert (_webhook_state(), _entry_state(world.waiting_id), _count(PrivacyRequest)) == before


def test_lone_surrogates_are_a_clear_400(app, world):
    client = app.test_client()
    path = f"/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"

    response = _api(client, world, "PATCH", path, '{"first_name": "\\ud800"}')

    assert response.status_code == 400
    assert "lone surrogate" in response.get_json()["detail"]


# --- size limits -----------------------------------------------------------------------------------


def test_too_large_form_is_a_clear_413_and_nothing_is_saved(staff_client, world):
    before = _entry_state(world.waiting_id)

    response = staff_client.post(
        f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}", data={"field_0": "x" * (1024 * 1024 + 1)}
    )

    assert response.status_code == 413
    assert "What you sent is too large (the limit is 1 MB)." in text_of(response)
    assert _entry_state(world.waiting_id) == before


def test_a_long_form_value_under_the_body_limit_gets_the_field_message(staff_client, world):
    response = staff_client.post(
        f"/requests/{world.waiting_id}/manual/{WEBHOOK_KEY}", data={"version": "1", "field_0": "x" * 600_000}
    )

    assert response.status_code == 200
    assert f"Enter at most {MAX_VALUE_LENGTH} characters." in text_of(response)


def test_too_large_api_body_is_a_clear_413(app, world):
    client = app.test_client()
    path = f"/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"
    before = _entry_state(world.waiting_id)

    response = _api(client, world, "PATCH", path, {"notes": "x" * (1024 * 1024)})

    assert response.status_code == 413
    assert response.get_json() == {"detail": "Request body too large: the limit is 1 MB."}
    assert _entry_state(world.waiting_id) == before


@pytest.mark.parametrize(("length", "status"), [(MAX_VALUE_LENGTH, 200), (MAX_VALUE_LENGTH + 1, 422)])
def test_values_up_to_10k_characters_are_kept_whole(app, world, length, status):
    client = app.test_client()
    value = ("é🙂" * length)[:length]
    path = f"/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"

    response = _api(client, world, "PATCH", path, {"notes": value})

    assert response.status_code == status
    if status == 200:
        assert response.get_json()["fields"]["notes"] == value
    else:
        assert (
            response.get_json()["detail"][0]["msg"] == f"notes: must be at most {MAX_VALUE_LENGTH} characters"
        )


def test_fields_of_the_world_are_what_the_tests_assume():
    assert [f["dsr_package_label"] for f in FIELDS] == ["first_name", "last_name", "notes"]


# --- numbers, dates and redirects: each finding ----------------------------------------------------

OVERLONG = "9" * 5000  # more digits than Python's int() reads (4,300)
HUGE = [str(2**31), str(2**63), "99999999999999999999"]  # past 32 bits, past 64 bits, 20 digits
NOT_FOUND_PAGE = "This page does not exist, or was removed."
OVERLONG_JSON = "The body holds a number with more than 4,300 digits, which is not accepted."


def _error_page_message(response) -> str:
    return problem_of(response)


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("PATCH", "/privacy-request/{waiting}/access_manual_webhook/crm", '{"first_name": %s}'),
        (
            "PATCH",
            "/connection/crm/access_manual_webhook",
            '{"fields": [{"pii_field": "x", "required": %s}]}',
        ),
        ("POST", "/privacy-request", "%s"),
        ("PATCH", "/privacy-request/administrate/approve", '{"request_ids": [%s]}'),
    ],
)
def test_a_json_number_of_more_than_4300_digits_is_a_clear_400(app, world, method, path, template):
    client = app.test_client()
    before = (_webhook_state(), _entry_state(world.waiting_id), _count(PrivacyRequest))

    response = _api(client, world, method, path.format(waiting=world.waiting_id), template % OVERLONG)

    assert response.status_code == 400
    assert response.get_json() == {"detail": OVERLONG_JSON}
    assert (_webhook_state(), _entry_state(world.waiting_id), _count(PrivacyRequest)) == before


def test_a_json_number_of_4300_digits_is_read(app, world):
    client = app.test_client()
    path = f"/privacy-request/{world.waiting_id}/access_manual_webhook/{WEBHOOK_KEY}"

    response = _api(client, world, "PATCH", path, '{"first_name": %s}' % ("9" * 4300))

    assert response.status_code == 422
    assert response.get_json()["detail"][0]["msg"] == "first_name: must be a string or null"


@pytest.mark.parametrize("path", ["/privacy-request", "/connection"])
def test_an_api_page_beyond_the_limit_is_a_422_naming_it(app, world, path):
    detail = [
        {"loc": ["query", "page"], "msg": "must be an integer from 1 to 1000000", "type": "value_error"}
    ]
    answers = {
        value: app.test_client().get(f"/api/v1{path}?page={value}", headers=world.headers("admin"))
        for value in [*HUGE, OVERLONG]
    }

    assert {value[:20]: r.status_code for value, r in answers.items()} == {
        value[:20]: 422 for value in answers
    }
    assert all(response.get_json() == {"detail": detail} for response in answers.values())


@pytest.mark.parametrize(
    "path",
    ["/requests/", "/packages/", "/admin/audit", "/admin/tokens", "/admin/users", "/admin/connections"],
)
def test_a_huge_page_number_shows_a_normal_page(admin_client, path):
    for value in [*HUGE, OVERLONG, "-" + HUGE[2]]:
        response = admin_client.get(f"{path}?page={value}", follow_redirects=True)

        assert response.status_code == 200, value[:20]
        assert "<h1" in response.get_data(as_text=True)
        assert "Server error" not in text_of(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/users/{}"),
        ("POST", "/admin/users/{}"),
        ("GET", "/admin/users/{}/deactivate"),
        ("POST", "/admin/users/{}/reset-password"),
        ("POST", "/admin/tokens/{}/revoke"),
    ],
)
def test_an_id_out_of_the_database_s_range_is_a_404(admin_client, method, path):
    """Ids are INTEGER columns: on PostgreSQL 2^31 already overflowed (a 500), on SQLite 2^63 did."""
    for value in [*HUGE, OVERLONG, "0", "007", "١"]:
        response = admin_client.open(path.format(value), method=method)

        assert response.status_code == 404, value[:20]
        assert _error_page_message(response) == NOT_FOUND_PAGE  # the route did not match: nothing looked up

    largest = admin_client.open(path.format(2**31 - 1), method=method)
    assert largest.status_code == 404
    assert _error_page_message(largest) in (NOT_FOUND_PAGE, f"No user with id {2**31 - 1}.")


def test_every_integer_in_a_path_is_a_database_id(app):
    """A new route with a plain ``<int:...>`` would let an id beyond 32 bits reach the database."""
    integers = [
        (rule.rule, name)
        for rule in app.url_map.iter_rules()
        for name, converter in rule._converters.items()
        if isinstance(converter, IntegerConverter) and not isinstance(converter, DatabaseIdConverter)
    ]
    assert integers == []
    assert any(
        isinstance(c, DatabaseIdConverter) for r in app.url_map.iter_rules() for c in r._converters.values()
    )


def _audit_events(app):
    for day, action in ((1, "request.created"), (2, "request.approved")):
        db.session.add(
            AuditEvent(
                actor_type="system",
                actor_label="calendar",
                action=action,
                created_at=datetime(2024, 5, day, 12, tzinfo=UTC),
            )
        )
    db.session.commit()


def _exported_actions(admin_client, query: str) -> list[str]:
    exported = admin_client.get(f"/admin/audit.csv?{query}&actor=calendar&actor_match=exact")
    assert exported.status_code == 200, query
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == audit_log.CSV_HEADER
    return [row[4] for row in rows[1:]]


def test_the_audit_log_reaches_both_ends_of_the_calendar(app, admin_client):
    _audit_events(app)
    both = ["request.approved", "request.created"]

    for query in ["date_to=9999-12-31", "date_from=0001-01-01", "date_from=0001-01-01&date_to=9999-12-31"]:
        page = admin_client.get(f"/admin/audit?{query}&actor=calendar&actor_match=exact")
        assert page.status_code == 200, query
        assert "request.approved" in text_of(page) and "request.created" in text_of(page)
        assert _exported_actions(admin_client, query) == both

    assert _exported_actions(admin_client, "date_to=9999-12-30") == both
    assert _exported_actions(admin_client, "date_from=9999-12-31") == []
    assert _exported_actions(admin_client, "date_to=0001-01-01") == []


def test_a_csv_export_whose_query_cannot_run_is_an_error_page_not_a_lone_header(
    app, admin_client, monkeypatch
):
    def broken(filters):
        raise RuntimeError("the database refused the statement")

    monkeypatch.setattr(audit_log, "events_query", broken)

    response = admin_client.get("/admin/audit.csv")

    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "Something went wrong on our side" in _error_page_message(response)


def test_a_csv_export_that_fails_midway_says_so_in_the_file_and_fails_the_download(
    app, admin_client, monkeypatch
):
    _audit_events(app)
    written = []
    real_row = audit_log._csv_row

    def row_then_fail(event):
        if written:
            raise RuntimeError("connection lost")
        written.append(event.id)
        return real_row(event)

    monkeypatch.setattr(audit_log, "CSV_BATCH", 1)
    monkeypatch.setattr(audit_log, "_csv_row", row_then_fail)
    response = admin_client.get("/admin/audit.csv")
    chunks = []

    with pytest.raises(RuntimeError, match="connection lost"):
        for chunk in response.response:
            chunks.append(chunk)

    assert len(written) == 1  # the fault fired after one row went out
    lines = b"".join(chunks).decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(audit_log.CSV_HEADER)
    assert len(lines) == 3
    assert lines[-1] == audit_log.CSV_CUT_OFF


def test_sign_in_with_a_control_character_in_next_goes_to_the_dashboard(app, world):
    admin = world.users["admin"]
    targets = [
        "/requests/\r\nSet-Cookie: stolen=1",
        "/requests/\nLocation: https://evil.example",
        "/requests/\r",
        "/\t/evil.example",
        "/requests/\x1b[2J",
        "/requests/\x7f",
        "/requests/\x85",
    ]
    for target in targets:
        client = app.test_client()

        response = client.post(
            "/auth/login", data={"email": admin.email, "password": TEST_PASSWORD, "next": target}
        )

        assert (response.status_code, response.headers.get("Location")) == (302, "/"), repr(target)
        assert client.get("/").status_code == 200  # signed in


def test_a_control_character_in_the_next_of_a_connection_toggle_goes_to_the_list(admin_client):
    response = admin_client.post(
        f"/admin/connections/{WEBHOOK_KEY}/toggle",
        data={"action": "disable", "next": "/x\r\nSet-Cookie: a=b"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/connections"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "dataset:\n- fides_key: shop\n  collections: []\n  x: " + OVERLONG,
            "a number of more than 4,300 digits",
        ),
        ("dataset:\n- fides_key: shop\n  description: 2024-02-30\n  collections: []", "such as 2024-02-30"),
    ],
)
def test_a_dataset_with_an_unreadable_number_or_date_is_refused(app, text, message):
    with pytest.raises(ValidationFailed) as refused:
        datasets.parse_text(text)

    assert message in str(refused.value)


# --- the field limit -------------------------------------------------------------------------------

TOO_MANY = f"A manual webhook has at most {MAX_FIELDS} fields; this list has {MAX_FIELDS + 1}."


def _field_rows(count: int) -> list[dict]:
    return [{"pii_field": f"Field {n}"} for n in range(count)]


def _editor_data(rows: list[dict], button: str = "save") -> dict:
    data = {button: "y"}
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"fields-{index}-{key}"] = value
    return data


def _store_fields_directly(count: int) -> None:
    """A webhook saved before the limit existed (the API took any number of fields then)."""
    webhook = connections.get_connection(WEBHOOK_KEY).manual_webhook
    fields = webhook_service.normalize_fields(_field_rows(MAX_FIELDS))
    fields = fields + [
        {**fields[0], "pii_field": f"Old {n}", "dsr_package_label": f"old_{n}"}
        for n in range(count - MAX_FIELDS)
    ]
    webhook.fields = [{**field, "id": f"f{n}"} for n, field in enumerate(fields)]
    webhook.version = webhook.version + 1
    db.session.commit()


@pytest.mark.parametrize(("method", "key"), [("PATCH", WEBHOOK_KEY), ("POST", "spare")])
def test_the_api_refuses_more_fields_than_the_limit_with_a_422_naming_it(app, world, method, key):
    before = _webhook_state()

    response = _api(
        app.test_client(),
        world,
        method,
        f"/connection/{key}/access_manual_webhook",
        {"fields": _field_rows(MAX_FIELDS + 1)},
    )

    assert response.status_code == 422
    assert response.get_json() == {
        "detail": [{"loc": ["body", "fields"], "msg": TOO_MANY, "type": "value_error"}]
    }
    assert _webhook_state() == before


def test_the_api_accepts_as_many_fields_as_the_limit(app, world):
    response = _api(
        app.test_client(),
        world,
        "PATCH",
        f"/connection/{WEBHOOK_KEY}/access_manual_webhook",
        {"fields": _field_rows(MAX_FIELDS)},
    )

    assert response.status_code == 200
    assert len(response.get_json()["fields"]) == MAX_FIELDS


def test_the_editor_saves_as_many_rows_as_the_limit_with_long_values(admin_client, world):
    rows = [
        {
            "pii_field": f"Field {n} ".ljust(200, "x"),
            "type": "textarea",
            "required": "y",
            "help_text": "h" * 500,
        }
        for n in range(MAX_FIELDS)
    ]

    saved = admin_client.post(f"/admin/connections/{WEBHOOK_KEY}/fields", data=_editor_data(rows))

    assert saved.status_code == 302, text_of(saved)[:500]
    stored = connections.get_connection(WEBHOOK_KEY).manual_webhook.fields
    assert [f["pii_field"] for f in stored] == [row["pii_field"] for row in rows]
    page = admin_client.get(f"/admin/connections/{WEBHOOK_KEY}/fields").get_data(as_text=True)
    assert page.count("data-field-row") == MAX_FIELDS
    assert 'name="add"' not in page


def test_the_editor_refuses_more_rows_than_the_limit_and_saves_nothing(admin_client, world):
    before = _webhook_state()

    response = admin_client.post(
        f"/admin/connections/{WEBHOOK_KEY}/fields", data=_editor_data(_field_rows(MAX_FIELDS + 1))
    )

    assert response.status_code == 200
    assert TOO_MANY in text_of(response)
    assert "Nothing was saved" in text_of(response)
    assert _webhook_state() == before


def test_the_editor_adds_no_row_beyond_the_limit(admin_client, world):
    response = admin_client.post(
        f"/admin/connections/{WEBHOOK_KEY}/fields", data=_editor_data(_field_rows(MAX_FIELDS), button="add")
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.count("data-field-row") == MAX_FIELDS
    assert 'name="add"' not in page


def test_a_webhook_stored_with_more_fields_than_the_limit_opens_and_saves_in_the_editor(admin_client, world):
    _store_fields_directly(MAX_FIELDS + 50)
    version = connections.get_connection(WEBHOOK_KEY).manual_webhook.version

    page = admin_client.get(f"/admin/connections/{WEBHOOK_KEY}/fields")

    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    assert shown.count("data-field-row") == MAX_FIELDS
    words = " ".join(re.sub(r"<[^>]+>", "", text_of(page)).split())
    assert (
        f"This webhook has {MAX_FIELDS + 50} fields, more than the {MAX_FIELDS} a webhook may have now "
        "(it was saved before that limit)." in words
    )
    assert (
        "The editor shows the first 200: saving here keeps the fields shown and removes the other 50."
        in words
    )

    form = form_values_of(page)
    data = {name: value for name, value in form.items() if name.startswith("fields-")}
    saved = admin_client.post(f"/admin/connections/{WEBHOOK_KEY}/fields", data={**data, "save": "y"})

    assert saved.status_code == 302
    webhook = connections.get_connection(WEBHOOK_KEY).manual_webhook
    assert (len(webhook.fields), webhook.version) == (MAX_FIELDS, version + 1)
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "webhook.changed").order_by(AuditEvent.id.desc())
    ).first()
    assert event.details["removed_labels"] == [f"old_{n}" for n in range(50)]


def test_a_row_number_of_thousands_of_digits_is_ignored_by_the_editor(admin_client, world):
    response = admin_client.post(
        f"/admin/connections/{WEBHOOK_KEY}/fields",
        data={"fields-0-pii_field": "Kept", f"fields-{OVERLONG}-pii_field": "Ignored", "save": "y"},
    )

    assert response.status_code == 302
    assert [f["pii_field"] for f in connections.get_connection(WEBHOOK_KEY).manual_webhook.fields] == ["Kept"]


def test_the_form_limits_leave_room_for_the_largest_field_editor(app):
    # Five inputs a row (pii_field, label, type, required, help_text), the button and the CSRF token.
    assert app.config["MAX_FORM_PARTS"] >= MAX_FIELDS * 5 + 2
    row_bytes = len("fields-199-dsr_package_label=") * 5 + 200 + 200 + 500 + len("textarea")
    assert app.config["MAX_FORM_MEMORY_SIZE"] >= MAX_FIELDS * row_bytes


# --- every route of the url_map, signed in as an admin with an all-scopes token ---------------------
# Each walk sends one class of hostile input to every route and lists every answer that is a server
# error, or a 4xx without a message. Reads go first and deletions (and signing out) last, so one
# world serves a whole walk.

EXTREME_DATES = ["9999-12-31", "0001-01-01", "2024-02-30", "99999-01-01", "yesterday"]
HOSTILE_NEXT = "/requests/\r\nSet-Cookie: stolen=1"
LAST = {
    "api.delete_connection",
    "api.delete_webhook",
    "api.delete_dataset",
    "admin.delete_connection",
    "admin.delete_webhook",
    "admin.delete_dataset",
    "api.delete_storage_config",
    "admin.delete_storage",
    "auth.logout",
}


DATABASE_ENDPOINTS = {
    "admin.database",
    "admin.database_secrets",
    "admin.test_database",
    "admin.save_datasets",
    "admin.download_dataset",
    "admin.delete_dataset",
    "api.list_datasets",
    "api.patch_datasets",
    "api.get_dataset",
    "api.delete_dataset",
    "api.put_secrets",
    "api.test_connection",
}


@pytest.fixture
def walk_world(world, tmp_path):
    """The hardening world, plus a SQLite database connection with a dataset for the database routes."""
    with sqlite_source(tmp_path) as secrets:
        world.extra["database"] = add_database("Shop", "sqlite", secrets, SHOP_YAML).key
        world.extra["secrets"] = secrets
        yield world


def _params(world, endpoint: str) -> dict:
    params = params_for(world, endpoint)
    if endpoint in DATABASE_ENDPOINTS:
        params.update(key=world.extra["database"], fides_key="shop")
    return params


def _url(world, rule) -> str:
    return url_for_rule(rule, _params(world, rule.endpoint))


def _body(world, endpoint: str):
    if endpoint == "api.patch_datasets":
        return yaml.safe_load(SHOP_YAML)["dataset"]
    if endpoint == "api.put_secrets":
        return world.extra["secrets"]
    return api_body(world, endpoint)


def _walk(app) -> list:
    routes = list(route_methods(app))
    return sorted(routes, key=lambda rm: (rm[0].endpoint in LAST, rm[1] != "GET", rm[0].rule, rm[1]))


def _admin(app, world):
    client = app.test_client()
    sign_in(client, world.users["admin"])
    return client


def _with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _call(client, world, rule, method: str, url: str, **kwargs):
    headers = world.headers("admin") if rule.rule.startswith("/api/") else {}
    with client.open(url, method=method, headers=headers, **kwargs) as response:
        response.get_data()
        return response


def test_every_get_route_answers_huge_page_numbers(app, walk_world):
    world = walk_world
    client, wrong, answered = _admin(app, world), [], {}
    for rule, method in _walk(app):
        if method != "GET":
            continue
        base = _url(world, rule)
        for value in [*HUGE, OVERLONG, "-" + HUGE[2]]:
            url = _with_query(base, page=value, size=value, per_page=value, timeline=value)
            response = _call(client, world, rule, method, url)
            answered[(rule.endpoint, value)] = response.status_code
            wrong.append(server_error_or_silence(method, url, response))

    assert [w for w in wrong if w] == []
    assert answered[("requests.queue", OVERLONG)] == 302  # to the last page
    assert answered[("admin.users", OVERLONG)] == 200
    assert answered[("api.list_privacy_requests", OVERLONG)] == 422


def test_every_get_route_answers_extreme_dates(app, walk_world):
    world = walk_world
    _audit_events(app)
    client, wrong, answered = _admin(app, world), [], {}
    for rule, method in _walk(app):
        if method != "GET":
            continue
        base = _url(world, rule)
        queries = [{"date_from": d} for d in EXTREME_DATES] + [{"date_to": d} for d in EXTREME_DATES]
        for query in [*queries, {"date_from": "0001-01-01", "date_to": "9999-12-31"}]:
            url = _with_query(base, **query)
            response = _call(client, world, rule, method, url)
            answered[(rule.endpoint, tuple(query.items()))] = response
            wrong.append(server_error_or_silence(method, url, response))

    assert [w for w in wrong if w] == []
    whole = answered[("admin.audit_csv", (("date_from", "0001-01-01"), ("date_to", "9999-12-31")))]
    assert whole.status_code == 200 and "request.approved" in whole.get_data(as_text=True)
    assert answered[("admin.audit_csv", (("date_to", "2024-02-30"),))].status_code == 400


def test_every_path_segment_answers_huge_and_overlong_numbers(app, walk_world):
    world = walk_world
    client, wrong, ids = _admin(app, world), [], 0
    for rule, method in _walk(app):
        params = _params(world, rule.endpoint)
        body = _body(world, rule.endpoint)
        for name in sorted(rule.arguments - {"filename"}):
            for value in [*HUGE, OVERLONG]:
                url = path_with(rule, {**params, name: value})
                response = _call(client, world, rule, method, url, json=body)
                wrong.append(server_error_or_silence(method, url, response))
                if isinstance(rule._converters[name], DatabaseIdConverter):
                    ids += 1
                    if response.status_code != 404 or problem_of(response) != NOT_FOUND_PAGE:
                        wrong.append(
                            f"{method} {rule.rule} with {name}={value[:20]} → {response.status_code}"
                        )

    assert [w for w in wrong if w] == []
    assert ids >= 6 * 3  # every users and tokens route was tried


def _numbers_in(body, number):
    """``body`` with every scalar replaced by ``number`` (keys kept), or ``number`` itself."""
    if isinstance(body, dict):
        return {key: _numbers_in(value, number) for key, value in body.items()}
    if isinstance(body, list):
        return [_numbers_in(value, number) for value in body]
    return number


def test_every_json_route_answers_huge_integers_in_its_body(app, walk_world):
    world = walk_world
    client, wrong, overlong = app.test_client(), [], 0
    marker = 7_654_321_234_567
    for rule, method in _walk(app):
        if not rule.rule.startswith("/api/") or method not in ("POST", "PATCH", "PUT"):
            continue
        url = _url(world, rule)
        body = _body(world, rule.endpoint)
        shapes = [_numbers_in(body, number) for number in (2**31, 2**64, -(2**63) - 1, 10**40)] + [
            2**64,
            {"x": 2**64},
        ]
        for shape in shapes:
            response = _call(
                client, world, rule, method, url, data=json.dumps(shape), content_type="application/json"
            )
            wrong.append(server_error_or_silence(method, url, response))
        raw = json.dumps(_numbers_in(body, marker)).replace(str(marker), OVERLONG)
        response = _call(client, world, rule, method, url, data=raw, content_type="application/json")
        wrong.append(server_error_or_silence(method, url, response))
        if body is not None:
            overlong += 1
            if (response.status_code, problem_of(response)) != (400, OVERLONG_JSON):
                wrong.append(f"{method} {url} with a {len(OVERLONG)}-digit number → {response.status_code}")

    assert [w for w in wrong if w] == []
    assert overlong >= 10


def _form_field_names(client, world, app) -> set[str]:
    """Every input, select and textarea name on every page an admin can open."""
    names: set[str] = set()
    for rule, method in _walk(app):
        if method == "GET" and not rule.rule.startswith(("/api/", "/static", "/bootstrap")):
            page = _call(client, world, rule, method, _url(world, rule))
            if page.mimetype != "text/html":
                continue
            names |= set(
                re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', page.get_data(as_text=True))
            )
    return names - {"csrf_token"}


@pytest.mark.parametrize("value", [*HUGE[:2], OVERLONG, "9999-12-31", "0001-01-01", "2024-02-30"])
def test_every_html_form_answers_hostile_numbers_and_dates_in_every_field(app, walk_world, value):
    world = walk_world
    client, wrong = _admin(app, world), []
    names = _form_field_names(client, world, app)
    assert {"next", "expires_on", "fields-0-pii_field", "email", "name"} <= names
    for rule, method in _walk(app):
        if method != "POST" or rule.rule.startswith("/api/"):
            continue
        url = _url(world, rule)
        response = _call(client, world, rule, method, url, data=dict.fromkeys(names, value))
        wrong.append(server_error_or_silence(method, url, response))

    assert [w for w in wrong if w] == []


# Form data with which each form does what it is for, so that it reaches its redirect.
NEXT_FORM_DATA = {
    **FORM_DATA,
    "auth.login": {"password": TEST_PASSWORD},
    "admin.toggle_connection": {"action": "disable"},
}


@pytest.mark.parametrize("target", [HOSTILE_NEXT, "/\t/evil.example", "/x\x7f", "//evil.example"])
def test_no_form_follows_a_next_with_control_characters_or_to_another_site(app, walk_world, target):
    world, wrong, redirects = walk_world, [], 0
    for rule, method in _walk(app):
        if method != "POST" or rule.rule.startswith("/api/"):
            continue
        client = app.test_client() if rule.endpoint == "auth.login" else _admin(app, world)
        data = {**NEXT_FORM_DATA.get(rule.endpoint, {}), "next": target}
        if rule.endpoint == "auth.login":
            data["email"] = world.users["admin"].email
        url = _with_query(_url(world, rule), next=target)
        response = _call(client, world, rule, method, url, data=data)
        wrong.append(server_error_or_silence(method, url, response))
        if response.status_code in (301, 302, 303):
            redirects += 1
            location = response.headers["Location"]
            if not location.startswith("/") or location.startswith("//") or "evil" in location:
                wrong.append(f"{method} {rule.rule} → {location!r}")

    assert [w for w in wrong if w] == []
    assert redirects >= 15


def test_every_route_answers_with_a_webhook_longer_than_the_limit(app, walk_world):
    world = walk_world
    _store_fields_directly(MAX_FIELDS + 50)
    client, wrong, answered = _admin(app, world), [], {}
    for rule, method in _walk(app):
        url = _url(world, rule)
        body = _body(world, rule.endpoint)
        kwargs = {"json": body} if body is not None else {"data": FORM_DATA.get(rule.endpoint)}
        response = _call(client, world, rule, method, url, **kwargs)
        answered[(rule.endpoint, method)] = response.status_code
        wrong.append(server_error_or_silence(method, url, response))

    assert [w for w in wrong if w] == []
    assert answered[("admin.webhook_fields", "GET")] == 200
    assert answered[("requests.manual_input", "GET")] == 200
    assert answered[("api.get_webhook", "GET")] == 200
