"""The last mile in a real browser: staff resume → a reviewer approves → the subject's mail arrives at a
local SMTP server → the subject opens the link, enters the code mailed to them, downloads the ZIP."""

import json
import re
import shutil
import time
import zipfile

import pytest

from tests.e2e.helpers import Browsing, LiveServer, expect
from tests.mail_helpers import SMTPServer, mail_config

pytestmark = pytest.mark.e2e

SUBJECT = "jane.delivery@example.com"


@pytest.fixture
def smtp():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailing_server(template_database, tmp_path, smtp):
    database = tmp_path / "portal.sqlite3"
    shutil.copyfile(template_database, database)
    server = LiveServer(database, tmp_path / "instance", extra=mail_config(smtp.port))
    server.start()
    server.app.config["BASE_URL"] = server.url
    yield server
    server.stop()
    server.assert_no_server_errors()


@pytest.fixture
def people(browser, mailing_server):
    """Three people, each in a browser context of their own: staff, a reviewer, the data subject."""
    sessions = [Browsing(browser, mailing_server) for _ in range(3)]
    yield sessions
    for session in sessions:
        session.close()
    for session in sessions:
        session.assert_no_page_errors()


def _wait_for(smtp, subject_word: str, count: int = 1):
    """The mail, sent after the response (the development server sends it from a thread: it calls a
    response's close only once the browser closes the connection)."""
    for _ in range(100):
        found = [r for r in smtp.to(SUBJECT) if subject_word in r.subject]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.1)
    raise AssertionError(f"no mail with {subject_word!r} arrived")


def test_staff_resume_reviewer_approves_subject_downloads(people, mailing_server, smtp, tmp_path):
    server = mailing_server
    crm = server.create_webhook(
        "Customer CRM", [{"pii_field": "First name"}, {"pii_field": "Age", "type": "number"}]
    )
    request_id = server.create_request(SUBJECT)
    server.save_input(request_id, crm, {"first_name": "Jane", "age": "42"})

    staff_session, reviewer_session, subject_session = people
    staff = staff_session.sign_in(server.create_user("staff"))
    staff.goto(f"/requests/{request_id}")
    staff.get_by_role("button", name="Resume").click()
    expect(staff.get_by_role("heading", level=1)).to_contain_text(request_id)
    assert server.status(request_id) == "complete"

    reviewer = reviewer_session.sign_in(server.create_user("reviewer"))
    reviewer.goto(f"/packages/{request_id}")
    review = reviewer.get_by_role("region", name="Review and delivery")
    expect(review).to_contain_text("Ready for review")
    expect(reviewer.get_by_role("region", name="Customer CRM").get_by_role("cell", name="42")).to_be_visible()
    review.get_by_role("button", name="Approve and deliver").click()
    expect(reviewer.get_by_role("status").first).to_contain_text("emailed a link")
    expect(review).to_contain_text("Delivered")

    link_mail = _wait_for(smtp, "ready")
    assert "Jane" not in link_mail.raw.decode("utf-8", "replace")
    (link,) = [url for url in link_mail.links() if "/delivery/" in url]

    subject = subject_session.page
    subject.goto(link)
    expect(subject.get_by_role("heading", name="Your personal data", level=1)).to_be_visible()
    subject.get_by_role("button", name="Email me a code").click()
    code_mail = _wait_for(smtp, "code")
    code = re.search(r"Your code: (\d{6})", code_mail.text).group(1)
    subject.get_by_label("Six-digit code").fill(code)
    subject.get_by_role("button", name="Open my data").click()
    section = subject.get_by_role("region", name="Customer CRM")
    expect(section).to_contain_text("Jane")
    expect(section.get_by_role("columnheader", name="First name")).to_be_visible()
    with subject.expect_download() as zip_download:
        subject.get_by_role("link", name="Download everything (ZIP)").click()
    path = tmp_path / zip_download.value.suggested_filename
    zip_download.value.save_as(path)
    with zipfile.ZipFile(path) as package:
        assert json.loads(package.read("package.json")) == {
            "customer_crm": [{"first_name": "Jane", "age": 42}]
        }
        assert "Customer CRM" in package.read("report.html").decode("utf-8")
