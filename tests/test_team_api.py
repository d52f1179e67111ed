"""The team workflow through /api/v1: the same rules as the pages (tasks, claims racing, notes,
extensions, cancel), documented in the OpenAPI document as this portal's additions."""

from __future__ import annotations

import threading

import pytest

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import tasks, tokens
from tests.factories import make_user
from tests.workflow_helpers import add_webhook, field, new_request

V1 = "/api/v1"


@pytest.fixture
def api(app, client):
    def _make(role: str = "staff", **kwargs):
        user = make_user(role=role, **kwargs)
        _, secret = tokens.create_token(user, "test", Actor.system("test"))
        db.session.commit()
        headers = {"Authorization": f"Bearer {secret}"}

        def call(method: str, path: str, body=None):
            return client.open(V1 + path, method=method, headers=headers, json=body)

        call.user, call.headers = user, headers
        return call

    return _make


@pytest.fixture
def crm(app):
    return add_webhook("crm", [field("Name")], name="CRM")


def task_id(request_id: str) -> int:
    db.session.expire_all()
    return tasks.request_tasks(request_id)[0].id


def test_staff_lists_claims_hands_over_and_gives_back(api, crm):
    sam, tia = api(name="Sam Staff"), api(name="Tia Staff")
    request_id = new_request()
    tid = task_id(request_id)

    listed = sam("GET", "/task?view=unassigned").json
    assert listed["total"] == 1 and listed["items"][0]["connection_key"] == "crm"
    assert listed["items"][0]["systems"] == 1 and listed["items"][0]["systems_done"] == 0
    assert sam("POST", f"/task/{tid}/claim").json["assignee"] == "Sam Staff"
    refused = tia("POST", f"/task/{tid}/claim")
    assert refused.status_code == 400 and refused.json == {
        "detail": "This task was already claimed by Sam Staff."
    }
    assert sam("GET", "/task").json["total"] == 1
    assert tia("POST", f"/task/{tid}/release").status_code == 403
    handed = sam("POST", f"/task/{tid}/assign", {"user_id": tia.user.id})
    assert handed.status_code == 200 and handed.json["assignee_id"] == tia.user.id
    assert tia("POST", f"/task/{tid}/release").json["assignee_id"] is None
    assert sam("GET", "/task?due=later").status_code == 422


def test_two_clients_claiming_one_task_at_once_one_wins(app, api, crm):
    callers = [api(name=f"Staff {n}") for n in range(2)]
    tid = task_id(new_request())
    barrier = threading.Barrier(2)
    answers: list = []

    def attempt(call):
        with app.test_client() as own:
            barrier.wait()
            response = own.post(f"{V1}/task/{tid}/claim", headers=call.headers)
            answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=attempt, args=(call,)) for call in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [200, 400]
    loser = next(body for status, body in answers if status == 400)
    assert loser["detail"].startswith("This task was already claimed by Staff ")


def test_bulk_assign_needs_the_admin_scope(api, crm):
    staff, admin = api(), api("admin")
    ids = [task_id(new_request(email=f"b{n}@example.com")) for n in range(2)]
    assert staff("POST", "/task/assign", {"task_ids": ids, "user_id": staff.user.id}).status_code == 403
    done = admin("POST", "/task/assign", {"task_ids": ids, "user_id": staff.user.id})
    assert done.json == {"assigned": 2, "failed": []}


def test_notes_add_list_delete(api, crm):
    staff, other, reviewer = api(name="Sam Staff"), api(), api("reviewer")
    request_id = new_request()
    added = staff("POST", f"/privacy-request/{request_id}/note", {"body": "Line 1\nLine <2>"})
    assert (
        added.status_code == 201
        and added.json["body"] == "Line 1\nLine <2>"
        and added.json["author"] == "Sam Staff"
    )
    assert [n["body"] for n in reviewer("GET", f"/privacy-request/{request_id}/note").json] == [
        "Line 1\nLine <2>"
    ]
    assert reviewer("POST", f"/privacy-request/{request_id}/note", {"body": "x"}).status_code == 403
    assert staff("POST", f"/privacy-request/{request_id}/note", {"body": "x" * 5001}).status_code == 422
    note_id = added.json["id"]
    assert other("DELETE", f"/privacy-request/{request_id}/note/{note_id}").status_code == 403
    assert staff("DELETE", f"/privacy-request/{request_id}/note/{note_id}").status_code == 204
    assert staff("GET", f"/privacy-request/{request_id}/note").json == []


def test_extend_is_refused_with_the_rule_and_cancel_closes_tasks(api, crm):
    admin = api("admin")
    request_id = new_request()
    first = admin("POST", f"/privacy-request/{request_id}/extend", {"preset": "ccpa", "reason": "Volume"})
    assert (
        first.status_code == 200 and first.json["preset"] == "ccpa" and first.json["subject_told_at"] is None
    )
    second = admin("POST", f"/privacy-request/{request_id}/extend", {"preset": "ccpa", "reason": "Again"})
    assert second.status_code == 400 and "one extension only" in second.json["detail"]
    assert (
        admin("POST", f"/privacy-request/{request_id}/extend", {"preset": "eu", "reason": "x"}).status_code
        == 422
    )

    canceled = admin("POST", f"/privacy-request/{request_id}/cancel", {"reason": "Withdrawn"})
    assert canceled.status_code == 200 and canceled.json["status"] == "canceled"
    db.session.expire_all()
    assert [row.status for row in tasks.request_tasks(request_id)] == ["closed"]
    assert admin("POST", f"/privacy-request/{request_id}/cancel").status_code == 400


def test_the_additions_are_documented_as_the_portal_s_own(api):
    document = api("admin")("GET", "/openapi.json").json
    for path in (
        "/task",
        "/task/{task_id}/claim",
        "/privacy-request/{request_id}/note",
        "/privacy-request/{request_id}/extend",
    ):
        for operation in document["paths"][path].values():
            assert (
                operation["x-portal-addition"] is True and "addition to fidesops" in operation["description"]
            )
    assert "x-portal-addition" not in document["paths"]["/privacy-request"]["get"]
