"""Regenerate docs/screenshots/*.png from the demo data: ``make screenshots``.

Serves the portal on a throw-away SQLite database seeded with ``seed-demo`` (plus a webhook without fields
and an overdue request, so the dashboards have something to point at), signs in as each role in headless
Chromium, and saves the main pages.
"""

from __future__ import annotations

import io
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select, update

from portal.demo import DEMO_WEBHOOK_KEY, seed_demo
from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, Task, utcnow
from portal.models.audit import Actor
from portal.services import delivery, manual_inputs, notes, tasks, users
from portal.services.attachments import Upload
from tests.e2e.helpers import (
    SETUP,
    Browsing,
    LiveServer,
    chromium_unavailable_reason,
    launch_chromium,
    migrate_template,
)

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SUPPORT_KEY = "zendesk_support_eu"


def _seed(server: LiveServer) -> dict[str, str]:
    for role in ("admin", "staff", "reviewer"):
        server.create_user(role, name=f"Demo {role}")
    with server.app.app_context():
        seed_demo()
        db.session.commit()
    server.create_webhook("Paper archive (Berlin office)", [])
    overdue = server.create_request("customer-6@example.com", external_id="DEMO-4")
    with server.app.app_context():
        late = db.session.get(PrivacyRequest, overdue)
        late.created_at = utcnow() - timedelta(days=33)
        late.due_date = utcnow() - timedelta(days=3)
        # Its tasks carry the due date too (test data written around the services, which keep both).
        db.session.execute(
            update(Task).where(Task.privacy_request_id == overdue).values(due_date=late.due_date)
        )
        db.session.commit()
        waiting = sorted(  # by external id, in Python: it is encrypted
            db.session.scalars(
                select(PrivacyRequest).where(PrivacyRequest.status == RequestStatus.REQUIRES_INPUT)
            ),
            key=lambda pr: pr.external_id or "",
        )
        complete = db.session.scalars(
            select(PrivacyRequest).where(PrivacyRequest.status == RequestStatus.COMPLETE)
        ).first()
        # Staff have claimed the tasks of two waiting requests, and left a note on one.
        staff = Actor.for_user(users.find_by_email("staff@example.com"))
        for request_id in (waiting[0].id, overdue):
            for task in tasks.request_tasks(request_id):
                if task.status == "open" and task.assignee_id is None:
                    tasks.claim(task.id, staff)
        notes.add_note(waiting[0].id, "Called the customer: the CRM account was merged in March.", staff)
        half, complete_id = waiting[0].id, complete.id
        db.session.commit()
    # A system answered with files: a vendor portal's exports, attached to the same waiting request.
    server.create_webhook(
        "Vendor portal exports",
        [
            {"pii_field": "Exports", "dsr_package_label": "exports", "type": "file"},
            {"pii_field": "Account number", "dsr_package_label": "account_number", "type": "text"},
        ],
        key=VENDOR_KEY,
    )
    with server.app.app_context():
        uploads = {
            "exports": [
                Upload("order-history.csv", io.BytesIO(b"order,date,total\nA-1001,2026-03-02,49.90\n")),
                Upload("support-ticket.pdf", io.BytesIO(_DEMO_PDF)),
            ]
        }
        manual_inputs.save_manual_input(
            half, VENDOR_KEY, {"account_number": "V-20931"}, staff, uploads=uploads
        )
        db.session.commit()
    return {"half": half, "complete": complete_id}


SCREENSHOT_CODE = "246810"
VENDOR_KEY = "vendor_portal_exports"
# The smallest PDF a viewer opens: one empty page.
_DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _subject_link(server: LiveServer, request_id: str) -> str:
    """Approve the package as a reviewer would, and return the subject's link (the demo's mail server is
    the console, which withholds it)."""
    links: dict[str, str] = {}
    with server.app.app_context():
        links["link"] = urlsplit(delivery.approve(request_id, SETUP).url).path
        db.session.commit()
    return links["link"]


def _known_code(server: LiveServer, request_id: str) -> None:
    """Test data: the code just mailed (withheld by the console) replaced by one the script can type."""
    with server.app.app_context():
        found = delivery.delivery_for(request_id)
        found.code_hash = delivery._code_hash(found.id, SCREENSHOT_CODE)
        db.session.commit()


def _shoot(page, name: str, full_page: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path.relative_to(OUT.parents[1])}")


def main() -> int:
    reason = chromium_unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        database = migrate_template(Path(folder))
        server = LiveServer(database, Path(folder) / "instance")
        server.start()
        try:
            ids = _seed(server)
            with launch_chromium() as browser:
                staff = Browsing(browser, server)
                page = staff.sign_in("staff@example.com")
                _shoot(page, "dashboard-staff")
                page.goto("/tasks/")
                _shoot(page, "my-tasks")
                page.goto("/requests/")
                _shoot(page, "queue")
                page.goto(f"/requests/{ids['half']}")
                _shoot(page, "request")
                page.goto(f"/requests/{ids['half']}/manual/{SUPPORT_KEY}")
                _shoot(page, "manual-input-form")
                page.goto(f"/requests/{ids['half']}/manual/{VENDOR_KEY}")
                _shoot(page, "manual-input-attachments")
                staff.close()

                phone = Browsing(browser, server, width=360, height=740)
                page = phone.sign_in("staff@example.com")
                page.goto(f"/requests/{ids['half']}/manual/{DEMO_WEBHOOK_KEY}")
                _shoot(page, "manual-input-form-360px")
                phone.close()

                admin = Browsing(browser, server)
                page = admin.sign_in("admin@example.com")
                _shoot(page, "dashboard-admin")
                page.goto(f"/admin/connections/{DEMO_WEBHOOK_KEY}/fields")
                _shoot(page, "webhook-editor")
                admin.close()

                reviewer = Browsing(browser, server)
                page = reviewer.sign_in("reviewer@example.com")
                page.goto(f"/packages/{ids['complete']}")
                _shoot(page, "package")
                reviewer.close()

                subject = Browsing(browser, server)
                page = subject.page
                page.goto(_subject_link(server, ids["complete"]))
                page.get_by_role("button", name="Email me a code").click()
                page.get_by_label("Six-digit code").wait_for()
                _known_code(server, ids["complete"])
                page.get_by_label("Six-digit code").fill(SCREENSHOT_CODE)
                page.get_by_role("button", name="Open my data").click()
                _shoot(page, "delivery-subject")
                subject.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
