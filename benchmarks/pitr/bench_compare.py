"""envsteward vs pgBackRest, side by side on the same throwaway cluster and the same WAL.

    .venv/bin/python benchmarks/pitr/bench_compare.py --rounds 3 --wal-gib 1 \
        --out benchmarks/pitr/results-compare.json

Everything runs as the ``postgres`` OS user (as on a database host) against one throwaway PostgreSQL 15
cluster (``tests/fixtures/pg_cluster.py``). Both tools compress with zstd level 1 and encrypt (envsteward:
AES-256-GCM chunks under a per-object data key; pgBackRest: ``repo1-cipher-type=aes-256-cbc``); both
write to local disk (envsteward: the embedded filesystem store, primary + DR folder, synchronously;
pgBackRest: one ``repo1-path``, so envsteward writes every segment twice).

A. serial push: the same K real segments (from ``pgbench -i``) pushed one process per segment, as
   PostgreSQL's archiver does: ``envsteward wal push`` (segments outside a ``pg_wal`` layout: synchronous),
   ``envsteward wal push`` with the archive-ahead (the segments in a ``pg_wal`` layout with ``.ready``
   files, ``bench_wal.py``'s ``push_like_postgresql``) vs ``pgbackrest archive-push`` (async off), into a
   fresh store / repo each round.
B. keep-up: ``archive_command`` switched (ALTER SYSTEM + reload) between envsteward, pgBackRest sync and
   pgBackRest async (``archive-async=y``, ``process-max=2``); each phase runs a WAL burst (``pgbench -i``)
   then ``pgbench -c 2`` for S seconds, sampling ``pg_wal/archive_status/*.ready`` every second.
   Throughput = segments archived / seconds from the start of the phase to an empty backlog.
C. restore: with ``archive_command`` = both tools, one base backup each, then N GiB of WAL; then, per
   round, restore base backup + all WAL into a new directory and time it until the promoted server
   answers: ``envsteward pitr restore --to-latest`` (read-ahead on; one extra round with it off) vs
   ``pgbackrest restore`` + ``pg_ctl start`` with ``archive-async=y`` (pgBackRest's prefetching
   ``archive-get``, the stronger of its two modes).

   Both sides wait for the promotion the same way: a stat of ``recovery.signal`` every 20 ms (PostgreSQL
   removes it when it promotes), a query once it is gone. Per round the JSON also has where the time went
   (``restore.envsteward_breakdown``: the restore command's ``timings`` and every envsteward process
   PostgreSQL started, with its start, duration and exit code; ``restore.pgbackrest_breakdown``: its
   restore step and start-to-promoted).

Rounds are interleaved (the order alternates) and each figure is reported as best and median.
``--only restore`` (or ``--skip``) runs a subset of the phases. Peak RSS of
every envsteward process is taken with GNU time (``%M``) around the console script, including the ones
PostgreSQL runs (archive_command / restore_command); a forked read-ahead child is not measured by it (it
starts as a copy of its parent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fixtures._proc import free_port  # noqa: E402
from tests.fixtures.pg_cluster import (  # noqa: E402
    PG_BIN,
    ClusterFactory,
    PgCluster,
    as_db_user,
    give_to_db_user,
    pgbench_command,
    run_checked,
)
from tests.integration._pitr_setup import SELECTOR, PitrSetup, pitr_setup  # noqa: E402


def _bench_wal() -> Any:
    """``bench_wal.py`` next to this file (its PostgreSQL-like serial push), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_wal", Path(__file__).with_name("bench_wal.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STANZA = "bench"
SEGMENT = 16 << 20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(values: list[float], better: str = "low") -> dict[str, float]:
    best = min(values) if better == "low" else max(values)
    return {"best": round(best, 3), "median": round(statistics.median(values), 3), "all": values}


