"""The one place that reacts to webhook changes: waiting requests are re-evaluated (S4 "never stuck")."""

from __future__ import annotations

from portal.services.audit import Actor


def webhooks_changed(actor: Actor) -> list[str]:
    """Re-evaluate requests waiting in requires_input; returns the ids resumed (runs after commit)."""
    from portal.services.privacy_requests import reevaluate_waiting

    return reevaluate_waiting(actor)
