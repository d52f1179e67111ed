"""TEST ONLY: a Celery worker entry whose runs collect from a deliberately slow connector.

``celery -A tests.scale_out_worker worker`` is ``portal.worker`` plus a connector for connections of type
``sqlite`` that writes ``$PORTAL_TEST_CONNECTOR_MARKER`` (so the test knows the run is inside collection),
sleeps ``$PORTAL_TEST_CONNECTOR_SLEEP`` seconds, and returns one row under ``slow_test:rows``. It lets the
SIGKILL test kill a worker in the middle of a run, deterministically. Nothing in ``portal/`` knows of it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from portal.execution import collection
from portal.worker import celery

with contextlib.suppress(ImportError):  # the real connectors register on import: ours must come last
    import portal.execution.connectors  # noqa: F401

__all__ = ["celery"]


def _slow_connector(connections, privacy_request):
    """Called with the list of ``sqlite`` connections (or, in older code, one connection)."""
    marker = os.environ.get("PORTAL_TEST_CONNECTOR_MARKER")
    if marker:
        Path(marker).write_text(privacy_request.id)
    time.sleep(float(os.environ.get("PORTAL_TEST_CONNECTOR_SLEEP", "0")))
    connections = connections if isinstance(connections, list) else [connections]
    return {"slow_test:rows": [{"connection": c.key} for c in connections]}


collection.register("sqlite", _slow_connector)
