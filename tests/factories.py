"""Factory helpers: create rows through the services (so the rules apply) and commit."""

from __future__ import annotations

import itertools

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import users

_seq = itertools.count(1)
TEST_PASSWORD = "correct-horse-staple-42"
FACTORY = Actor.system("test-factory")


def make_user(role: str = "staff", email: str | None = None, password: str = TEST_PASSWORD, **kwargs):
    email = email or f"{role}{next(_seq)}@example.com"
    user = users.create_user(email, role, password, FACTORY, **kwargs)
    db.session.commit()
    return user


def make_connection(name: str, *, key: str | None = None, connection_type: str = "manual_webhook", **kwargs):
    """A connection created through the service (key generated from the name when not given)."""
    from portal.services import connections

    conn = connections.create_connection(
        name=name, key=key, connection_type=connection_type, actor=FACTORY, **kwargs
    )
    db.session.commit()
    return conn


def make_webhook(name: str, fields: list[dict], **kwargs):
    """A manual_webhook connection named ``name`` with these field definitions (through the services)."""
    from portal.services import webhooks

    conn = make_connection(name, **kwargs)
    webhook = webhooks.create_webhook(conn, fields, FACTORY)
    db.session.commit()
    return webhook
