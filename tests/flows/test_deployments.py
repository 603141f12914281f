"""Every deployment in prefect.yaml loads, from a worker's point of view and the embedded runner's."""

from __future__ import annotations

import subprocess
import sys

import pytest
from envsteward.deployments.catalog import REPO_ROOT, read_deployments

DEFINITIONS = read_deployments()


def test_prefect_yaml_declares_deployments() -> None:
    assert DEFINITIONS, "prefect.yaml declares no deployment"
    names = [definition.name for definition in DEFINITIONS]
    assert len(names) == len(set(names)), f"duplicate deployment names: {names}"


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d.name)
def test_entrypoint_loads_like_a_worker_from_the_repository_root(definition) -> None:  # type: ignore[no-untyped-def]
    """A worker started from the repository root imports the entrypoint by its relative path."""
    script = (
        "from prefect.flows import load_flow_from_entrypoint\n"
        f"flow = load_flow_from_entrypoint({definition.entrypoint!r}, use_placeholder_flow=False)\n"
        "print(flow.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"{definition.entrypoint} does not load:\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), "the entrypoint loaded no flow"


def test_embedded_runner_builds_every_deployment() -> None:
    from envsteward.deployments.serve import build_all

    deployments = build_all()
    assert [d.name for d in deployments] == [d.name for d in DEFINITIONS]
    for built, definition in zip(deployments, DEFINITIONS, strict=True):
        if definition.interval_seconds or definition.cron:
            assert built.schedules, f"{definition.name} lost its schedule"
