"""Fixtures for the production-profile e2e tests: a Prefect server on PostgreSQL that can be killed and
started again, the profile's settings file for one test, and process workers on the ``envsteward`` pool.

* ``prod_server`` (session: the production-profile modules share it and its migrations):
  ``prefect server start`` on a free port with its own freshly created database on the machine's
  PostgreSQL (``envsteward_prod_profile_<hex>``, dropped at the end) and the scheduler service off (the
  tests start every run themselves). ``restart()`` SIGKILLs it and starts it again on the
  same port and database.
  The first ``profile`` registers every deployment (``prefect deploy --all``).
* ``profile``: the profile for one test (Redis state under the test's own key prefix, S3 storage in the
  test's moto buckets, limits on, a seeded catalog on OpenBao and moto), written as a settings file and
  applied with ``python -m envsteward.deployments.production setup`` (which checks every system first).
* ``Workers``: ``prefect worker start --pool envsteward --name NAME`` processes started WITHOUT the
  ``ENVSTEWARD_*`` settings (only the Vault token variable): the work pool's job template must carry them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient
from envsteward.settings import AWSSettings, VaultSettings
from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import free_port, venv_executable
from tests.fixtures.aws import S3Buckets
from tests.fixtures.databases import temporary_database
from tests.fixtures.vault import VAULT_TOKEN_ENV, VaultServer
from tests.unit.promotion._catalog import seed_environments, write_catalog

SERVER_START_SECONDS = 180
PRODUCTION = ("python", "-m", "envsteward.deployments.production")
WORKER = ("prefect", "worker", "start", "--pool", WORK_POOL)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass(frozen=True)
class ProdServer(PrefectServer):
    """A ``prefect server start`` on PostgreSQL that a test may kill and start again."""

    db_url: str = ""
    log: Path = Path()
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    deployed: list[bool] = field(default_factory=list)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._procs[-1] if self._procs else None

    def start(self) -> None:
        """Start the server; wait until /health answers. Fails the test with its log otherwise."""
        port = self.api_url.rsplit(":", 1)[1].split("/", 1)[0]
        env = self.env(
            PREFECT_API_DATABASE_CONNECTION_URL=self.db_url,
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        )
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [venv_executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(f"{self.api_url}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"prefect server did not start:\n{self.log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL the server's whole process group (no graceful shutdown) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture(scope="session")
def prod_server(postgres_dsn_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProdServer]:
    """The server on its own PostgreSQL database (dropped at the end)."""
    with temporary_database(postgres_dsn_base, prefix="envsteward_prod_profile") as dsn:
        dbname = dsn.rsplit("dbname=", 1)[1]
        home = tmp_path_factory.mktemp("prefect-prod-home")
        server = ProdServer(
            f"http://127.0.0.1:{free_port()}/api",
            home,
            db_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}",
            log=home / "server.log",
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class Profile:
    """One test's production profile: the settings file, the environment of CLI calls, the catalog."""

    server: ProdServer
    env_file: Path
    env: dict[str, str]
    catalog: Path
    home: Path
    redis_prefix: str
    buckets: S3Buckets

    def production(self, command: str) -> subprocess.CompletedProcess[str]:
        """``python -m envsteward.deployments.production COMMAND --env-file FILE`` (the README's call)."""
        return subprocess.run(
            [venv_executable(PRODUCTION[0]), *PRODUCTION[1:], command, "--env-file", str(self.env_file)],
            cwd=REPO,
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def cli_env(self) -> dict[str, str]:
        """A host's environment before the settings file: the API URL and the credentials only."""
        base = {k: v for k, v in self.env.items() if not k.startswith("ENVSTEWARD_")}
        return {**base, VAULT_TOKEN_ENV: self.env[VAULT_TOKEN_ENV]}

    def envsteward(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [venv_executable("envsteward"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _production_catalog(folder: Path, vault_base: str, ssm_base: str, health_url: str) -> Path:
    """The promotion tests' three-environment catalog, plus a Vault KV backup of production (wrapped by
    Vault transit, replicated to the DR region) and a drill of it, so that every deployment has work."""
    catalog = write_catalog(folder, vault_base=vault_base, ssm_base=ssm_base, health_url=health_url)
    environments = catalog / "environments.yaml"
    environments.write_text(
        environments.read_text()
        + "    backups:\n"
        + f"      - {{name: app-secrets, kind: vault_kv, path: {vault_base}/production,\n"
        + "         key_provider: vault_transit, key_id: envsteward-tests, replica_region: eu-central-1}\n"
        + "    drill: {target: app-secrets, rto_target_minutes: 15, rpo_target_minutes: 60}\n"
    )
    return catalog


@pytest.fixture(name="profile")
def profile_fixture(  # noqa: PLR0917
    prod_server: ProdServer,
    tmp_path: Path,
    vault_server: VaultServer,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    s3_buckets: S3Buckets,
    redis_key_prefix: str,
    redis_url: str,
) -> Profile:
    """A seeded platform and the profile's settings file for it; ``setup`` has run with it."""
    ssm_base = f"/{aws_name_prefix}"
    catalog = _production_catalog(
        tmp_path / "catalog", vault_kv_path, ssm_base, f"{prod_server.api_url}/health"
    )
    seed_environments(
        catalog,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        ssm_base,
    )
    prefix = f"{redis_key_prefix}prod-profile:"
    home = tmp_path / "home"
    settings = {
        "PREFECT_API_DATABASE_CONNECTION_URL": prod_server.db_url,
        "PREFECT_API_URL": prod_server.api_url,
        "ENVSTEWARD_REPO_DIR": str(REPO),
        "ENVSTEWARD_CATALOG": str(catalog),
        "ENVSTEWARD_HOME": str(home),
        "ENVSTEWARD_ACTOR": "e2e",
        "ENVSTEWARD_STATE__KIND": "redis",
        "ENVSTEWARD_STATE__REDIS_URL": redis_url,
        "ENVSTEWARD_STATE__KEY_PREFIX": prefix,
        "ENVSTEWARD_STORAGE__KIND": "s3",
        "ENVSTEWARD_STORAGE__BUCKET": s3_buckets.primary,
        "ENVSTEWARD_STORAGE__DR_BUCKET": s3_buckets.dr,
        "ENVSTEWARD_AWS__REGION": aws_settings.region,
        "ENVSTEWARD_AWS__DR_REGION": aws_settings.dr_region,
        "ENVSTEWARD_AWS__ENDPOINT_URL": str(aws_settings.endpoint_url),
        "ENVSTEWARD_AWS__MAX_ATTEMPTS": "1",
        "ENVSTEWARD_VAULT__ADDR": vault_settings.addr,
        "ENVSTEWARD_VAULT__TOKEN_ENV": VAULT_TOKEN_ENV,
        "ENVSTEWARD_VAULT__TRANSIT_MOUNT": vault_server.transit_mount,
        "ENVSTEWARD_LIMITS__ENABLED": "true",
        "ENVSTEWARD_LIMITS__VAULT": "4",
        "ENVSTEWARD_LIMITS__SSM": "3",
    }
    env_file = tmp_path / "production.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    env = prod_server.env(**settings, **{VAULT_TOKEN_ENV: vault_server.root_token})
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL")  # the server host's setting, not a worker's
    found = Profile(prod_server, env_file, env, catalog, home, prefix, s3_buckets)
    ran = found.production("setup")  # checks every system first; points the pool at this test's platform
    if ran.returncode != 0:
        pytest.fail(f"production setup failed:\n{ran.stdout}\n{ran.stderr}")
    if not prod_server.deployed:
        # once per server, after setup made the pool; the deployments name no platform, so the tests
        # share them and point the pool at their own
        prod_server.cli("deploy", "--all", env=env)
        prod_server.deployed.append(True)
    return found


@dataclass
class Workers:
    """Process workers on the ``envsteward`` pool, each logging to its own file."""

    profile: Profile
    limit: int
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        env = {
            **self.profile.cli_env(),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        }
        with (self.folder / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [
                    venv_executable(WORKER[0]),
                    *WORKER[1:],
                    "--name",
                    name,
                    "--limit",
                    str(self.limit),
                    "--type",
                    "process",
                ],
                cwd=tempfile.gettempdir(),  # the pool's working directory must be what matters
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def runs_of(self, name: str) -> set[str]:
        """Ids of the flow runs that ran in this worker's processes: the run's own "View at .../<id>" line,
        which the worker streams from the process it started (both workers may *try* to submit a run;
        only one wins its Pending transition)."""
        return set(re.findall(r"View at \S*/flow-run/([0-9a-f-]{36})", self.log(name)))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def tails(self) -> str:
        return "\n".join(f"--- {name}:\n{self.log(name)[-3000:]}" for name in self.procs)


def start_workers(profile: Profile, folder: Path, *names: str, limit: int) -> Workers:
    workers = Workers(profile, limit, folder)
    for name in names:
        workers.start(name)
    return workers


async def _call(api_url: str, call: str, *args: Any, **kwargs: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await getattr(client, call)(*args, **kwargs)


def api(server: PrefectServer, call: str, *args: Any, **kwargs: Any) -> Any:
    """One PrefectClient call against ``server`` (a fresh client each time: survives a server restart)."""
    return asyncio.run(_call(server.api_url, call, *args, **kwargs))


def run_deployment(server: PrefectServer, name: str, parameters: dict[str, Any] | None = None) -> str:
    """Create a flow run of deployment ``FLOW/DEPLOYMENT``; its id."""
    deployment = api(server, "read_deployment_by_name", name)
    run = api(server, "create_flow_run_from_deployment", deployment.id, parameters=parameters or {})
    return str(run.id)


def wait_for(
    server: PrefectServer, run_id: str, done: Any, what: str, workers: Workers, *, timeout: float = 240
) -> Any:
    """Poll the run until ``done(run)``; fail with the workers' logs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run = api(server, "read_flow_run", run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} did not become {what} (state {run.state_name}):\n{workers.tails()}")
        time.sleep(1)


def is_final(run: Any) -> bool:
    return run.state is not None and run.state.is_final()


def is_paused(run: Any) -> bool:
    return run.state is not None and run.state.is_paused()


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state letter


def _runs_flow(pid: int, run_id: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ


def flow_run_process(workers: Workers, name: str, run_id: str) -> int | None:
    """The pid of the process worker ``name`` started for flow run ``run_id`` (the topmost descendant of
    the worker whose environment names the run: Prefect sets ``PREFECT__FLOW_RUN_ID`` for it), or None.
    Reads /proc only (Linux)."""
    root = workers.procs[name].pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _runs_flow(int(entry.name), run_id):
            continue
        pid, parent = int(entry.name), _parent_of(int(entry.name))
        if parent is not None and _runs_flow(parent, run_id):
            continue  # a child of the run's process (e.g. pg_dump): not the topmost
        while parent not in (None, 0, 1):
            if parent == root:
                return pid
            parent = _parent_of(parent)
    return None
