"""Factory helpers: create rows through the services (so the rules apply) and commit."""

from __future__ import annotations

import itertools

from portal.extensions import db
from portal.services import users
from portal.services.audit import Actor

_seq = itertools.count(1)
TEST_PASSWORD = "correct-horse-staple-42"
FACTORY = Actor.system("test-factory")


def make_user(role: str = "staff", email: str | None = None, password: str = TEST_PASSWORD, **kwargs):
    email = email or f"{role}{next(_seq)}@example.com"
    user = users.create_user(email, role, password, FACTORY, **kwargs)
    db.session.commit()
    return user
