"""Schemathesis against our own OpenAPI document: generated requests never produce a server error.

Kept small for CI (a few examples per operation); data exists so that path parameters sometimes hit
real rows. Responses must also match the documented status codes and schemas' content types.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from portal.extensions import db
from portal.models.audit import Actor
from portal.services import tokens
from tests.workflow_helpers import add_webhook, field, new_request

EXAMPLES_PER_OPERATION = 8


def test_generated_requests_never_cause_server_errors(app, make_user):
    admin = make_user(role="admin")
    _, secret = tokens.create_token(admin, "fuzz", Actor.system("test"))
    db.session.commit()
    add_webhook("manual_webhook_key", [field("First Name"), field("Height", type="number")])
    new_request("fuzz-subject@example.com")
    auth = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=auth)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18

    def fuzz(operation) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call(headers=auth)
            db.session.rollback()
            if response.status_code >= 500:
                failures.append(f"{operation.label}: {response.status_code} {response.text[:200]}")

        check()

    for operation in operations:
        fuzz(operation)
    assert failures == []
