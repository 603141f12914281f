"""A worker's flow-run process SIGKILLed in the middle of the work, on the production profile (a Prefect
server on PostgreSQL, process workers, Redis state, S3 on moto); fixtures from ``prod_profile`` (the server
is shared with ``test_production_profile``).

* drift heal: twenty low-severity SSM parameters drift in staging; a proxy in front of moto forwards five
  PutParameter requests and holds the sixth, and the flow-run process is SIGKILLed there. The run ends
  Crashed; every parameter holds its desired or its drifted value (nothing else); each write made is in
  the audit log (``drift.heal_writing``, announced before the write); the dead run's heal lease is taken
  over by the next scan (its run is finished), which heals exactly the rest and releases the lease.

* backup: a PostgreSQL target is dumped through a loopback proxy that stops forwarding after a set number
  of bytes, so the run is held mid-stream with a multipart upload open in the primary bucket; the flow-run
  process is SIGKILLed there. The worker (alive) marks the run Crashed; no manifest exists for the half
  backup; ``backup list --incomplete`` reports the unfinished upload, too young to remove; the next run on
  the other worker completes and verifies; the leftover is removed once older than the grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.prod_profile import (  # noqa: F401 - fixtures
    Profile,
    flow_run_process,
    is_final,
    prod_server,
    profile_fixture,
    run_deployment,
    start_workers,
    wait_for,
)
from tests.fixtures.databases import temporary_database
from tests.fixtures.faultproxy import FaultProxy, _Pair

pytestmark = pytest.mark.e2e

ROWS = 1_800_000
"""md5 hex rows: about 60 MB of COPY text, compressed by the pipeline's zstd to about half."""
STALL_AFTER = 40 * 1024 * 1024
"""Bytes from the server after which the proxy holds pg_dump: about 20 MB of compressed output, well past
one 8 MiB part even with what zstd's worker thread still holds (the multipart upload is open), well
before the end of the dump."""


