"""The platform status as both the ``platform-status`` artifact and ``envsteward status`` show it: one
function, :func:`current_status`, so the two always agree.

Prefect is imported only inside the functions that ask it something (a run's UI link, the state of a
waiting promotion's run), so the read-only ``envsteward status`` loads Prefect only when a promotion holds
a lease, and never creates a Prefect home or a temporary server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from envsteward.status.gather import StatusSources, gather_status
from envsteward.status.model import PlatformStatus


def run_link(run_id: str) -> str | None:
    """A flow run's page in the Prefect UI, from Prefect's ``ui_url`` setting (``PREFECT_UI_URL``, else
    derived from ``PREFECT_API_URL``); None when neither is known."""
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{str(ui).rstrip('/')}/runs/flow-run/{run_id}" if ui else None


def lease_run_states(run_ids: Sequence[str]) -> dict[str, str]:
    """The Prefect state type of each run (``PAUSED``, ``SUSPENDED``, ``RUNNING``...); runs Prefect cannot
    tell about are left out. Asks nothing when no Prefect API is configured (``PREFECT_API_URL``): a
    client without one would start a temporary server. Calls the Prefect API."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    states: dict[str, str] = {}
    if not run_ids or not get_current_settings().api.url:
        return states
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            try:
                run = client.read_flow_run(UUID(run_id))
            except Exception:  # noqa: BLE001, S112 - an unknown or unreachable run is shown as "requested"
                continue
            if run.state is not None:
                states[run_id] = run.state.type.value
    return states


def current_status(sources: StatusSources, environments: Sequence[str] | None = None) -> PlatformStatus:
    """The platform status now, with run links and the state of each waiting promotion's run. Raises
    ConfigurationError for an unknown environment. Calls the state store, the backup store and (only when
    a promotion holds a lease) the Prefect API."""
    return gather_status(
        sources,
        now=datetime.now(UTC),
        environments=environments,
        run_link=run_link,
        run_states=lease_run_states,
    )
