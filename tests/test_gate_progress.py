"""A request's progress through the manual gate, counted by the database in the query a resume checks
first (``privacy_requests.resume_check``): it must agree with the gate's own list of missing webhooks
(what a run acts on), whatever is disabled, empty or stale."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.execution import gate
from portal.extensions import db
from portal.models import ConnectionConfig, ManualWebhook
from portal.services import FieldsChanged, manual_inputs, privacy_requests
from tests.workflow_helpers import STAFF, add_webhook, field, new_request


def _systems():
    add_webhook("crm", [field("Name")])
    add_webhook("erp", [field("Name")])
    add_webhook("off_system", [field("Name")], disabled=True)  # disabled: not gated
    add_webhook("empty_system", [])  # no fields: not gated
    db.session.add(ConnectionConfig(key="warehouse", name="Warehouse", connection_type="postgres"))
    db.session.commit()


def _gate_answer(request_id: str) -> tuple[int, int]:
    """The gate's slow, Python answer (the one a run acts on): (done, systems)."""
    gated, inputs = gate.gated_with_inputs(request_id)
    return len(gated) - len(gate.missing_webhooks(gated, inputs)), len(gated)


def _bump_version(key: str) -> None:
    """An admin changed the webhook's fields: every entry saved before is stale."""
    db.session.execute(
        sa.update(ManualWebhook)
        .where(
            ManualWebhook.connection_config_id
            == sa.select(ConnectionConfig.id).where(ConnectionConfig.key == key).scalar_subquery()
        )
        .values(version=ManualWebhook.version + 1)
    )


def progress_of(request_id: str) -> tuple[int, int]:
    """(done, systems) as a resume counts them."""
    check = privacy_requests.resume_check(request_id)
    return check.done, check.systems


def _save_and_count(request_id: str, key: str, name: str = "Jane") -> tuple[int, int]:
    manual_inputs.save_manual_input(request_id, key, {"name": name}, STAFF)
    progress = progress_of(request_id)
    assert progress == _gate_answer(request_id)
    db.session.commit()
    assert progress_of(request_id) == progress
    return progress


def test_only_enabled_webhooks_with_fields_count_and_only_current_entries_are_done(app):
    _systems()
    request_id = new_request()
    assert progress_of(request_id) == (0, 2) == _gate_answer(request_id)
    assert _save_and_count(request_id, "crm") == (1, 2)
    assert _save_and_count(request_id, "crm", "Janet") == (1, 2)  # replacing an entry adds nothing
    assert _save_and_count(request_id, "erp") == (2, 2)
    _bump_version("erp")
    db.session.commit()
    assert progress_of(request_id) == (1, 2) == _gate_answer(request_id)  # erp's entry is stale now
    assert _save_and_count(request_id, "crm", "Jo") == (1, 2)  # a save elsewhere keeps it stale
    assert _save_and_count(request_id, "erp") == (2, 2)  # saved again at the current version


def test_other_requests_entries_do_not_count(app):
    _systems()
    first, second = new_request(), new_request("other@example.com")
    assert _save_and_count(first, "crm") == (1, 2)
    assert progress_of(second) == (0, 2)
    assert _save_and_count(second, "erp") == (1, 2)


def test_a_save_at_a_version_changed_meanwhile_is_refused_and_not_counted_done(app):
    """The save was checked against version 1; the fields changed before the save's statement ran: the
    write itself sees it, stores nothing and says so."""
    _systems()
    request_id = new_request()
    system = manual_inputs.manual_system(request_id, "crm")
    _bump_version("crm")
    with pytest.raises(FieldsChanged, match="The fields of Crm changed while you were typing"):
        manual_inputs.save_manual_input(request_id, "crm", {"name": "Jane"}, STAFF, system)
    db.session.rollback()
    assert progress_of(request_id) == (0, 2) == _gate_answer(request_id)
    assert manual_inputs.view_manual_input(request_id, "crm").entry is None
