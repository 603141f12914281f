"""A real Prefect server (``prefect server start``) and a process work pool, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures._proc import free_port, log_tail, running_process, venv_executable
from tests.fixtures.databases import temporary_database

REPO = Path(__file__).resolve().parents[2]
WORK_POOL = "envsteward"


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path

    @property
    def log(self) -> Path:
        """The server's own output (kept: a failing e2e test shows its tail)."""
        return self.home / "server.log"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a prefect CLI / worker subprocess talking to this server."""
        return {
            **os.environ,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **extra,
        }

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
        """Run ``prefect ARGS`` from the repository root; fail the test with its output if it fails."""
        result = subprocess.run(
            [venv_executable("prefect"), "--no-prompt", *args],
            cwd=REPO,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"prefect {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


@pytest.fixture(scope="session")
def prefect_server(
    postgres_dsn_base: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port with its own PostgreSQL database (dropped at the end),
    plus the work pool.

    Not SQLite: under CI's load (two xdist workers, each with its servers and workers) Prefect's server on
    SQLite failed state writes with "database is locked" (its log, kept by this fixture, showed it), and a
    resumed run stayed in ``Submitting`` until the browser test timed out. Production runs on PostgreSQL.
    """
    port = free_port()
    home = tmp_path_factory.mktemp("prefect-home")
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home)
    with temporary_database(postgres_dsn_base, prefix="envsteward_e2e_prefect") as dsn:
        database = dsn.rsplit("dbname=", 1)[1]
        with running_process(
            "prefect-server",
            [venv_executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            lambda: _healthy(f"{server.api_url}/health"),
            timeout=120,
            # the server's own setting only: workers and CLI calls reach the database through the API
            env=server.env(
                PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
            ),
            log_path=server.log,
        ):
            server.cli("work-pool", "create", WORK_POOL, "--type", "process")
            yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing e2e test's report carries the tail of the Prefect server's log: a 500 the UI or a worker
    saw ("Something went wrong" in the browser) has its traceback there, and the log is gone after CI."""
    report = yield
    server = getattr(item, "funcargs", {}).get("prefect_server")
    if report.failed and isinstance(server, PrefectServer):
        tail = log_tail(server.log, lines=80)
        if tail:
            report.sections.append(("Prefect server log (last 80 lines)", tail))
    return report