class Bench:
    def __init__(self, factory: ClusterFactory) -> None:
        self.factory = factory
        self.setup: PitrSetup = pitr_setup(factory, "envsteward")
        self.root = factory.base / "bench"
        self.root.mkdir()
        self.rss_log = self.root / "envsteward-rss.log"
        self.rss_log.touch()
        # every envsteward process (ours and PostgreSQL's) runs through GNU time, appending its peak RSS,
        # and leaves its start, end and exit code in the trace (the restore's breakdown)
        self.trace_log = self.root / "envsteward-trace.log"
        self.trace_log.touch()
        wrapper = self.root / "envsteward-timed"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'echo "$(date +%s.%N) start $$ $*" >> {self.trace_log}\n'
            f'/usr/bin/time -a -o {self.rss_log} -f %M {self.setup.executable} "$@"\n'
            "code=$?\n"
            f'echo "$(date +%s.%N) end $$ $code" >> {self.trace_log}\n'
            "exit $code\n"
        )
        wrapper.chmod(0o755)
        self.setup.executable = str(wrapper)
        self.breakdowns: list[dict[str, Any]] = []
        self.pgbr_breakdowns: list[dict[str, Any]] = []
        self.pgbr_conf = self.root / "pgbackrest.conf"
        for folder in ("pgbr-lock", "pgbr-spool", "pgbr-log", "segments"):
            (self.root / folder).mkdir()
        give_to_db_user(self.root)
        self.cluster: PgCluster = factory(
            "src",
            archive_mode="on",
            archive_command=f"'cp %p {self.root}/segments/%f'",
            archive_timeout="'60s'",
            max_wal_size="'2GB'",
        )
        self.setup.write_catalog(self.cluster.port)
        self.setup.cluster = self.cluster
        self.write_pgbr_conf(self.root / "pgbr-repo")

    # -- helpers -------------------------------------------------------------------------------------

    def write_pgbr_conf(
        self, repo: Path, *, extra: dict[str, str] | None = None, pg_path: Path | None = None
    ) -> None:
        settings = {
            "repo1-path": str(repo),
            "repo1-cipher-type": "aes-256-cbc",
            "repo1-cipher-pass": "bench-only-passphrase-not-a-secret",
            "compress-type": "zst",
            "compress-level": "1",
            "log-level-console": "warn",
            "log-level-file": "off",
            "lock-path": str(self.root / "pgbr-lock"),
            "spool-path": str(self.root / "pgbr-spool"),
            "log-path": str(self.root / "pgbr-log"),
            "start-fast": "y",
            **(extra or {}),
        }
        stanza = {
            "pg1-path": str(pg_path or self.cluster.data_dir),
            "pg1-port": str(self.cluster.port),
            "pg1-socket-path": str(self.factory.base),
            "pg1-user": "postgres",
        }
        text = "[global]\n" + "".join(f"{k}={v}\n" for k, v in settings.items())
        text += f"[{STANZA}]\n" + "".join(f"{k}={v}\n" for k, v in stanza.items())
        self.pgbr_conf.write_text(text)
        give_to_db_user(self.root)

    def pgbackrest(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return run_checked(
            as_db_user(["pgbackrest", f"--config={self.pgbr_conf}", f"--stanza={STANZA}", *args]),
            timeout=timeout,
        )

    def pgbench(self, *args: str, timeout: float = 3600) -> str:
        return run_checked(pgbench_command(self.cluster.port, *args), timeout=timeout).stdout

    def set_archive_command(self, command: str) -> None:
        self.cluster.execute(f"ALTER SYSTEM SET archive_command = '{command}'")
        self.cluster.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def envsteward_command(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.setup.env.items())
        return f"{env} {self.setup.executable} wal push --target {SELECTOR} %p"

    def pgbr_command(self, conf: Path | None = None) -> str:
        return f"pgbackrest --config={conf or self.pgbr_conf} --stanza={STANZA} archive-push %p"

    def rss_peak_mib(self) -> float:
        values = [int(line) for line in self.rss_log.read_text().split() if line.isdigit()]
        return round(max(values, default=0) / 1024, 1)

    def wait_archived(self, timeout: float = 1800) -> str:
        (segment,) = self.cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0]
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            last, failed = self.cluster.execute(
                "SELECT last_archived_wal, failed_count FROM pg_stat_archiver"
            )[0]
            if last is not None and last >= segment:
                return str(segment)
            time.sleep(0.2)
        raise AssertionError(f"{segment} not archived after {timeout}s ({failed} failures)")

    def ready(self) -> int:
        return len(list((self.cluster.data_dir / "pg_wal" / "archive_status").glob("*.ready")))

    # -- A: serial push -------------------------------------------------------------------------------

    def make_segments(self, count: int) -> list[Path]:
        log(f"making {count} segments with pgbench -i")
        folder = self.root / "segments"
        scale = 4
        while len(list(folder.iterdir())) < count + 1:
            self.pgbench("-i", "-s", str(scale), "-q")
            self.wait_archived()
            scale += 4
        return sorted(folder.iterdir())[1 : count + 1]  # the first holds the initdb/bootstrap WAL

    def push_envsteward(self, segments: list[Path]) -> float:
        for folder in ("objects", "objects-dr"):
            shutil.rmtree(self.setup.home / folder, ignore_errors=True)
            (self.setup.home / folder).mkdir()
        give_to_db_user(self.setup.home)
        started = time.monotonic()
        for path in segments:
            self.setup.envsteward("wal", "push", "--target", SELECTOR, str(path))
        return time.monotonic() - started

    def push_pgbackrest(self, segments: list[Path], round_no: int) -> float:
        repo = self.root / f"pgbr-serial-{round_no}"
        conf = self.root / f"pgbackrest-serial-{round_no}.conf"
        original = self.pgbr_conf
        self.pgbr_conf = conf
        self.write_pgbr_conf(repo)
        self.pgbackrest("stanza-create")
        started = time.monotonic()
        for path in segments:
            self.pgbackrest("archive-push", str(path))
        elapsed = time.monotonic() - started
        self.pgbr_conf = original
        shutil.rmtree(repo, ignore_errors=True)
        return elapsed

    def push_envsteward_ahead(self, segments: list[Path], round_no: int) -> float:
        """The segments in a ``pg_wal`` layout, pushed as PostgreSQL's archiver does with the archive-ahead
        on (its default): ``bench_wal.push_like_postgresql``, into fresh stores."""
        for folder in ("objects", "objects-dr"):
            shutil.rmtree(self.setup.home / folder, ignore_errors=True)
            (self.setup.home / folder).mkdir()
        give_to_db_user(self.setup.home)
        data_dir = self.root / f"ahead-{round_no}"
        seconds = float(_bench_wal().push_like_postgresql(self.setup, segments, data_dir)["seconds"])
        shutil.rmtree(data_dir, ignore_errors=True)
        return seconds

    def serial(self, count: int, rounds: int) -> dict[str, Any]:
        segments = self.make_segments(count)
        tools = ["envsteward", "envsteward-archive-ahead", "pgbackrest"]
        results: dict[str, list[float]] = {tool: [] for tool in tools}
        for round_no in range(rounds):
            order = tools if round_no % 2 == 0 else tools[::-1]
            for tool in order:
                if tool == "envsteward":
                    seconds = self.push_envsteward(segments)
                elif tool == "envsteward-archive-ahead":
                    seconds = self.push_envsteward_ahead(segments, round_no)
                else:
                    seconds = self.push_pgbackrest(segments, round_no)
                results[tool].append(round(count / seconds, 2))
                log(f"serial push round {round_no + 1} {tool}: {count / seconds:.2f} segments/s")
        pgbackrest = statistics.median(results["pgbackrest"])
        return {
            "segments": count,
            "segments_per_second": {tool: summary(values, "high") for tool, values in results.items()},
            "ratio_median_pgbackrest_over_envsteward": round(
                pgbackrest / statistics.median(results["envsteward"]), 2
            ),
            "ratio_median_pgbackrest_over_envsteward_archive_ahead": round(
                pgbackrest / statistics.median(results["envsteward-archive-ahead"]), 2
            ),
        }

    # -- B: keep-up under pgbench -----------------------------------------------------------------------

    def keep_up_phase(self, tool: str, seconds: int, burst_scale: int) -> dict[str, Any]:
        async_conf = self.root / "pgbackrest-async.conf"
        commands = {
            "envsteward": self.envsteward_command(),
            "pgbackrest-sync": self.pgbr_command(),
            "pgbackrest-async": self.pgbr_command(async_conf),
        }
        self.set_archive_command(commands[tool])
        before = self.cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
        samples: list[int] = []
        started = time.monotonic()
        burst = subprocess.Popen(
            pgbench_command(self.cluster.port, "-i", "-q", "-s", str(burst_scale)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while burst.poll() is None:
            samples.append(self.ready())
            time.sleep(1)
        bench = subprocess.Popen(
            pgbench_command(self.cluster.port, "-n", "-c", "2", "-T", str(seconds)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while bench.poll() is None:
            samples.append(self.ready())
            time.sleep(1)
        tps = next((line for line in bench.communicate()[0].splitlines() if line.startswith("tps")), "")
        self.wait_archived()
        elapsed = time.monotonic() - started
        after = self.cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
        archived = after[0] - before[0]
        tail = samples[len(samples) // 2 :]
        return {
            "segments_archived": archived,
            "seconds_to_empty_backlog": round(elapsed, 1),
            "segments_per_second": round(archived / elapsed, 2),
            "ready_samples": samples,
            "ready_max": max(samples, default=0),
            "ready_max_second_half": max(tail, default=0),
            "ready_last": samples[-1] if samples else 0,
            "failures": after[1] - before[1],
            "pgbench": tps,
        }

    def keep_up(self, rounds: int, seconds: int, burst_scale: int) -> dict[str, Any]:
        self.write_pgbr_conf(self.root / "pgbr-repo")
        async_conf = self.root / "pgbackrest-async.conf"
        self.pgbackrest("stanza-create")
        text = self.pgbr_conf.read_text().replace(
            "[global]\n", "[global]\narchive-async=y\nprocess-max=2\narchive-push-queue-max=4GiB\n"
        )
        async_conf.write_text(text)
        give_to_db_user(self.root)
        tools = ["envsteward", "pgbackrest-sync", "pgbackrest-async"]
        phases: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
        for round_no in range(rounds):
            order = tools[round_no % 3 :] + tools[: round_no % 3]
            for tool in order:
                result = self.keep_up_phase(tool, seconds, burst_scale)
                phases[tool].append(result)
                log(
                    f"keep-up round {round_no + 1} {tool}: {result['segments_per_second']} seg/s, "
                    f"backlog max {result['ready_max']} (2nd half {result['ready_max_second_half']}), "
                    f"{result['failures']} failures"
                )
        return {
            "pgbench_seconds": seconds,
            "burst": f"pgbench -i -s {burst_scale}",
            "segments_per_second": {
                tool: summary([r["segments_per_second"] for r in runs], "high")
                for tool, runs in phases.items()
            },
            "ready_max": {tool: max(r["ready_max"] for r in runs) for tool, runs in phases.items()},
            "ready_max_second_half": {
                tool: max(r["ready_max_second_half"] for r in runs) for tool, runs in phases.items()
            },
            "failures": {tool: sum(r["failures"] for r in runs) for tool, runs in phases.items()},
            "phases": phases,
        }

    # -- C: restore -----------------------------------------------------------------------------------

    def prepare_restore(self, wal_gib: float) -> dict[str, Any]:
        self.write_pgbr_conf(self.root / "pgbr-repo", extra={"archive-async": "y", "process-max": "2"})
        self.pgbackrest("stanza-create")
        self.set_archive_command(f"{self.envsteward_command()} && {self.pgbr_command()}")
        self.wait_archived()
        log("base backups (envsteward, pgbackrest)")
        self.setup.envsteward("pitr", "base-backup", SELECTOR, "--no-prune", timeout=3600)
        self.pgbackrest("backup", "--type=full")
        start_lsn = self.cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
        target = wal_gib * (1 << 30)
        generated = 0.0
        log(f"generating {wal_gib} GiB of WAL")
        while generated < target:
            self.pgbench("-i", "-q", "-s", "16")
            generated = float(
                self.cluster.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start_lsn,))[0][0]
            )
        self.cluster.execute("CREATE TABLE IF NOT EXISTS bench_marker (at timestamptz)")
        self.cluster.execute("INSERT INTO bench_marker VALUES (now())")
        last = self.wait_archived()
        rows = self.cluster.execute("SELECT count(*) FROM pgbench_accounts")[0][0]
        self.cluster.stop("fast")
        return {
            "wal_bytes": int(generated),
            "wal_gib": round(generated / (1 << 30), 2),
            "last_segment": last,
            "accounts": rows,
        }

    def restored_ok(self, port: int, data_dir: Path) -> int:
        done = run_checked(
            as_db_user(
                [
                    str(PG_BIN / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-Atc",
                    "SELECT count(*) FROM pgbench_accounts WHERE (SELECT count(*) FROM bench_marker) = 1",
                    "postgres",
                ]
            )
        )
        run_checked(
            as_db_user([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"])
        )
        shutil.rmtree(data_dir, ignore_errors=True)
        return int(done.stdout.strip())

    def restore_envsteward(self, prefetch: bool) -> tuple[float, int]:
        data_dir = self.root / "restore-envsteward"
        port = free_port()
        env_prefix = [] if prefetch else ["env", "ENVSTEWARD_WAL_PREFETCH=0"]
        self.trace_log.write_text("")
        started, wall = time.monotonic(), time.time()
        args = ["pitr", "restore", SELECTOR, "--data-dir", str(data_dir), "--to-latest", "--port", str(port)]
        command = as_db_user(
            [*env_prefix, self.setup.executable, *args, "--json"],
            {**self.setup.env, "ENVSTEWARD_EXECUTABLE": self.setup.executable},
        )
        done = run_checked(command, timeout=7200, cwd=self.setup.root)
        elapsed = time.monotonic() - started
        self.breakdowns.append(
            {
                "read_ahead": prefetch,
                "seconds": round(elapsed, 2),
                "restore_command_timings": json.loads(done.stdout).get("timings", {}),
                **trace_breakdown(self.trace_log.read_text(), wall),
            }
        )
        return elapsed, self.restored_ok(port, data_dir)

    def restore_pgbackrest(self) -> tuple[float, int]:
        data_dir = self.root / "restore-pgbackrest"
        data_dir.mkdir(mode=0o700)
        give_to_db_user(data_dir)
        port = free_port()
        started = time.monotonic()
        self.pgbackrest("restore", f"--pg1-path={data_dir}", "--archive-mode=off", "--type=default")
        unpacked = time.monotonic()
        extra = (
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{data_dir}'\n"
            "recovery_target_action = 'promote'\n"
        )
        with (data_dir / "postgresql.auto.conf").open("a") as handle:
            handle.write(extra)
        run_checked(
            as_db_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-l",
                    str(self.root / "pgbr-restore.log"),
                    "-W",
                    "start",
                ]
            )
        )
        import psycopg

        # the same wait as envsteward's start_recovery: stat recovery.signal every 20 ms (PostgreSQL
        # removes it when it promotes), a query only when it is gone or once a second
        asked = 0.0
        while True:
            if (data_dir / "recovery.signal").exists() and time.monotonic() - asked < 1.0:
                time.sleep(0.02)
                continue
            asked = time.monotonic()
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=2
                ) as conn:
                    if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,):
                        break
            except psycopg.OperationalError:
                if time.monotonic() - started > 10 and not (data_dir / "postmaster.pid").exists():
                    raise AssertionError((self.root / "pgbr-restore.log").read_text()[-3000:]) from None
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        self.pgbr_breakdowns.append(
            {
                "seconds": round(elapsed, 2),
                "pgbackrest_restore": round(unpacked - started, 2),
                "start_to_promoted": round(elapsed - (unpacked - started), 2),
            }
        )
        return elapsed, self.restored_ok(port, data_dir)

    def restore(self, rounds: int, wal_gib: float, no_prefetch_rounds: int) -> dict[str, Any]:
        prepared = self.prepare_restore(wal_gib)
        log(f"restore: {prepared}")
        runs: dict[str, list[float]] = {"envsteward": [], "pgbackrest": [], "envsteward-no-read-ahead": []}
        jobs: dict[str, Callable[[], tuple[float, int]]] = {
            "envsteward": lambda: self.restore_envsteward(prefetch=True),
            "pgbackrest": self.restore_pgbackrest,
            "envsteward-no-read-ahead": lambda: self.restore_envsteward(prefetch=False),
        }
        for round_no in range(rounds):
            order = ["envsteward", "pgbackrest"] if round_no % 2 == 0 else ["pgbackrest", "envsteward"]
            if round_no < no_prefetch_rounds:
                order.append("envsteward-no-read-ahead")
            for tool in order:
                seconds, rows = jobs[tool]()
                if rows != prepared["accounts"]:
                    raise AssertionError(f"{tool} restored {rows} accounts, expected {prepared['accounts']}")
                runs[tool].append(round(seconds, 2))
                log(f"restore round {round_no + 1} {tool}: {seconds:.1f}s")
        runs = {tool: values for tool, values in runs.items() if values}
        return {
            **prepared,
            "envsteward_breakdown": self.breakdowns,
            "pgbackrest_breakdown": self.pgbr_breakdowns,
            "seconds": {tool: summary(values) for tool, values in runs.items()},
            "ratio_median_envsteward_over_pgbackrest": round(
                statistics.median(runs["envsteward"]) / statistics.median(runs["pgbackrest"]), 2
            ),
            "ratio_best_envsteward_over_pgbackrest": round(
                min(runs["envsteward"]) / min(runs["pgbackrest"]), 2
            ),
        }


def trace_breakdown(text: str, started: float) -> dict[str, Any]:
    """Where an envsteward restore's time went, from the wrapper's trace: every envsteward process
    (the restore command, the read-ahead, each ``wal fetch`` PostgreSQL started because the ``sh``
    fast path could not answer), as seconds after ``started`` (wall clock), its duration and exit code."""
    begun: dict[str, tuple[float, str]] = {}
    calls: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3:
            continue
        at, kind, pid = float(parts[0]), parts[1], parts[2]
        rest = parts[3] if len(parts) > 3 else ""
        if kind == "start":
            begun[pid] = (at, rest)
        elif pid in begun:
            first, args = begun.pop(pid)
            words = args.split()
            label = " ".join(words[:2] + words[-2:-1]) if words[:1] == ["wal"] else " ".join(words[:2])
            calls.append(
                {
                    "at": round(first - started, 3),
                    "seconds": round(at - first, 3),
                    "exit": rest,
                    "call": label,
                }
            )
    fetches = [call for call in calls if call["call"].startswith("wal fetch")]
    return {
        "cli_wal_fetches": len(fetches),
        "cli_wal_fetch_seconds": round(sum(call["seconds"] for call in fetches), 2),
        "calls": sorted(calls, key=lambda call: call["at"]),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    pgbr = subprocess.run(
        ["pgbackrest", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(mem) / (1 << 20), 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": run_checked([str(PG_BIN / "postgres"), "--version"]).stdout.strip(),
        "pgbackrest": pgbr,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--burst-scale", type=int, default=8)
    parser.add_argument("--wal-gib", type=float, default=1.0)
    parser.add_argument("--no-read-ahead-rounds", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[], choices=["serial", "keep_up", "restore"])
    parser.add_argument(
        "--only", action="append", default=[], choices=["serial", "keep_up", "restore"], help="run only these"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.only:
        args.skip = [phase for phase in ("serial", "keep_up", "restore") if phase not in args.only]
    # byte-compile once: the postgres OS user cannot write __pycache__ in this checkout, and a real
    # installation ships compiled modules
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=False)
    factory = ClusterFactory()
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    try:
        bench = Bench(factory)
        if "serial" not in args.skip:
            results["serial_push"] = bench.serial(args.segments, args.rounds)
        if "keep_up" not in args.skip:
            results["keep_up"] = bench.keep_up(args.rounds, args.pgbench_seconds, args.burst_scale)
        if "restore" not in args.skip:
            results["restore"] = bench.restore(args.rounds, args.wal_gib, args.no_read_ahead_rounds)
        results["envsteward_peak_rss_mib"] = bench.rss_peak_mib()
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        factory.cleanup()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
