"""Package assembly in exactly the fidesops shape: ``{connection_key: [{every label: value or null}]}``."""

from __future__ import annotations

from typing import Any

from portal.execution.gate import GatedWebhook
from portal.models import ManualInput


def assemble(
    automated: dict[str, list[dict[str, Any]]],
    webhooks: list[GatedWebhook],
    inputs: dict[int, ManualInput],
) -> dict[str, list[dict[str, Any]]]:
    """Automated data plus one entry per gated webhook, every current label present (null when blank).

    Connection keys cannot contain ``:``, so they never collide with ``"<dataset>:<collection>"`` keys.
    """
    package: dict[str, list[dict[str, Any]]] = dict(automated)
    for gated in webhooks:
        values = inputs[gated.connection.id].values or {}
        package[gated.key] = [{label: values.get(label) for label in gated.webhook.labels}]
    return package
