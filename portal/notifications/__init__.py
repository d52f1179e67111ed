"""Mail notifications (S10): what is sent to whom, logged in the caller's transaction, sent after commit.

- ``kinds``: the kinds of mail, who may receive them, the defaults; ``preferences``: each user's choice.
- ``outbox``: the notification log (one row per mail, unique per person, kind, subject and period).
- ``triggers``: mails caused by request transitions, found in the audit trail as it is written.
- ``digest``: the daily digest, built from pluggable section providers.
- ``delivery``: the sender (claim, render, SMTP, retry with backoff); ``mail``: templates and links;
  ``backends``: SMTP with a verified STARTTLS, and the console backend used when no server is set.
- ``views``: the settings page and the signed unsubscribe link.

No mail holds personal data of a data subject: request ids, system names, dates and links only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask

log = logging.getLogger(__name__)

BACKENDS = "portal.notifications.backends"


def init_app(app: Flask) -> None:
    """Check the mail settings, choose the backend, bind Flask-Mailman, and watch the audit trail."""
    from portal.config import ConfigurationError
    from portal.extensions import mail
    from portal.notifications import delivery, triggers  # noqa: F401  (delivery: its session hooks)

    config = app.config
    if config["MAIL_USE_TLS"] and config["MAIL_USE_SSL"]:
        raise ConfigurationError(
            "PORTAL_MAIL_USE_TLS (STARTTLS, port 587) and PORTAL_MAIL_USE_SSL (implicit TLS, port 465) "
            "exclude each other: set one of them to false."
        )
    base = urlsplit(str(config["BASE_URL"]))
    if base.scheme not in ("http", "https") or not base.netloc or base.query or base.fragment:
        raise ConfigurationError(
            "PORTAL_BASE_URL must be the portal's address as its users reach it, e.g. "
            f"https://portal.example.com (links in mails start with it), not {config['BASE_URL']!r}."
        )
    if not config.get("MAIL_BACKEND"):
        server = bool(config.get("MAIL_SERVER"))
        config["MAIL_BACKEND"] = f"{BACKENDS}.{'SMTPEmailBackend' if server else 'ConsoleEmailBackend'}"
        if not server and not app.testing:
            log.warning(
                "No PORTAL_MAIL_SERVER: notification mails are written to this log (console mail backend), "
                "not sent. See the README, Notifications."
            )
    mail.init_app(app)
    triggers.init()
