"""A reviewer opens a completed request's package and downloads it as JSON and as ZIP."""

import json
import zipfile

import pytest

from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e


def test_reviewer_opens_the_package_and_downloads_json_and_zip(browsing, live_server, tmp_path):
    crm = live_server.create_webhook(
        "Customer CRM", [{"pii_field": "First name"}, {"pii_field": "Last name"}]
    )
    archive = live_server.create_webhook("Paper archive", [{"pii_field": "Box number"}])
    request_id = live_server.complete_request(
        "jane.customer@example.com",
        {crm: {"first_name": "Jane", "last_name": "Customer"}, archive: {}},
    )
    page = browsing.sign_in(live_server.create_user("reviewer"))

    ready = page.get_by_role("region", name="Packages waiting for review")
    expect(ready.get_by_role("listitem")).to_have_count(1)
    expect(ready.get_by_role("listitem")).to_contain_text("Complete")
    expect(ready.get_by_role("listitem")).to_contain_text("UTC")
    ready.get_by_role("link", name=request_id, exact=True).click()

    expect(page.get_by_role("heading", name="Access package", level=1)).to_be_visible()
    crm_section = page.get_by_role("region", name="Customer CRM")
    expect(crm_section).to_contain_text("Entered by hand")
    expect(crm_section.get_by_role("cell", name="Jane")).to_be_visible()
    expect(page.get_by_role("region", name="Paper archive")).to_contain_text("Searched — nothing found")

    with page.expect_download() as json_download:
        page.get_by_role("link", name="Download JSON").click()
    download = json_download.value
    assert download.suggested_filename == f"access-package-{request_id}.json"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "customer_crm": [{"first_name": "Jane", "last_name": "Customer"}],
        "paper_archive": [{"box_number": None}],
    }

    with page.expect_download() as zip_download:
        page.get_by_role("link", name="Download ZIP").click()
    download = zip_download.value
    assert download.suggested_filename == f"access-package-{request_id}.zip"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    with zipfile.ZipFile(path) as package:
        assert sorted(package.namelist()) == [
            "customer_crm.csv",
            "package.json",
            "paper_archive.csv",
            "report.html",
        ]
        assert "Jane" in package.read("report.html").decode("utf-8")
