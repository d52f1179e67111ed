"""Browser fixtures: a live portal per test, one headless Chromium per session, screenshots on failure.

Each test gets its own server (werkzeug's ``make_server`` on a free port, in a background thread) on a copy
of one migrated SQLite database, so tests never see each other's data. The browser journeys do not depend
on the database engine, so they run on SQLite only (the services are tested on both engines).

Chromium is Debian's (``/usr/bin/chromium``, or ``$PORTAL_E2E_CHROMIUM``); Playwright never downloads one.
Without it the tests are skipped with the reason, unless ``PORTAL_TEST_REQUIRE_ALL=1`` (CI), where that is
a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import ARTIFACTS, Browsing, LiveServer, chromium_unavailable_reason, migrate_template

REQUIRE_ALL = os.environ.get("PORTAL_TEST_REQUIRE_ALL") == "1"
_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test at teardown."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def browser():
    reason = chromium_unavailable_reason()
    if reason:
        if REQUIRE_ALL:
            pytest.fail(reason + " (PORTAL_TEST_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(reason)
    from tests.e2e.helpers import launch_chromium

    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="session")
def template_database(tmp_path_factory) -> Path:
    """One migrated SQLite file; every test serves a copy of it."""
    return migrate_template(tmp_path_factory.mktemp("e2e-template"))


@pytest.fixture
def live_server(template_database, tmp_path):
    database = tmp_path / "portal.sqlite3"
    shutil.copyfile(template_database, database)
    server = LiveServer(database, tmp_path / "instance")
    server.start()
    yield server
    server.stop()
    server.assert_no_server_errors()


@pytest.fixture
def browsing(browser, live_server, request):
    """A fresh browser context (no cookies) on the live server; ``browsing.page`` is its first tab."""
    session = Browsing(browser, live_server)
    yield session
    reports = request.node.stash.get(_REPORTS, {})
    if any(report.failed for report in reports.values()):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        session.screenshot_all(ARTIFACTS / name)
    session.close()
    session.assert_no_page_errors()


@pytest.fixture
def page(browsing):
    return browsing.page
