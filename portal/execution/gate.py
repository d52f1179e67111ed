"""The manual gate (S4): every enabled webhook with fields needs a current-version ManualInput."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal.extensions import db
from portal.models import ConnectionConfig, ConnectionType, ManualInput, ManualWebhook, PrivacyRequest


@dataclass(frozen=True)
class GatedWebhook:
    connection: ConnectionConfig
    webhook: ManualWebhook

    @property
    def key(self) -> str:
        return self.connection.key


def gated_webhooks() -> list[GatedWebhook]:
    """Enabled manual connections whose webhook has at least one field, by name (one query)."""
    rows = db.session.execute(
        select(ConnectionConfig, ManualWebhook)
        .join(ManualWebhook, ManualWebhook.connection_config_id == ConnectionConfig.id)
        .where(
            ConnectionConfig.connection_type == ConnectionType.MANUAL_WEBHOOK,
            ConnectionConfig.disabled.is_(False),
        )
        .order_by(ConnectionConfig.name)
    ).all()
    return [GatedWebhook(conn, hook) for conn, hook in rows if hook.fields]


def applies_to(privacy_request: PrivacyRequest) -> bool:
    """Erasure-only policies are not gated until erasure support exists."""
    return privacy_request.policy.action_type == "access"


def inputs_by_connection(request_id: str) -> dict[int, ManualInput]:
    rows = db.session.scalars(select(ManualInput).where(ManualInput.privacy_request_id == request_id))
    return {row.connection_config_id: row for row in rows}


def missing_webhooks(
    request_id: str,
    webhooks: list[GatedWebhook] | None = None,
    inputs: dict[int, ManualInput] | None = None,
) -> list[GatedWebhook]:
    """The gated webhooks with no input, or only a stale one, for this request (in name order)."""
    webhooks = gated_webhooks() if webhooks is None else webhooks
    inputs = inputs_by_connection(request_id) if inputs is None else inputs
    return [
        gated
        for gated in webhooks
        if (entry := inputs.get(gated.connection.id)) is None or entry.is_stale(gated.webhook.version)
    ]
