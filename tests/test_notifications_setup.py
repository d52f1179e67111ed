"""How notifications are set up and run: the console backend without a mail server, the settings it
refuses, STARTTLS with a verified certificate and a login, the Celery task and its retries, the cron
command."""

from __future__ import annotations

import logging
import ssl

import pytest
from aiosmtpd.smtp import AuthResult
from sqlalchemy import func, select, update

from portal import ConfigurationError, create_app
from portal.execution import dispatch, runner
from portal.extensions import db
from portal.models import Notification, utcnow
from portal.notifications import backends, delivery
from portal.services import privacy_requests
from tests.factories import make_user
from tests.mail_helpers import SMTPServer, free_port, mail_config, self_signed_certificate
from tests.scale_out_helpers import DEAD_REDIS_URL
from tests.test_notifications import PERSONAL, complete, waiting_request
from tests.workflow_helpers import STAFF


def statuses() -> list[tuple[str, int, str | None]]:
    db.session.expire_all()
    return [
        (n.status, n.attempts, n.last_error)
        for n in db.session.scalars(select(Notification).order_by(Notification.id))
    ]


# --- without a mail server ---------------------------------------------------------------------------------


def test_without_a_mail_server_mails_go_to_the_log_clearly_marked(app, caplog):
    caplog.set_level(logging.WARNING, logger="portal.mail")
    reviewer = make_user("reviewer")
    request_id = waiting_request()
    complete(request_id)

    assert app.config["MAIL_BACKEND"].endswith("ConsoleEmailBackend")
    assert delivery.run().sent == 1

    (record,) = [r for r in caplog.records if r.name == "portal.mail"]
    text = record.getMessage()
    assert text.startswith(backends.CONSOLE_BANNER)
    assert "this mail was NOT sent" in text
    assert f"To: user #{reviewer.id}" in text and reviewer.email not in text
    assert f"Subject: Package ready for review: {request_id[:12]}…" in text
    assert f"http://127.0.0.1:5000/packages/{request_id}" in text
    assert not [value for value in PERSONAL if value.lower() in text.lower()]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"MAIL_USE_TLS": True, "MAIL_USE_SSL": True}, "exclude each other"),
        ({"BASE_URL": "portal.example.com"}, "PORTAL_BASE_URL must be the portal's address"),
        ({"BASE_URL": "ftp://portal.example.com"}, "PORTAL_BASE_URL must be the portal's address"),
        ({"BASE_URL": "https://portal.example.com/?x=1"}, "PORTAL_BASE_URL must be the portal's address"),
    ],
)
def test_mail_settings_that_cannot_work_are_refused_at_start(app_config, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        create_app({**app_config, **settings})


def test_links_follow_a_base_url_with_a_path(app_config):
    app = create_app({**app_config, "BASE_URL": "https://example.com/privacy/"})
    from portal.notifications.mail import external_url

    with app.app_context():
        assert (
            external_url("requests.detail", request_id="pri_1")
            == "https://example.com/privacy/requests/pri_1"
        )


# --- STARTTLS and login --------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(
            (mechanism, auth_data.login.decode(), auth_data.password.decode(), session.ssl is not None)
        )
        return AuthResult(success=True)

    server = SMTPServer(tls_context=context, require_starttls=True, authenticator=authenticator)
    server.start()
    server.cert, server.logins = cert, logins
    yield server
    server.stop()


@pytest.fixture
def dead_smtp() -> int:
    """A localhost port nothing listens on: connection refused."""
    return free_port()


@pytest.fixture
def app_config(app_config, request):
    if "dead_smtp" in request.fixturenames:
        return {**app_config, **mail_config(request.getfixturevalue("dead_smtp"))}
    if "tls_server" not in request.fixturenames:
        return app_config
    server = request.getfixturevalue("tls_server")
    return {
        **app_config,
        **mail_config(server.port),
        "MAIL_USE_TLS": True,
        "MAIL_USERNAME": "portal",
        "MAIL_PASSWORD": "smtp-secret-pw",
    }


def test_starttls_refuses_a_certificate_nobody_trusts(app, tls_server):
    make_user("reviewer")
    complete(waiting_request())

    assert delivery.run().failed == 1

    assert statuses() == [("pending", 1, "SSLCertVerificationError")]
    assert tls_server.logins == [] and tls_server.received == []  # the password never left


