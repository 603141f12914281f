"""The demo, as a new user runs it with something else on the default ports: every port option moved to a
free port, ``--once``. It walks the flows: every health check of the example platform is up (the API
checks reach the stand-in on its chosen port, the Vault check OpenBao, the S3 check moto); the secret
inventory finds the two secrets the demo seeded on purpose, one overdue and one in plaintext; the promotion
development -> staging is applied after the demo's reviewer approved it, or reported blocked by the example
catalog's tier rules; the database target is backed up with a verified DR replica and drilled with RTO and
RPO against their targets. No traceback in the output, the demo's database is dropped and nothing is left
listening afterwards. Then the issue's "done when": the ``platform-status`` artifact (read from the demo's
own Prefect database, through the API of a server started on it again) shows the three environments with
the seeded drift and health, and ``envsteward status --json`` shows the same verdicts, cells and links."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from envsteward.deployments.demo import PORT_OPTIONS

from envsteward.catalog.loader import load_catalog
from envsteward.health.tracker import state_key
from envsteward.services import Services
from envsteward.settings import Settings
from tests.e2e.conftest import REPO
from tests.fixtures._proc import free_port, port_open, venv_executable

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
def test_the_demo_honours_every_port_option_and_walks_the_flows(
    tmp_path: Path, postgres_dsn_base: str
) -> None:
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

    status = envsteward_status(workdir, env)  # first: the health the demo recorded is minutes old only
    check_the_secret_inventory(output, ports["prefect_port"])
    check_the_four_flows(output, services, postgres_dsn_base)
    check_the_platform_status(workdir, env, status, ports["prefect_port"])


def check_the_secret_inventory(output: str, prefect_port: int) -> None:
    """Exactly one overdue secret (the reference the demo's catalog copy gives a one-day maximum age, said
    to be a demo setting) and exactly one plaintext finding (the token it wrote into a production runtime
    parameter, shown by its path, never its value), with the inventory run's page."""
    from envsteward.deployments.demo_secrets import OVERDUE, PLAINTEXT

    assert "=== 2/5  Secret inventory" in output, output[-6000:]
    assert "demo setting: production's " in output
    assert "secret inventory: 1 overdue secret(s), 1 plaintext finding(s)" in output, output[-6000:]
    overdue = re.findall(r"\[HIGH\] overdue: (\S+)", output)
    assert overdue == [OVERDUE[1].removeprefix("secret+")], overdue
    plaintext = re.findall(r"\[CRITICAL\] plaintext: (\S+)", output)
    environment, _source, key_path, _why = PLAINTEXT
    assert plaintext == [".".join(("services", *key_path))], plaintext
    assert f"plaintext in {environment}: {'.'.join(key_path)}" in output
    assert re.search(
        rf"secret-inventory run: http://127\.0\.0\.1:{prefect_port}/runs/flow-run/[0-9a-f-]{{36}}", output
    )
    assert "xoxb-" not in output.replace("xoxb-demo-", ""), "the seeded token's value was printed"


def check_the_four_flows(output: str, services: Services, postgres_dsn_base: str) -> None:
    """The promotion applied (approved by a staging approver) or reported blocked; a backup with a verified
    DR replica; a passed drill with RTO and RPO against the targets; the demo's database dropped."""
    import psycopg

    for heading in (
        "1/5  Drift scan",
        "3/5  Promotion development -> staging",
        "4/5  Backup",
        "5/5  DR drill",
    ):
        assert f"=== {heading}" in output, f"no {heading!r} step:\n{output[-6000:]}"
    actions = [(record.action, record.actor) for record in services.audit_log().records()]
    applied = "promotion development -> staging: APPLIED" in output
    blocked = "promotion development -> staging: BLOCKED" in output
    assert applied or blocked, output[-6000:]
    if applied:
        approve = re.search(r"envsteward approve ([0-9a-f-]{36}) --reviewer (\w+)", output)
        assert approve, "the demo must print the exact approve command"
        assert f"/runs/flow-run/{approve[1]}" in output, "the demo must print the run's UI link"
        assert ("promotion.approved", approve[2]) in actions
        assert approve[2] != "demo"
        assert any(action == "promotion.verified" for action, _actor in actions)
    else:
        # the example catalog blocks development -> staging on its tier rules: each blocker is listed
        assert re.search(r"BLOCKED by \d+ tier-rule violation\(s\)", output), output[-6000:]
        assert "\n  - tier rule " in output

    assert re.search(r"backup production/postgres-main \(postgres\): OK", output), output[-6000:]
    assert re.search(r"replica: +ok \(copy verified: ", output), output[-6000:]
    assert any(action == "backup.replicated" for action, _actor in actions)

    assert re.search(r"DR drill drill-\S+ of production/postgres-main: PASSED", output), output[-6000:]
    assert re.search(r"RTO: +[\d.]+ s against a target of 15 min: met", output), output[-6000:]
    assert re.search(r"RPO: +[\d.]+ s against a target of 1500 min: met", output), output[-6000:]
    assert re.search(r"from the dr region", output)
    assert any(action == "drill.passed" for action, _actor in actions)

    database = re.search(r"PostgreSQL database (envsteward_demo_[0-9a-f]+)", output)
    assert database, "on this machine the demo's database target is on the local PostgreSQL"
    with psycopg.connect(postgres_dsn_base) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database[1],)).fetchall()
    assert not left, f"the demo did not drop {database[1]}"


