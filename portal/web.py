"""What the HTML views share: who is acting, and undoing a service call that the rules refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask_login import current_user

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import DomainError


def current_actor() -> Actor:
    """The signed-in user, as the audit trail names them."""
    return Actor.for_user(current_user)


@dataclass
class Outcome:
    """What ``refusable`` saw: the refusal, if a service call raised one."""

    error: DomainError | None = None


@contextmanager
def refusable() -> Iterator[Outcome]:
    """Run service calls; when one refuses (a ``DomainError``), everything the transaction did is undone —
    the one rollback of the HTML views — and the refusal is handed back as ``outcome.error`` for the view
    to show next to the form, instead of being raised. (Outside such a block a ``NotFound`` becomes the 404
    page: ``errors.register``.)"""
    outcome = Outcome()
    try:
        yield outcome
    except DomainError as exc:
        db.session.rollback()
        outcome.error = exc
