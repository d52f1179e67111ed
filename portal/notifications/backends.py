"""Flask-Mailman backends: SMTP with a verified STARTTLS, and the console backend of ``make run``."""

from __future__ import annotations

import logging
import smtplib
import ssl

from flask_mailman.backends.base import BaseEmailBackend
from flask_mailman.backends.smtp import EmailBackend as MailmanSMTPBackend

log = logging.getLogger("portal.mail")

CONSOLE_BANNER = "CONSOLE MAIL BACKEND (PORTAL_MAIL_SERVER is not set): this mail was NOT sent"


class _VerifiedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose STARTTLS checks the server's certificate and name.

    Without a context, ``starttls`` encrypts but trusts any certificate, so anyone on the path could
    read the SMTP password; implicit TLS (``SMTP_SSL``) already gets a verifying context from Flask-Mailman.
    """

    def starttls(self, keyfile=None, certfile=None, context=None):
        return super().starttls(context=context or ssl.create_default_context())


class SMTPEmailBackend(MailmanSMTPBackend):
    """Flask-Mailman's SMTP backend (MAIL_SERVER, _PORT, _USE_TLS, _USE_SSL, _USERNAME, _PASSWORD)."""

    @property
    def connection_class(self):
        return smtplib.SMTP_SSL if self.use_ssl else _VerifiedSMTP


WITHHELD = "(Body withheld: it holds a data subject's link or code. Set PORTAL_MAIL_SERVER to send it.)"


class ConsoleEmailBackend(BaseEmailBackend):
    """Writes each mail to the log under a banner saying it was not sent: headers and the text part.

    A mail holds no personal data of a data subject by design; the recipient's address is left out of
    the log too (their user id stands in for it).
    """

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            log.warning(
                "%s\nTo: user #%s\nSubject: %s\n\n%s\n%s",
                CONSOLE_BANNER,
                getattr(message, "portal_user_id", "?"),
                message.subject,
                WITHHELD if getattr(message, "portal_withhold_body", False) else message.body,
                "END OF CONSOLE MAIL",
            )
        return len(email_messages)
