"""The admin audit log: access, order, filters, pagination, CSV export, escaping, and no personal data."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent
from portal.models.audit import Actor
from tests.test_packages import SUBJECT_EMAIL, completed_request

ADA = Actor("user", "ada@example.com", user_id=None)
BOB = Actor("user", "bob@example.com")
CSV_HEADER = ["id", "time_utc", "actor", "actor_kind", "action", "request_id", "connection_key", "details"]


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def plain(response) -> str:
    """The page's text without tags, whitespace collapsed: what a person reads."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def event(action: str, at: datetime, actor: Actor = ADA, request_id=None, connection_key=None, **details):
    """An event as ``record`` writes it, at a given time."""
    e = AuditEvent(
        created_at=at,
        actor_type=actor.kind,
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label,
        action=action,
        privacy_request_id=request_id,
        connection_key=connection_key,
        details=details,
    )
    db.session.add(e)
    db.session.commit()
    return e


def day(d: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2024, 5, d, hour, minute, tzinfo=UTC)


def shown_request_ids(response) -> list[str]:
    return re.findall(r"<code>(pri_[a-z0-9_]+)</code>", response.get_data(as_text=True))


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))


@pytest.fixture
def admin(login_as):
    return login_as("admin")


# --- access ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/admin/audit", "/admin/audit.csv"])
@pytest.mark.parametrize("role", ["staff", "reviewer"])
def test_only_admins_may_read_the_audit_log(client, login_as, route, role):
    login_as(role)
    assert client.get(route).status_code == 403


@pytest.mark.parametrize("route", ["/admin/audit", "/admin/audit.csv"])
def test_admins_may_read_the_audit_log_and_signed_out_users_go_to_login(client, login_as, route):
    response = client.get(route)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    login_as("admin")
    assert client.get(route).status_code == 200


def test_the_nav_links_the_audit_log_for_admins(client, admin):
    assert 'href="/admin/audit"' in client.get("/").get_data(as_text=True)


def test_events_cannot_be_edited_or_deleted_through_any_route(client, app, admin):
    event("request.created", day(1), request_id="pri_keep")
    audit_rules = [rule for rule in app.url_map.iter_rules() if "audit" in rule.rule]
    assert {rule.endpoint for rule in audit_rules} == {"admin.audit", "admin.audit_csv"}
    for rule in audit_rules:
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}
    for method in (client.post, client.put, client.delete, client.patch):
        assert method("/admin/audit").status_code == 405
    assert db.session.scalar(select(func.count()).where(AuditEvent.privacy_request_id == "pri_keep")) == 1


# --- the page --------------------------------------------------------------------------------------


def test_events_are_shown_newest_first_with_their_columns(client, admin):
    event("request.created", day(1), request_id="pri_first")
    event("manual_input.saved", day(2), BOB, request_id="pri_second", connection_key="crm", labels=["a", "b"])
    event("token.created", day(3), Actor("token", "token:ci (ada@example.com)"), token_name="ci")
    event("request.completed", day(4), Actor.system(), request_id="pri_third")

    response = client.get("/admin/audit?date_to=2024-05-31")
    page = text_of(response)
    assert shown_request_ids(response)[:3] == ["pri_third", "pri_second", "pri_first"]
    assert "4 events match the filters." in page
    assert "2024-05-02 12:00 UTC" in page and "ago" in page
    assert "bob@example.com" in page and "User" in page
    assert "token:ci (ada@example.com)" in page and "API token" in page
    assert "System" in page
    assert "manual_input.saved" in page and "crm" in page
    assert "labels: a, b" in plain(response)
    assert "token_name: ci" in plain(response)


def test_details_are_escaped(client, admin):
    event("connection.changed", day(1), connection_key="<i>k</i>", name="<script>alert(1)</script>")
    body = client.get("/admin/audit").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body and "<i>k</i>" not in body
    assert "name:</span> &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;i&gt;k&lt;/i&gt;" in body


def test_request_ids_link_to_the_request_page_when_it_exists(client, app, admin):
    event("request.created", day(1), request_id="pri_linked")
    body = client.get("/admin/audit").get_data(as_text=True)
    if "requests.detail" in app.view_functions:
        assert 'href="/requests/pri_linked"' in body
    else:
        assert "<code>pri_linked</code>" in body and 'href="/requests/' not in body


def test_the_log_is_paginated_and_pages_keep_the_filters(client, app, admin):
    for n in range(1, 6):
        event("request.created", day(n), request_id=f"pri_{n}")
    app.config["PAGE_SIZE"] = 2
    first = client.get("/admin/audit?action=request.created")
    assert shown_request_ids(first) == ["pri_5", "pri_4"]
    assert "Page 1 of 3." in text_of(first)
    assert "/admin/audit?action=request.created&amp;page=2" in first.get_data(as_text=True)
    last = client.get("/admin/audit?action=request.created&page=3")
    assert shown_request_ids(last) == ["pri_1"]
    beyond = text_of(client.get("/admin/audit?action=request.created&page=9"))
    assert "There are no events on page 9." in beyond


def test_empty_states(client, admin):
    page = text_of(client.get("/admin/audit?action=package.viewed"))
    assert "No events match these filters." in page


