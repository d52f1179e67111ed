"""The team workflow in the browser (HTML, no JavaScript): My tasks, claiming and handing over from the
request page, admins' bulk assignment and webhook owners, notes in the timeline, extending, canceling."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, PrivacyRequest
from portal.services import notes, tasks
from tests.factories import make_user
from tests.workflow_helpers import add_webhook, field, new_request


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def csrf(client, url: str) -> str:
    found = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"',
        text(client.get(url)),
    )
    return found.group(1) or found.group(2)


def rows(request_id: str) -> dict:
    db.session.expire_all()
    return {row.connection_key: row for row in tasks.request_tasks(request_id)}


def test_staff_claims_from_my_tasks_unassigned_tab_and_sees_it_in_my_tasks(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    staff = login_as("staff", name="Sam Staff")
    request_id = new_request()
    task = rows(request_id)["crm"]

    page = text(client.get("/tasks/?view=unassigned"))
    assert "CRM" in page and "Claim" in page
    assert "You have no open tasks" in text(client.get("/tasks/"))

    token = csrf(client, "/tasks/?view=unassigned")
    response = client.post(f"/tasks/{task.id}/claim", data={"csrf_token": token, "next": "/tasks/"})
    assert response.status_code == 302 and response.headers["Location"] == "/tasks/"
    assert rows(request_id)["crm"].assignee_id == staff.id
    mine = text(client.get("/tasks/"))
    assert "Enter data" in mine and "Sam Staff" in mine and "0 of 1" in mine


def test_a_second_claim_is_told_who_has_the_task(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    other = make_user(role="staff", name="Olga Other")
    request_id = new_request()
    task = rows(request_id)["crm"]
    from portal.models.audit import Actor

    tasks.claim(task.id, Actor.for_user(other))
    db.session.commit()
    login_as("staff")

    token = csrf(client, "/tasks/?view=all")
    page = text(client.post(f"/tasks/{task.id}/claim", data={"csrf_token": token}, follow_redirects=True))
    assert "already claimed by Olga Other" in page


def test_admin_sets_owners_and_bulk_assigns_from_the_list(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    login_as("admin")
    sam = make_user(role="staff", name="Sam Staff")
    ids = [new_request(email=f"b{n}@example.com") for n in range(2)]
    task_ids = [rows(request_id)["crm"].id for request_id in ids]

    page = text(client.get("/tasks/?view=unassigned"))
    assert "Assign selected" in page
    token = csrf(client, "/tasks/?view=unassigned")
    response = client.post(
        "/tasks/assign",
        data={
            "csrf_token": token,
            "user_id": str(sam.id),
            "task": [str(i) for i in task_ids],
            "next": "/tasks/?view=all",
        },
        follow_redirects=True,
    )
    assert "2 tasks assigned." in text(response)
    assert {rows(i)["crm"].assignee_id for i in ids} == {sam.id}


def test_staff_cannot_bulk_assign(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    login_as("staff")
    request_id = new_request()
    token = csrf(client, "/tasks/")
    response = client.post(
        "/tasks/assign", data={"csrf_token": token, "user_id": "1", "task": [str(rows(request_id)["crm"].id)]}
    )
    assert response.status_code == 403
    assert rows(request_id)["crm"].assignee_id is None


def test_notes_show_escaped_with_line_breaks_and_only_author_or_admin_may_delete(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    author = login_as("staff", name="Ann Author")
    request_id = new_request()
    url = f"/requests/{request_id}"
    token = csrf(client, url)

    client.post(
        f"{url}/notes", data={"note-csrf_token": token, "note-body": "line one\r\n<script>x</script>"}
    )

    raw = client.get(url).get_data(as_text=True)
    assert "line one\n&lt;script&gt;x&lt;/script&gt;" in raw and "<script>x</script>" not in raw
    assert "Ann Author" in raw and "Delete note" in raw
    note = notes.list_notes(request_id)[0]
    assert note.author_id == author.id
    assert f'action="{url}/notes/{note.id}/delete"' in raw  # the form posts to this note's delete route

    login_as("staff", name="Not Author")
    assert "Delete note" not in text(client.get(url))
    response = client.post(
        f"{url}/notes/{note.id}/delete", data={"csrf_token": csrf(client, url)}, follow_redirects=True
    )
    assert "Only the note's author or an admin" in text(response)
    login_as("admin")
    client.post(f"{url}/notes/{note.id}/delete", data={"csrf_token": csrf(client, url)})
    assert notes.list_notes(request_id) == []
    assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc())) == "note.deleted"


def test_extend_and_cancel_from_the_request_page(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    login_as("admin")
    request_id = new_request()
    url = f"/requests/{request_id}"
    original = db.session.get(PrivacyRequest, request_id).due_date
    token = csrf(client, url)

    page = text(
        client.post(
            f"{url}/extend",
            data={
                "extend-csrf_token": token,
                "extend-preset": "ccpa",
                "extend-reason": "Archive",
                "extend-subject_told": "y",
            },
            follow_redirects=True,
        )
    )
    assert "Deadline extended to" in page
    assert f"Original due date{original:%Y-%m-%d}" in re.sub(r"<[^>]+>|\s", "", page).replace(
        "Originalduedate", "Original due date"
    )
    assert "Subject told on" in page
    page = text(
        client.post(
            f"{url}/extend",
            data={"extend-csrf_token": token, "extend-preset": "ccpa", "extend-reason": "Again"},
            follow_redirects=True,
        )
    )
    assert "Not extended: CCPA §7021 allows one extension only" in page

    page = text(
        client.post(
            f"{url}/cancel",
            data={"cancel-csrf_token": token, "cancel-reason": "Withdrawn by the subject"},
            follow_redirects=True,
        )
    )
    assert "Canceled: its tasks are closed" in page and "Withdrawn by the subject" in page
    assert {row.status for row in rows(request_id).values()} == {"closed"}


def test_deactivating_a_user_tells_the_admin_how_many_tasks_became_unassigned(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    login_as("admin")
    sam = make_user(role="staff", name="Sam Staff")
    request_id = new_request()
    from portal.models.audit import Actor

    tasks.claim(rows(request_id)["crm"].id, Actor.for_user(sam))
    db.session.commit()
    url = f"/admin/users/{sam.id}/deactivate"
    token = csrf(client, url)

    page = text(client.post(url, data={"csrf_token": token}, follow_redirects=True))
    assert "1 task became unassigned" in page
    dashboard = " ".join(re.sub(r"<[^>]+>", " ", text(client.get("/"))).split())
    assert "1 unassigned task needs an owner" in dashboard
    assert "Unassigned 1 0 0" in dashboard  # the workload table


def test_admin_sets_a_webhook_s_owners_on_its_page_and_new_tasks_go_to_them(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    login_as("admin")
    sam = make_user(role="staff", name="Sam Staff")
    make_user(role="reviewer", name="Rex Reviewer")
    page = text(client.get("/admin/connections/crm/fields"))
    assert "Sam Staff" in page and "Rex Reviewer" not in page
    token = csrf(client, "/admin/connections/crm/fields")

    response = client.post(
        "/admin/connections/crm/owners",
        data={"csrf_token": token, "owner": [str(sam.id)]},
        follow_redirects=True,
    )

    assert "Owners of “CRM”: Sam Staff." in text(response)
    assert rows(new_request())["crm"].assignee_id == sam.id
    assert db.session.scalar(
        sa.select(AuditEvent.action).where(AuditEvent.action == "webhook.owners_changed")
    )


def test_the_request_page_hands_a_task_over_with_one_form(app, client, login_as):
    add_webhook("crm", [field("Name")], name="CRM")
    add_webhook("erp", [field("Order")], name="ERP")
    sam = make_user("staff", name="Sam Staff")
    me = login_as("staff", name="Me Myself")
    request_id = new_request()
    url = f"/requests/{request_id}"
    token = csrf(client, url)
    client.post(f"/tasks/{rows(request_id)['crm'].id}/claim", data={"csrf_token": token, "next": url})

    raw = client.get(url).get_data(as_text=True)
    # One list of people on the page, and only my own task to hand over.
    assert raw.count('name="user_id"') == 1 and raw.count("Sam Staff</option>") == 1
    handable = re.search(r'<select[^>]*id="hand-task"[^>]*>(.*?)</select>', raw, re.S).group(1)
    assert handable.strip() == f'<option value="{rows(request_id)["crm"].id}">CRM</option>'  # not ERP's

    response = client.post(
        "/tasks/hand-over",
        data={
            "csrf_token": token,
            "next": url,
            "task": str(rows(request_id)["crm"].id),
            "user_id": str(sam.id),
        },
        follow_redirects=True,
    )
    assert "The task for CRM went to Sam Staff." in text(response)
    assert rows(request_id)["crm"].assignee_id == sam.id and me.id != sam.id
    # Someone else's task cannot be handed on by staff, whatever the form says.
    response = client.post(
        "/tasks/hand-over",
        data={
            "csrf_token": token,
            "next": url,
            "task": str(rows(request_id)["crm"].id),
            "user_id": str(me.id),
        },
        follow_redirects=True,
    )
    assert rows(request_id)["crm"].assignee_id == sam.id
    assert "Choose the task" not in text(response)