def envsteward_status(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``envsteward status --json`` on the demo's catalog and home, with the demo's Prefect UI address."""
    return subprocess.run(
        [venv_executable("envsteward"), "status", "--json"],
        cwd=REPO,
        env={
            **env,
            "ENVSTEWARD_CATALOG": str(workdir / "catalog"),
            "ENVSTEWARD_HOME": str(workdir / "home"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ICON_LEVELS = {"🟢": "green", "🟠": "amber", "🔴": "red", "⚪": "unknown"}
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _plain(markdown: str) -> str:
    import html

    return html.unescape(re.sub(r"\\(.)", r"\1", markdown)).strip()


def parse_platform_status(markdown: str) -> dict[str, dict[str, Any]]:
    """The artifact's table as ``{environment: {"verdict": level, area: {"level", "text", "link",
    "details"}}}`` (markdown escapes undone)."""
    from envsteward.status.model import AREAS

    rows: dict[str, dict[str, Any]] = {}
    for line in markdown.splitlines():
        if not line.startswith("| **"):
            continue
        cells = [cell.strip() for cell in UNESCAPED_PIPE.split(line)[1:-1]]
        assert len(cells) == 2 + len(AREAS), line
        name = _plain(cells[0].split("**")[1])
        row: dict[str, Any] = {"verdict": _plain(cells[1].split("**")[1])}
        for area, cell in zip(AREAS, cells[2:], strict=True):
            first, *details = cell.split("<br>")
            link = re.search(r" \[run\]\((http[^)]+)\)$", first)
            text = first[: link.start()] if link else first
            row[area] = {
                "level": ICON_LEVELS[text[0]],
                "text": _plain(text[1:]),
                "link": link[1] if link else None,
                "details": [_plain(d) for d in details],
            }
        rows[name] = row
    return rows


def read_platform_status_artifact(workdir: Path, env: dict[str, str]) -> str:
    """The latest ``platform-status`` artifact, from the Prefect API of a server started again on the demo's
    own Prefect home (the demo stopped its server; its SQLite database stays in the workdir)."""
    import asyncio
    import urllib.request

    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tests.fixtures._proc import running_process

    port = distinct_free_ports(1)[0]
    api = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    async def latest() -> str:
        async with PrefectClient(api) as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["platform-status"])),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )
        assert found, "the demo published no platform-status artifact"
        return str(found[0].data)

    server_env = {**env, "PREFECT_HOME": str(workdir / "prefect"), "PREFECT_API_URL": api}
    with running_process(
        "prefect-server-demo-db",
        [venv_executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        healthy,
        timeout=120,
        env=server_env,
    ):
        return asyncio.run(latest())


def check_the_platform_status(
    workdir: Path, env: dict[str, str], cli: subprocess.CompletedProcess[str], prefect_port: int
) -> None:
    """The artifact and ``envsteward status --json`` show the same three environments, verdicts, cell
    levels, drift counts and run links (ages differ: they were gathered a minute apart); the seeded drift
    is there, the reused secret counted as drift between staging and production, and every health check
    is up."""
    import json

    from envsteward.deployments.demo import DELIBERATE_DRIFT, REUSED_SECRET

    artifact = parse_platform_status(read_platform_status_artifact(workdir, env))
    shown = json.loads(cli.stdout or "{}")
    assert shown, f"envsteward status printed no JSON (exit {cli.returncode}):\n{cli.stderr[-3000:]}"
    rows = {row["environment"]: row for row in shown["environments"]}
    assert list(artifact) == list(rows) == ["development", "staging", "production"], (artifact, rows)
    assert cli.returncode == (1 if shown["red"] else 0), cli.stderr
    assert shown["errors"] == [], shown["errors"]

    def counts(text: str) -> str:  # "1 medium; between environments: 1 critical; oldest 5m" -> no age
        return text.split("; oldest", 1)[0]

    for name, row in rows.items():
        seen = artifact[name]
        assert seen["verdict"] == row["verdict"], (name, seen, row)
        for area in ("health", "drift", "backups", "drill", "secrets", "promotions"):
            assert seen[area]["level"] == row[area]["level"], (name, area, seen[area], row[area])
            assert seen[area]["link"] == row[area]["link"], (name, area)
        assert counts(seen["drift"]["text"]) == counts(row["drift"]["text"]), name
        parity = [line for line in row["drift"]["details"] if line.startswith("parity with")]
        assert [line for line in seen["drift"]["details"] if line.startswith("parity with")] == parity
        assert seen["health"]["text"].split(" for ")[0] == row["health"]["text"].split(" for ")[0] == "up"
        assert row["health"]["level"] == "green", row["health"]
        run_page = rf"http://127\.0\.0\.1:{prefect_port}/(flow-)?runs/flow-run/[0-9a-f-]{{36}}"
        assert re.fullmatch(run_page, row["health"]["link"] or ""), row["health"]

    seeded = {env_name for env_name, *_ in DELIBERATE_DRIFT}
    for name in seeded:
        drift = rows[name]["drift"]
        assert drift["level"] in ("amber", "red"), (name, drift)
        assert drift["text"] != "clean", (name, drift)
    left, right = REUSED_SECRET[1]
    for name, other in ((left, right), (right, left)):
        lines = rows[name]["drift"]["details"]
        assert any(f"parity with {other}: " in line and "critical" in line for line in lines), lines
    assert "between environments: " in rows[right]["drift"]["text"]
    assert rows[right]["verdict"] == "red", "critical drift between staging and production"