# --- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def sample(app):
    event("request.created", day(1, 0, 0), ADA, request_id="pri_a")
    event("request.approved", day(1, 23, 59), BOB, request_id="pri_a")
    event("package.viewed", day(2, 0, 0), BOB, request_id="pri_b")
    event("login.failed", day(3), Actor("user", "100%_sure@example.com"))
    event("login.failed", day(3, 13), Actor("user", "1000xsure@example.com"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("request_id=pri_a", ["request.approved", "request.created"]),
        ("request_id=+pri_b+", ["package.viewed"]),
        ("actor=BOB", ["package.viewed", "request.approved"]),
        ("actor=bob@example.com&actor_match=exact", ["package.viewed", "request.approved"]),
        ("actor=bob@example&actor_match=exact", []),
        ("actor=100%25_", ["login.failed"]),  # % and _ are literal, not wildcards
        ("action=package.viewed", ["package.viewed"]),
        ("date_from=2024-05-01&date_to=2024-05-01", ["request.approved", "request.created"]),
        ("date_from=2024-05-02&date_to=2024-05-02", ["package.viewed"]),
        ("date_from=2024-05-03&date_to=2024-05-03", ["login.failed", "login.failed"]),
        ("date_to=2024-05-01&actor=ada", ["request.created"]),
    ],
)
def test_filters(client, admin, sample, query, expected):
    body = client.get(f"/admin/audit?{query}").get_data(as_text=True)
    assert re.findall(r"<td><code>([a-z_.]+)</code></td>", body) == expected
    rows = csv_rows(client.get(f"/admin/audit.csv?{query}"))
    assert [row[4] for row in rows[1:]] == expected


def test_the_action_filter_offers_known_and_recorded_actions(client, admin):
    event("custom.thing", day(1))
    body = client.get("/admin/audit").get_data(as_text=True)
    select_html = re.search(r'<select[^>]*name="action".*?</select>', body, re.S).group(0)
    options = re.findall(r'<option[^>]*value="([^"]*)"', select_html)
    assert options[0] == ""
    assert {"package.viewed", "package.downloaded", "manual_input.saved", "custom.thing"} <= set(options)
    assert options[1:] == sorted(options[1:])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date_from=2024-05-02&date_to=2024-05-01", "The end date is before the start date."),
        ("action=no.such", "Not a valid choice."),
        ("date_from=yesterday", "Not a valid date value."),
    ],
)
def test_invalid_filters_show_the_problem_and_no_events(client, admin, sample, query, message):
    page = text_of(client.get(f"/admin/audit?{query}"))
    assert message in page
    assert "The filters above are not valid, so no events are shown." in page
    assert "pri_a" not in page
    response = client.get(f"/admin/audit.csv?{query}")
    assert response.status_code == 400
    assert message in text_of(response)


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_export_has_a_header_and_one_row_per_event_newest_first(client, admin):
    first = event("request.created", day(1), request_id="pri_a", policy="default_access_policy")
    second = event("manual_input.saved", day(2), BOB, request_id="pri_a", connection_key="crm", version=2)
    response = client.get("/admin/audit.csv?request_id=pri_a")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.fullmatch(
        r"attachment; filename=audit-log-\d{8}-\d{6}\.csv", response.headers["Content-Disposition"]
    )
    assert csv_rows(response) == [
        CSV_HEADER,
        [
            str(second.id),
            "2024-05-02T12:00:00+00:00",
            "bob@example.com",
            "user",
            "manual_input.saved",
            "pri_a",
            "crm",
            '{"version": 2}',
        ],
        [
            str(first.id),
            "2024-05-01T12:00:00+00:00",
            "ada@example.com",
            "user",
            "request.created",
            "pri_a",
            "",
            '{"policy": "default_access_policy"}',
        ],
    ]


def test_csv_export_is_injection_safe(client, admin):
    event("login.failed", day(1), Actor("user", '=HYPERLINK("http://evil","x")'))
    event("login.failed", day(2), Actor("user", "@SUM(1+1)"))
    event("connection.changed", day(3), connection_key="-cmd")
    rows = csv_rows(client.get("/admin/audit.csv?date_to=2024-05-31"))
    assert [row[2] for row in rows[1:]] == [
        "ada@example.com",
        "'@SUM(1+1)",
        '\'=HYPERLINK("http://evil","x")',
    ]
    assert rows[1][6] == "'-cmd"


def test_the_csv_streams_more_rows_than_one_batch(client, admin, monkeypatch):
    from portal.services import audit_log

    monkeypatch.setattr(audit_log, "CSV_BATCH", 2)
    for n in range(5):
        event("request.created", day(n + 1), request_id=f"pri_{n}")
    rows = csv_rows(client.get("/admin/audit.csv?action=request.created"))
    assert [row[5] for row in rows[1:]] == ["pri_4", "pri_3", "pri_2", "pri_1", "pri_0"]


# --- no personal data ------------------------------------------------------------------------------


def test_no_identity_or_entered_values_appear_in_the_audit_log(client, login_as):
    phone = "+4915112345678"
    request_id = completed_request(
        {"first_name": "Janet", "notes": "Secret note"}, identity={"phone_number": phone}
    )
    login_as("reviewer")
    client.get(f"/packages/{request_id}")
    client.get(f"/packages/{request_id}/package.zip")
    login_as("admin")

    page = text_of(client.get(f"/admin/audit?request_id={request_id}"))
    exported = client.get(f"/admin/audit.csv?request_id={request_id}").data.decode("utf-8-sig")
    for text in (page, exported):
        assert "package.viewed" in text and "package.downloaded" in text and "format" in text
        for value in (SUBJECT_EMAIL, phone, "Janet", "Secret note"):
            assert value not in text
