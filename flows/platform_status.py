"""The platform-status flow: refresh the ``platform-status`` artifact and its charts now.

Runbook:
1. Gather every environment's status from the state the other flows keep (read-only): health, drift,
   backups, the last DR drill, secrets, promotions waiting for approval and pending rollbacks.
2. Publish the fixed-key ``platform-status`` markdown artifact and the drift and uptime charts.
3. Return the status as JSON.

The other flows refresh the same artifact themselves (task ``refresh-platform-status``) whenever they change
one of its inputs; the health check does so on every run. Run this flow to refresh it on demand.
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.status import refresh_platform_status
from prefect import flow


@flow(
    name="platform-status", description="Every environment at a glance: refresh the platform-status artifact."
)
def platform_status() -> dict[str, Any]:
    """Refresh the ``platform-status`` artifact; return the status JSON (``verdict`` per environment)."""
    return refresh_platform_status()
