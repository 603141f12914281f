"""The embedded runner: serve every deployment of ``prefect.yaml`` from one process, no work pool needed.

    python -m envsteward.deployments.serve            # against PREFECT_API_URL (or an ephemeral server)

Schedules, parameters and concurrency limits come from ``prefect.yaml`` (see :mod:`catalog`).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from envsteward.deployments.catalog import REPO_ROOT, DeploymentDefinition, read_deployments
from prefect import serve
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint


def build_runner_deployment(definition: DeploymentDefinition) -> RunnerDeployment:
    """Load the definition's flow from its entrypoint (relative to the repository root) and describe it."""
    flow = load_flow_from_entrypoint(str(REPO_ROOT / definition.entrypoint), use_placeholder_flow=False)
    interval = definition.interval_seconds if definition.active else None
    if interval and definition.anchor_date:
        # the anchor sets the phase (see prefect.yaml): without one, every interval schedule served
        # together starts on the same second and their runs' processes compete for the CPU
        return flow.to_deployment(
            name=definition.name,
            description=definition.description,
            tags=list(definition.tags),
            parameters=definition.parameters,
            schedules=[
                IntervalSchedule(
                    interval=timedelta(seconds=interval),
                    anchor_date=datetime.fromisoformat(definition.anchor_date),
                )
            ],
            concurrency_limit=definition.concurrency_limit,
        )
    return flow.to_deployment(
        name=definition.name,
        description=definition.description,
        tags=list(definition.tags),
        parameters=definition.parameters,
        cron=definition.cron if definition.active else None,
        interval=interval,
        concurrency_limit=definition.concurrency_limit,
    )


def build_all() -> list[RunnerDeployment]:
    return [build_runner_deployment(definition) for definition in read_deployments()]


def main() -> None:
    os.chdir(REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    serve(*build_all())


if __name__ == "__main__":
    main()
