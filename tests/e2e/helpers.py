"""The pieces the browser tests and the screenshot script share: a live server, Chromium, sign-in, axe."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask_migrate import upgrade

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture then skips (or fails under CI) and says why
    expect = None
from werkzeug.serving import WSGIRequestHandler, make_server

from portal import create_app
from portal.execution import dispatch
from portal.extensions import db
from portal.models.audit import Actor
from portal.services import connections as connection_service
from portal.services import manual_inputs, privacy_requests, users, webhooks

CHROMIUM = os.environ.get("PORTAL_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "e2e-correct-horse-42"
E2E_KEY = "bG9jYWwtZTJlLXRlc3RzLW9ubHktMzItYnl0ZXMhISE="  # 32 bytes, url-safe base64: tests only
SETUP = Actor.system("e2e-setup")
# axe-core impacts that fail a page; "moderate" and "minor" are reported by axe but not asserted.
BLOCKING_IMPACTS = ("serious", "critical")
STRUCTURE_RULES = (
    "landmark-one-main",
    "landmark-no-duplicate-main",
    "landmark-unique",
    "region",
    "page-has-heading-one",
    "heading-order",
    "empty-heading",
)


def chromium_unavailable_reason() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set PORTAL_E2E_CHROMIUM)"
    try:
        import axe_playwright_python  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -r requirements-dev.txt)"
    return None


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (``playwright install`` is never needed)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def e2e_config(database: Path) -> dict[str, Any]:
    """Production-like (CSRF on), but plain-http cookies and cheap password hashes."""
    return {
        "TESTING": True,
        "SECRET_KEY": "e2e-secret-key-not-for-production",
        "DATABASE_URL": f"sqlite:///{database}",
        "ENCRYPTION_KEY": E2E_KEY,
        "WTF_CSRF_ENABLED": True,
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_COST": 8,
        "RATELIMIT_STORAGE_URI": "memory://",
        "TASK_BACKEND": "inline",
    }


def migrate_template(folder: Path) -> Path:
    path = folder / "portal.sqlite3"
    app = create_app(e2e_config(path), instance_path=str(folder / "instance"))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _QuietRequestHandler(WSGIRequestHandler):
    """No line per request (errors are still logged, and collected below)."""

    def log_request(self, code="-", size="-") -> None:
        pass


class LiveServer:
    """The portal on 127.0.0.1:<free port>, served from a background thread, plus data-setup shortcuts."""

    def __init__(self, database: Path, instance: Path, extra: dict[str, Any] | None = None) -> None:
        self.app = create_app({**e2e_config(database), **(extra or {})}, instance_path=str(instance))
        self._errors = _ErrorRecords()
        self._loggers = [self.app.logger, logging.getLogger("werkzeug")]
        self.url = ""

    def start(self) -> None:
        for logger in self._loggers:
            logger.addHandler(self._errors)
        self._server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="e2e-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        for logger in self._loggers:
            logger.removeHandler(self._errors)
        with self.app.app_context():
            db.engine.dispose()

    def assert_no_server_errors(self) -> None:
        messages = [record.getMessage() for record in self._errors.records]
        assert not messages, f"The server logged errors: {messages}"

    # --- data set up directly through the services (the journeys under test use the browser) ---------

    def create_user(
        self,
        role: str,
        email: str | None = None,
        *,
        name: str = "",
        password: str = PASSWORD,
        must_change_password: bool = False,
    ) -> str:
        email = email or f"{role}@example.com"
        with self.app.app_context():
            users.create_user(
                email, role, password, SETUP, name=name, must_change_password=must_change_password
            )
            db.session.commit()
        return email

    def create_webhook(self, name: str, fields: list[dict[str, Any]], key: str | None = None) -> str:
        with self.app.app_context():
            conn = connection_service.create_connection(
                name=name, key=key, connection_type="manual_webhook", actor=SETUP
            )
            if fields:
                webhooks.create_webhook(conn, fields, SETUP)
            key = conn.key
            dispatch.commit_and_run()
        return key

    def replace_fields(self, key: str, fields: list[dict[str, Any]]) -> None:
        with self.app.app_context():
            webhooks.replace_fields(connection_service.get_connection(key), fields, SETUP)
            dispatch.commit_and_run()

    def create_request(self, email: str, external_id: str | None = None) -> str:
        with self.app.app_context():
            pr = privacy_requests.create_request(
                identity={"email": email},
                policy_key="default_access_policy",
                external_id=external_id,
                actor=SETUP,
            )
            request_id = pr.id
            dispatch.commit_and_run()
        return request_id

    def save_input(self, request_id: str, key: str, values: dict[str, str | None]) -> None:
        with self.app.app_context():
            manual_inputs.save_manual_input(request_id, key, values, SETUP)
            dispatch.commit_and_run()

    def resume(self, request_id: str) -> None:
        with self.app.app_context():
            privacy_requests.resume_request(request_id, SETUP)
            dispatch.commit_and_run()

    def status(self, request_id: str) -> str:
        with self.app.app_context():
            return privacy_requests.get_request(request_id).status

    def complete_request(self, email: str, values: dict[str, dict[str, str | None]]) -> str:
        """A request with every manual system answered and resumed: its package is ready."""
        request_id = self.create_request(email)
        for key, entry in values.items():
            self.save_input(request_id, key, entry)
        self.resume(request_id)
        return request_id


class Browsing:
    """One browser context (its own cookies) on the live server; records JS errors and broken assets."""

    def __init__(self, browser, server: LiveServer, width: int = 1280, height: int = 900) -> None:
        self.server = server
        self.context = browser.new_context(
            base_url=server.url,
            viewport={"width": width, "height": height},
            accept_downloads=True,
            locale="en-GB",
            timezone_id="UTC",
        )
        self.context.set_default_timeout(10_000)
        self.problems: list[str] = []
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))
        page.on("response", self._check_asset)
        return page

    def _check_asset(self, response) -> None:
        if (
            response.request.resource_type in ("stylesheet", "script", "image", "font")
            and response.status >= 400
        ):
            self.problems.append(f"{response.status} for {response.url}")

    def sign_in(self, email: str, password: str = PASSWORD, page=None):
        page = page or self.page
        page.goto("/auth/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        with new_document(page):
            page.get_by_role("button", name="Sign in").click()
        assert "/auth/login" not in page.url, f"Signing in as {email} failed"
        return page

    def screenshot_all(self, stem: Path) -> None:
        for number, page in enumerate(self.context.pages):
            if not page.is_closed():
                path = f"{stem}-{number}.png"
                page.screenshot(path=path, full_page=True)
                print(f"Screenshot of the failed test: {path}")

    def close(self) -> None:
        self.context.close()

    def assert_no_page_errors(self) -> None:
        assert not self.problems, f"The browser saw problems: {self.problems}"


@contextmanager
def new_document(page) -> Iterator[None]:
    """Wait, after the block (a click that submits or navigates), until the next document has loaded."""
    page.evaluate("() => { window.e2eOldDocument = true; }")
    yield
    page.wait_for_function("() => !window.e2eOldDocument")
    page.wait_for_load_state()


def axe_violations(page) -> list[dict]:
    """Every axe-core violation on the page as shown now (the axe script ships with axe-playwright-python)."""
    from axe_playwright_python.sync_playwright import Axe

    return Axe().run(page).response["violations"]


def axe_problems(page) -> list[str]:
    """The violations that fail a page, one line per element: serious and critical ones, and any breach of
    the structure rules (landmarks, one h1, headings in order), whatever impact axe gives it."""
    lines = []
    for violation in axe_violations(page):
        if violation["impact"] in BLOCKING_IMPACTS or violation["id"] in STRUCTURE_RULES:
            for node in violation["nodes"]:
                lines.append(
                    f"{violation['id']} ({violation['impact']}): {node['target']} — {violation['help']}"
                )
    return lines
