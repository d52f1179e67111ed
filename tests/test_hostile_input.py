"""Hostile input (issue 8, part 3): property-based on the services, then through forms and the API.

Every input is either stored and shown back verbatim (escaped), or refused with a clear 4xx and nothing
written; never a server error, never half a write. Hypothesis runs derandomized (the same examples on
every run, so CI cannot flake) and is pinned in requirements-dev.txt.
"""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, ConnectionConfig, ManualInput, ManualWebhook, PrivacyRequest
from portal.services import DomainError, ValidationFailed, connections, manual_inputs, privacy_requests
from portal.services import webhooks as webhook_service
from portal.services.connections import KEY_PATTERN
from portal.services.manual_inputs import MAX_VALUE_LENGTH
from tests.hardening_helpers import FIELDS, TEST_ACTOR, WEBHOOK_KEY, build_world, sign_in, text_of


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
        stored = value if value.strip() else None  # blank means "not entered"
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