class StallingProxy(FaultProxy):
    """A :class:`FaultProxy` that, while ``stall_after`` is set, stops forwarding a connection's server
    bytes once it forwarded that many (the client waits, as on a hung network) until :meth:`release`."""

    def __init__(self, upstream_host: str, upstream_port: int, stall_after: int | None) -> None:
        self.stall_after = stall_after
        self.stalled = threading.Event()
        self._released = threading.Event()
        super().__init__(upstream_host, upstream_port)

    def release(self) -> None:
        self.stall_after = None
        self._released.set()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        if src is not pair.upstream:
            super()._pump(pair, src, dst)
            return
        sent = 0
        try:
            while True:
                limit = self.stall_after
                if limit is not None and sent >= limit:
                    self.stalled.set()
                    self._released.wait()
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        if pair.one_done():
            for sock in (pair.client, pair.upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def stop(self) -> None:
        self.release()
        super().stop()


@pytest.fixture
def big_database(postgres_dsn_base: str) -> Iterator[str]:
    """A database with one table of ``ROWS`` md5 rows; its name."""
    import psycopg

    with temporary_database(postgres_dsn_base, prefix="envsteward_worker_kill") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE payload (id bigint PRIMARY KEY, body text NOT NULL)")
            conn.execute(
                "INSERT INTO payload SELECT n, md5(n::text || random()::text) FROM generate_series(1, %s) n",
                (ROWS,),
            )
        yield dsn.rsplit("dbname=", 1)[1]


def _add_target(profile: Profile, line: str) -> None:
    """Add a backup target to production's ``backups`` (the catalog is read afresh by every run)."""
    environments = profile.catalog / "environments.yaml"
    text = environments.read_text()
    assert "    drill: {" in text
    environments.write_text(text.replace("    drill: {", f"      - {line}\n    drill: {{", 1))


def _json(profile: Profile, *args: str) -> Any:
    ran = profile.envsteward(*args, "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return json.loads(ran.stdout)


def _multipart_uploads(profile: Profile, aws_clients: Any) -> list[dict[str, Any]]:
    answer = aws_clients.s3(profile.buckets.region).list_multipart_uploads(Bucket=profile.buckets.primary)
    return list(answer.get("Uploads", []))


def _uploaded_parts(profile: Profile, aws_clients: Any) -> list[dict[str, Any]]:
    """The parts S3 holds of the open multipart upload(s) of the primary bucket."""
    s3 = aws_clients.s3(profile.buckets.region)
    return [
        part
        for upload in _multipart_uploads(profile, aws_clients)
        for part in s3.list_parts(
            Bucket=profile.buckets.primary, Key=upload["Key"], UploadId=upload["UploadId"]
        ).get("Parts", [])
    ]


def _until(check: Any, what: str, timeout: float, workers: Any) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"never {what}:\n{workers.tails()}")
        time.sleep(0.2)
    return found


def _removed_only_when_old(profile: Profile, aws_clients: Any, key: str) -> None:
    """The leftover is still there (a new run does not touch another run's upload) and prune keeps it
    until it is older than the grace period (6 h + 1 h); seen 8 hours from now, it is removed."""
    from envsteward.backup.leftovers import clean_leftovers, find_leftovers
    from envsteward.backup.stores import backup_stores
    from envsteward.services import Services
    from envsteward.settings import Settings

    stores = backup_stores(Services(Settings(_env_file=profile.env_file)))  # type: ignore[call-arg]
    now = clean_leftovers(stores)
    assert [x.kind for x in now.found] == ["upload"]
    assert now.cleanup is None, "a young leftover (maybe a running backup) was removed"
    later = clean_leftovers(stores, found=find_leftovers(stores, now=datetime.now(UTC) + timedelta(hours=8)))
    assert later.cleanup is not None
    assert [x.key for x in later.cleanup.removed] == [key]
    assert _json(profile, "backup", "list", "--incomplete") == []
    assert _multipart_uploads(profile, aws_clients) == []


def test_backup_killed_mid_upload_crashes_leaves_a_reported_leftover_and_the_next_run_completes(
    profile: Profile, tmp_path: Path, big_database: str, aws_clients: Any
) -> None:
    started = time.monotonic()
    proxy = StallingProxy("127.0.0.1", 5432, STALL_AFTER)
    _add_target(
        profile,
        f"{{name: big-db, kind: postgres, dsn: 'postgresql://postgres@127.0.0.1:{proxy.port}/{big_database}',"
        " table_checksums: false, key_provider: vault_transit, key_id: envsteward-tests}",
    )
    params = {"environment": "production", "target": "big-db"}
    workers = start_workers(profile, tmp_path, "worker-a", limit=1)
    try:
        run_id = run_deployment(profile.server, "backup-environment/backup-environment", params)
        # held mid-stream: the proxy stopped forwarding and the upload of the first part(s) is open
        _until(proxy.stalled.is_set, "stalled pg_dump", 180, workers)
        uploads = _until(lambda: _multipart_uploads(profile, aws_clients), "a multipart upload", 60, workers)
        assert len(uploads) == 1, uploads
        # a part has arrived (moto dates an upload's initiation in 2010: without a part, its age is wrong)
        _until(lambda: _uploaded_parts(profile, aws_clients), "an uploaded part", 60, workers)
        pid = flow_run_process(workers, "worker-a", run_id)
        assert pid is not None, f"no process runs {run_id}:\n{workers.tails()}"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        crashed = wait_for(profile.server, run_id, is_final, "final", workers, timeout=60)
        marked_after = time.monotonic() - killed_at
        assert crashed.state.is_crashed(), f"{crashed.state_name}: {crashed.state.message}"
        assert workers.procs["worker-a"].poll() is None, "the worker died with its flow run"
        proxy.release()  # the orphaned pg_dump finishes into a closed pipe and exits

        # nothing half-applied: no backup of the target is listed (no manifest), the upload is a leftover
        assert _json(profile, "backup", "list", "--env", "production", "--target", "big-db") == []
        leftovers = _json(profile, "backup", "list", "--incomplete")
        assert [(x["region"], x["kind"], x["removable"]) for x in leftovers] == [
            ("primary", "upload", False)
        ], leftovers
        assert leftovers[0]["key"].endswith(uploads[0]["Key"].rsplit("/", 2)[-2] + "/data.bin"), leftovers

        # the next run, on another worker, re-does the backup from the start
        workers.start("worker-b")
        workers.procs.pop("worker-a").send_signal(signal.SIGTERM)
        again = run_deployment(profile.server, "backup-environment/backup-environment", params)
        done = wait_for(profile.server, again, is_final, "final", workers, timeout=180)
        assert done.state.is_completed(), f"{done.state_name}: {done.state.message}\n{workers.tails()}"
        assert again in workers.runs_of("worker-b")
    finally:
        workers.stop()
        proxy.stop()
    backups = _json(profile, "backup", "list", "--env", "production", "--target", "big-db")
    assert len(backups) == 1, backups
    backup_id = backups[0]["backup_id"] if "backup_id" in backups[0] else backups[0]["id"]
    verified = profile.envsteward("backup", "verify", str(backup_id), timeout=180)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    _removed_only_when_old(profile, aws_clients, leftovers[0]["key"])
    print(f"backup kill: Crashed {marked_after:.1f} s after SIGKILL, test {time.monotonic() - started:.0f} s")


# ---------------------------------------------------------------------------------------------------------
# drift heal: the flow-run process killed between two writes of a heal


BULK = 20
"""Drifted SSM parameters in staging, all low severity: one heal task writes them one by one."""
ALLOWED_PUTS = 5
"""PutParameter requests the proxy forwards before it holds the next one (the kill happens there)."""


class PutStallingProxy(FaultProxy):
    """A :class:`FaultProxy` in front of moto that forwards ``allowed`` SSM PutParameter requests and holds
    the next one (its bytes never reach moto) until :meth:`release`; every other request passes."""

    def __init__(self, upstream_host: str, upstream_port: int, allowed: int) -> None:
        self.allowed = allowed
        self.puts = 0
        self.stalled = threading.Event()
        self._released = threading.Event()
        super().__init__(upstream_host, upstream_port)

    def release(self) -> None:
        self._released.set()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        if src is not pair.client:
            super()._pump(pair, src, dst)
            return
        try:
            while data := src.recv(65536):
                if b"AmazonSSM.PutParameter" in data:
                    if self.puts >= self.allowed:
                        self.stalled.set()
                        self._released.wait()
                        break  # the held request is dropped, never forwarded
                    self.puts += 1
                dst.sendall(data)
        except OSError:
            pass
        for sock in (pair.client, pair.upstream):
            with contextlib.suppress(OSError):
                sock.close()

    def stop(self) -> None:
        self.release()
        super().stop()


def _point_aws_at(profile: Profile, endpoint: str) -> None:
    """Rewrite the profile's AWS endpoint and apply it to the work pool (what the workers' runs get)."""
    lines = profile.env_file.read_text().splitlines()
    profile.env_file.write_text(
        "".join(
            (
                f"ENVSTEWARD_AWS__ENDPOINT_URL={endpoint}"
                if line.startswith("ENVSTEWARD_AWS__ENDPOINT_URL=")
                else line
            )
            + "\n"
            for line in lines
        )
    )
    ran = profile.production("setup")
    assert ran.returncode == 0, ran.stdout + ran.stderr


def _heal_everything_low(profile: Profile) -> None:
    policies = profile.catalog / "policies.yaml"
    text = policies.read_text()
    assert text.startswith("drift:\n")
    policies.write_text(
        text.replace(
            "drift:\n",
            "drift:\n  default_severity: low\n  heal: {enabled: true, max_severity: low}\n",
            1,
        )
    )
    staging = profile.catalog / "config" / "staging.yaml"
    staging.write_text(
        staging.read_text()
        + "services:\n  bulk:\n"
        + "".join(f"    k{index:02}: desired-{index}\n" for index in range(BULK))
    )


def _bulk(aws_clients: Any, ssm_base: str) -> dict[str, str]:
    ssm = aws_clients.ssm()
    found = {}
    for index in range(BULK):
        name = f"{ssm_base}/staging/services/bulk/k{index:02}"
        found[name] = str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    return found


def _audit(profile: Profile) -> list[Any]:
    from envsteward.services import Services
    from envsteward.settings import Settings

    services = Services(Settings(_env_file=profile.env_file))  # type: ignore[call-arg]
    return [r for r in services.audit_log().records() if r.action.startswith("drift.heal")]


def test_drift_heal_killed_between_writes_crashes_and_the_next_scan_heals_the_rest(  # noqa: PLR0915
    profile: Profile, tmp_path: Path, aws_clients: Any, aws_settings: Any, aws_name_prefix: str
) -> None:
    from urllib.parse import urlsplit

    from envsteward.adapters.state_redis import RedisStateStore
    from envsteward.scan.heal_lease import LEASE_KEY

    started = time.monotonic()
    ssm_base = f"/{aws_name_prefix}"
    _heal_everything_low(profile)
    ssm = aws_clients.ssm()
    for index in range(BULK):
        ssm.put_parameter(
            Name=f"{ssm_base}/staging/services/bulk/k{index:02}", Value=f"drifted-{index}", Type="String"
        )
    moto = urlsplit(str(aws_settings.endpoint_url))
    proxy = PutStallingProxy(moto.hostname or "127.0.0.1", int(moto.port or 80), ALLOWED_PUTS)
    _point_aws_at(profile, f"http://127.0.0.1:{proxy.port}")
    state = RedisStateStore(
        profile.env["ENVSTEWARD_STATE__REDIS_URL"], prefix=profile.env["ENVSTEWARD_STATE__KEY_PREFIX"]
    )
    params = {"environments": ["staging"], "heal": True}
    workers = start_workers(profile, tmp_path, "worker-a", limit=1)
    try:
        run_id = run_deployment(profile.server, "drift-scan/drift-scan", params)
        _until(proxy.stalled.is_set, "a held PutParameter", 180, workers)
        pid = flow_run_process(workers, "worker-a", run_id)
        assert pid is not None, f"no process runs {run_id}:\n{workers.tails()}"
        os.kill(pid, signal.SIGKILL)
        crashed = wait_for(profile.server, run_id, is_final, "final", workers, timeout=60)
        assert crashed.state.is_crashed(), f"{crashed.state_name}: {crashed.state.message}"
        proxy.cut()
        proxy.release()
        _point_aws_at(profile, str(aws_settings.endpoint_url))

        # half-way, key by key: each parameter holds the desired value or its drifted one, nothing else
        values = _bulk(aws_clients, ssm_base)
        healed = sorted(k for k, v in values.items() if v.startswith("desired-"))
        assert all(v.startswith(("desired-", "drifted-")) for v in values.values()), values
        assert 0 < len(healed) < BULK, values
        # the audit log shows every write that may have happened (announced before it was made), even
        # though the killed run recorded no outcome
        records = _audit(profile)
        announced = {r.details["path"] for r in records if r.action == "drift.heal_writing"}
        assert {f"services.bulk.{k.rsplit('/', 1)[-1]}" for k in healed} <= announced
        # the dead run's heal lease is still there; Prefect says the run is finished, so it is not live
        assert state.get(LEASE_KEY)["run_id"] == run_id  # type: ignore[index]

        # the next scan, on another worker, takes the lease over and heals the rest
        workers.start("worker-b")
        workers.procs.pop("worker-a").send_signal(signal.SIGTERM)
        again = run_deployment(profile.server, "drift-scan/drift-scan", params)
        done = wait_for(profile.server, again, is_final, "final", workers, timeout=180)
        assert done.state.is_completed(), f"{done.state_name}: {done.state.message}\n{workers.tails()}"
        assert again in workers.runs_of("worker-b")
        assert state.get(LEASE_KEY) is None, "the healing run released its lease"
    finally:
        workers.stop()
        proxy.stop()
        state.close()
    assert set(_bulk(aws_clients, ssm_base).values()) == {f"desired-{i}" for i in range(BULK)}
    second = [r for r in _audit(profile) if r.action == "drift.healed"]
    second_paths = sorted(r.details["path"] for r in second if r.details["path"].startswith("services.bulk."))
    # the second run healed exactly what the first had not written (no key written twice)
    assert len(second_paths) == BULK - len(healed), second_paths
    assert not {f"services.bulk.{k.rsplit('/', 1)[-1]}" for k in healed} & set(second_paths)
    took = time.monotonic() - started
    print(f"drift heal kill: {len(healed)} of {BULK} written before the kill; test {took:.0f} s")