def test_starttls_with_a_trusted_certificate_logs_in_over_tls_and_sends(app, tls_server, monkeypatch):
    reviewer = make_user("reviewer")
    complete(waiting_request())
    trusted = ssl.create_default_context(cafile=tls_server.cert)
    monkeypatch.setattr(backends.ssl, "create_default_context", lambda: trusted)

    assert delivery.run().sent == 1

    assert tls_server.logins == [("PLAIN", "portal", "smtp-secret-pw", True)]
    assert [r.rcpt_tos for r in tls_server.received] == [[reviewer.email]]


# --- Celery --------------------------------------------------------------------------------------------------


@pytest.fixture
def celery(app, monkeypatch):
    """The celery backend with a broker that records what is sent (and which notifications were committed
    by then, read on a connection of its own)."""
    from portal.worker import init_celery

    app.config.update(TASK_BACKEND="celery", REDIS_URL=DEAD_REDIS_URL, CELERY_QUEUE="nobody-listens")
    celery = init_celery(app)
    celery.sent = []

    def send_task(name, args=None, kwargs=None, **options):
        with db.engine.connect() as conn:
            committed = conn.execute(select(func.count()).select_from(Notification)).scalar()
        celery.sent.append((name, kwargs, committed))

    monkeypatch.setattr(celery, "send_task", send_task)
    return celery


def test_celery_queues_the_sender_after_the_commit_that_logged_mail(app, celery):
    make_user("reviewer")
    app.config["TASK_BACKEND"] = "inline"
    request_id = waiting_request()
    app.config["TASK_BACKEND"] = "celery"

    privacy_requests.resume_request(request_id, STAFF)
    dispatch.commit_and_run()  # queues the run
    runner.run_privacy_request(request_id)  # what a worker does with it

    assert celery.sent == [(dispatch.RUN_TASK, None, 0), (delivery.SEND_TASK, {"retry": True}, 1)]
    assert celery.conf.beat_schedule["send-notifications"]["task"] == delivery.SEND_TASK
    assert delivery.SEND_TASK in celery.tasks


def test_celery_broker_down_the_run_completes_and_beat_sends_the_mail_later(app, celery, monkeypatch, caplog):
    make_user("reviewer")
    app.config["TASK_BACKEND"] = "inline"
    request_id = waiting_request()
    app.config["TASK_BACKEND"] = "celery"

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis://:password@broker:6379 unreachable")

    monkeypatch.setattr(celery, "send_task", broker_down)
    privacy_requests.resume_request(request_id, STAFF)
    db.session.commit()
    assert runner.run_privacy_request(request_id) == "complete"

    assert statuses() == [("pending", 0, None)]
    assert "Could not queue the notification sender (ConnectionError)" in caplog.text
    assert "password" not in caplog.text


def test_the_sender_task_retries_with_backoff_only_when_queued_after_a_commit(
    app, dead_smtp, celery, monkeypatch
):
    from portal.worker import NOTIFY_TASK

    make_user("reviewer")
    app.config["TASK_BACKEND"] = "inline"
    complete(waiting_request())
    app.config["TASK_BACKEND"] = "celery"
    task = celery.tasks[NOTIFY_TASK]
    retried = []

    def retry(**options):
        retried.append(options)
        return RuntimeError("retry raised")

    monkeypatch.setattr(task, "retry", retry)
    with pytest.raises(RuntimeError, match="retry raised"):
        task(retry=True)
    assert statuses() == [("pending", 1, "ConnectionRefusedError")]
    assert 55 <= retried[0]["countdown"] <= 60 and retried[0]["kwargs"] == {"retry": True}

    db.session.execute(update(Notification).values(next_attempt_at=utcnow()))
    db.session.commit()
    task()  # beat's run: fails again, schedules nothing (beat comes back every minute anyway)
    assert statuses() == [("pending", 2, "ConnectionRefusedError")]
    assert len(retried) == 1


def test_the_cron_command_sends_what_waits(app, runner):
    make_user("reviewer")
    complete(waiting_request())

    result = runner.invoke(args=["send-notifications"])

    assert result.exit_code == 0, result.output
    assert "Sent 1, failed 0, skipped 0." in result.output
    assert statuses() == [("sent", 1, None)]
