"""The demo, as a new user runs it with something else on the default ports: every port option moved to a
free port, ``--once``. Every health check of the example platform must be up (the API checks reach the
stand-in on its chosen port, the Vault check OpenBao, the S3 check moto), with no traceback in the output,
and nothing left listening afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from envsteward.deployments.demo import PORT_OPTIONS

from envsteward.catalog.loader import load_catalog
from envsteward.health.tracker import state_key
from envsteward.services import Services
from envsteward.settings import Settings
from tests.e2e.conftest import REPO
from tests.fixtures._proc import free_port, port_open

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_SECONDS = 420


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and port not in {default for default, _what in PORT_OPTIONS.values()}:
            ports.append(port)
    return ports


@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS + 60)
def test_the_demo_honours_every_port_option(tmp_path: Path) -> None:
    ports = dict(zip(PORT_OPTIONS, distinct_free_ports(len(PORT_OPTIONS)), strict=True))
    workdir = tmp_path / "demo"
    argv = ["--once", "--workdir", str(workdir)]
    for dest, port in ports.items():
        argv += [f"--{dest.replace('_', '-')}", str(port)]
    # the demo configures everything itself; nothing of the test session's own setup may leak into it
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ENVSTEWARD_", "PREFECT_", "VAULT_", "AWS_", "SLACK_", "PAGERDUTY_"))
    }
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    started = time.monotonic()
    demo = subprocess.run(
        [sys.executable, "-m", "envsteward.deployments.demo", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, f"demo exited {demo.returncode} after {elapsed:.0f} s:\n{output[-6000:]}"
    assert "Traceback" not in output, output[-6000:]
    assert "CheckDownError" not in output
    assert f"Starting OpenBao (Vault API) on 127.0.0.1:{ports['vault_port']}" in output

    # what the health-check flow recorded, read back from the demo's own state store
    catalog = load_catalog(workdir / "catalog")
    services = Services(Settings(catalog=workdir / "catalog", home=workdir / "home"))
    store = services.state_store()
    found = {
        f"{env_name}/{check.name}": (store.get(state_key(env_name, check.name)) or {}).get("candidate")
        for env_name, spec in catalog.environments.items()
        for check in spec.health_checks
    }
    assert {"development/api", "staging/api", "production/api"} <= set(found)
    assert found == dict.fromkeys(found, "up"), found

    for dest, port in ports.items():
        assert not port_open(port), f"{dest} {port} still listening after the demo stopped"
