"""PostgreSQL backup benchmark: pg_dump alone vs envsteward's backup vs restic, on ~1 GiB of table data.

Run from the repository root (needs the machine's PostgreSQL on 127.0.0.1:5432 as user postgres, trust auth;
restic from Debian's packages is optional: ``apt-get install -y restic``):

    .venv/bin/python benchmarks/backup/bench_pg.py [--gib 1.0] [--keep] [--json results.json]

It creates the database ``envsteward_bench`` with ``generate_series`` (about 1 GiB of table data; kept
between runs with ``--keep``, reused when already there), then measures in ONE run, each in its own child
process so the numbers do not mix:

* ``pg_dump -Fc --compress=0`` to /dev/null (what envsteward runs: it compresses with zstd itself);
* envsteward's backup of the catalog target into the filesystem store (the runner: pg_dump from an exported
  snapshot, per-table row counts and checksums derived from the dump stream (v5), zstd with one worker
  thread, AES-256-GCM, SHA-256, write, then read back and verify), plus variants: the runner with the
  previous default checksums (v4), no table checksums, no table checksums and no read-back (the child
  modes ``v3``, ``v2`` and ``runner-zstd1`` can still be run by hand: ``--child MODE --home DIR``);
* ``pg_dump -Fc --compress=0 | restic backup --stdin`` into a fresh local repository.

Wall time; client CPU = user + sys of the whole process tree (``getrusage(RUSAGE_CHILDREN)``, so pg_dump is
counted); server CPU = user + sys of every PostgreSQL backend serving the benchmark database during the run
(``/proc/<pid>/stat`` of the pids ``pg_stat_activity`` lists, polled every 50 ms; the server runs on this
machine); peak memory = ``ru_maxrss`` of envsteward's own process (pg_dump excluded). Results go in
README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DB = "envsteward_bench"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DB_DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB}"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB}"
ROW_BYTES = 122  # what one generated row takes on disk (measured, PostgreSQL 15)


# ---------------------------------------------------------------------------------------------------------
# the database
# ---------------------------------------------------------------------------------------------------------


def table_bytes() -> int | None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone()
    if not exists:
        return None
    with psycopg.connect(DB_DSN) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'"
        ).fetchone()
    return int(row[0]) if row else 0


def create_database(gib: float) -> int:
    """(Re)create the benchmark database with about ``gib`` GiB of table data; return its table bytes."""
    import psycopg

    rows = int(gib * (1 << 30) / ROW_BYTES)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    started = time.monotonic()
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            """
            CREATE TABLE orders (
                id bigint PRIMARY KEY, customer int NOT NULL, sku text NOT NULL, status text NOT NULL,
                amount numeric(12, 2) NOT NULL, created timestamptz NOT NULL, note text
            )"""
        )
        # Mixed content: repetitive words, numbers, timestamps and some hex (compresses roughly 3:1,
        # like a real orders table).
        conn.execute(
            """
            INSERT INTO orders
            SELECT g,
                   (g * 7919) %% 100000,
                   'SKU-' || lpad(((g * 31) %% 5000)::text, 5, '0'),
                   (ARRAY['new', 'paid', 'shipped', 'delivered', 'returned'])[1 + g %% 5],
                   ((g * 37) %% 100000) / 100.0,
                   timestamptz '2024-01-01' + (g %% 31536000) * interval '1 second',
                   CASE WHEN g %% 3 = 0 THEN md5(g::text) || ' gift wrap requested'
                        ELSE 'standard delivery to customer ' || ((g * 7919) %% 100000)::text END
            FROM generate_series(1::bigint, %s) AS g""",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE orders")
    size = table_bytes() or 0
    took = time.monotonic() - started
    print(f"created {DB}: {rows} rows, {size / (1 << 30):.2f} GiB of table data in {took:.0f} s")
    return size


# ---------------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------------


class ServerCpu:
    """User+sys CPU seconds of the PostgreSQL backends serving :data:`DB` while it runs (a thread polls
    ``pg_stat_activity`` and reads each backend's ``/proc/<pid>/stat``; cumulative since the backend
    started, so only the last <= 50 ms of a backend's life can be missed)."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ServerCpu:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return round(sum(self.seconds.values()), 2)

    def _read(self, pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / self._tick

    def _poll(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (DB,)
                ).fetchall()
                for pid in {int(row[0]) for row in rows} | set(self.seconds):
                    value = self._read(pid)
                    if value is not None:
                        self.seconds[pid] = max(value, self.seconds.get(pid, 0.0))
                time.sleep(0.05)


def measure(argv: list[str], env: dict[str, str] | None = None, *, discard: bool = False) -> dict[str, Any]:
    """Run ``argv`` to completion; wall time, the user+sys CPU of its whole process tree and of the server
    backends it used. ``discard`` sends its stdout to /dev/null."""
    with ServerCpu() as server:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        stdout = subprocess.DEVNULL if discard else subprocess.PIPE
        proc = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "server_cpu_seconds": server.total,
        "stdout": (proc.stdout or b"").decode(errors="replace"),
    }


def child_envsteward(mode: str, home: str) -> None:
    """Runs in a child process: one envsteward backup; prints its JSON facts (peak RSS of THIS process)."""
    from envsteward.backup.runner import run_backup
    from envsteward.services import Services
    from envsteward.settings import Settings

    catalog = Path(home) / "catalog"
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "catalog.yaml").write_text(json.dumps({"platform": "bench"}), encoding="utf-8")
    target = {"name": "orders-db", "kind": "postgres", "dsn": DB_URL, "key_provider": "local"}
    envs = [{"name": "bench", "tier": "development", "backups": [target]}]
    (catalog / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    services = Services(Settings(catalog=catalog, home=Path(home) / "home", actor="bench"))

    if mode.startswith("runner"):
        from envsteward.adapters import pg_checksums
        from envsteward.backup import runner
        from envsteward.backup.sources import postgres as pg_source

        if mode == "runner-v4":
            # the previous default: checksums v4 (stream hash of the COPY text, chunk headers deleted)
            pg_source.DUMP_CHECKSUM_FAMILY = pg_checksums.STREAM_ALGORITHM
        if mode == "runner-zstd1":
            runner.RUNNER_ZSTD_LEVEL = 1
        outcome = run_backup(services, "bench", "orders-db")
        facts = {
            "plaintext": outcome.plaintext_bytes,
            "stored": outcome.stored_bytes,
            "tables": outcome.tables,
            "checksum_algorithm": pg_source.DUMP_CHECKSUM_FAMILY,
        }
    else:
        from datetime import UTC, datetime

        from envsteward.backup import new_backup_id, write_backup
        from envsteward.backup.sources.postgres import PostgresBackupSource

        if mode == "v3":
            # the previous default: per-row multiset sums derived from the dump stream
            from envsteward.adapters import pg_checksums
            from envsteward.backup.sources import postgres as pg_source

            pg_source.DUMP_CHECKSUM_FAMILY = pg_checksums.COPY_ALGORITHM
        if mode == "v2":
            # the previous default: server-side md5 checksums on a second connection (forced fallback)
            from envsteward.backup.sources import pg_archive

            def refuse(self: Any, data: bytes) -> None:
                raise pg_archive.UnsupportedArchive("benchmark: forced server-side checksums (v2)")

            pg_archive.ArchiveScanner.feed = refuse  # type: ignore[method-assign]

        source = PostgresBackupSource("orders-db", DB_URL, summarize=not mode.startswith("no-checksums"))
        keys = services.key_provider("local")
        with source.dump() as stream:
            manifest = write_backup(
                services.object_store(),
                keys,
                new_backup_id("bench", "orders-db"),
                stream,
                environment="bench",
                source=stream.source_info(),
                started_at=stream.started_at or datetime.now(UTC),
                consistent_at=stream.consistent_at,
                tables=lambda: stream.tables,
                verify_after_write=mode != "no-checksums-no-verify",
                zstd_threads=2 if mode == "no-checksums-zstd2" else 0,
            )
        facts = {
            "plaintext": manifest.sizes.plaintext,
            "stored": manifest.sizes.ciphertext,
            "checksum_algorithm": (manifest.tables[0].algorithm if manifest.tables else None),
        }
    facts["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(facts))


def checkpoint() -> None:
    """Flush PostgreSQL's dirty buffers first, so no contender pays for another's checkpoint."""
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def envsteward_run(mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="envsteward-bench-") as home:
        run = measure([sys.executable, __file__, "--child", mode, "--home", home])
        run.update(json.loads(run.pop("stdout").strip().splitlines()[-1]))
    return run


def restic_run() -> dict[str, Any]:
    restic = shutil.which("restic")
    if restic is None:
        return {"wall_seconds": float("inf"), "error": "restic is not installed (apt-get install -y restic)"}
    with tempfile.TemporaryDirectory(prefix="envsteward-bench-restic-") as repo:
        env = {**os.environ, "RESTIC_REPOSITORY": repo, "RESTIC_PASSWORD": "bench-only"}
        subprocess.run([restic, "init"], env=env, capture_output=True, check=True)
        pipeline = (
            f"set -o pipefail; pg_dump --format=custom --compress=0 --no-password "
            f"'--dbname={DB_DSN}' | {restic} backup --stdin --stdin-filename orders.dump --quiet"
        )
        run = measure(["bash", "-c", pipeline], env=env)
        run.pop("stdout")
        version = subprocess.run([restic, "version"], capture_output=True, text=True, check=False)
        run["version"] = version.stdout.strip()
        run["repo_bytes"] = sum(p.stat().st_size for p in Path(repo).rglob("*") if p.is_file())
    return run


def contenders() -> list[tuple[str, Any]]:
    dump = ["pg_dump", "--format=custom", "--no-password", f"--dbname={DB_DSN}"]

    def plain(argv: list[str]) -> dict[str, Any]:
        run = measure(argv, discard=True)
        run.pop("stdout")
        return run

    return [
        ("pg_dump -Fc --compress=0 > /dev/null", lambda: plain([*dump, "--compress=0"])),
        (
            "envsteward backup (runner: checksums v5 + read-back verify, zstd 2, "
            "1 zstd worker + SHA-256 thread)",
            lambda: envsteward_run("runner"),
        ),
        ("envsteward runner, checksums v4 (previous default)", lambda: envsteward_run("runner-v4")),
        ("envsteward, no table checksums, zstd 3", lambda: envsteward_run("no-checksums")),
        (
            "envsteward, no table checksums, no read-back, zstd 3",
            lambda: envsteward_run("no-checksums-no-verify"),
        ),
        ("pg_dump --compress=0 | restic backup --stdin", restic_run),
    ]


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests so far (``steal`` of ``/proc/stat``, all CPUs): a run
    whose steal grew was slowed by neighbours the load average does not show."""
    with open("/proc/stat", encoding="utf-8") as handle:
        fields = handle.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.strip()
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "free_h": free,
        "python": platform.python_version(),
        "pg_dump": version.strip(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=1.0, help="table data to generate (GiB)")
    parser.add_argument("--keep", action="store_true", help="keep the database for the next run")
    parser.add_argument("--recreate", action="store_true", help="recreate the database even if it exists")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best and median are reported)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_envsteward(args.child, args.home)
        return

    size = table_bytes()
    if size is None or args.recreate or size < 0.9 * args.gib * (1 << 30):
        size = create_database(args.gib)
    else:
        print(f"reusing {DB}: {size / (1 << 30):.2f} GiB of table data")
    results: dict[str, Any] = {"machine": machine(), "table_bytes": size, "repeat": args.repeat, "runs": {}}
    samples: dict[str, list[dict[str, Any]]] = {}
    steal_at_start = steal_seconds()
    try:
        for _round in range(args.repeat):  # interleaved, so a noisy minute hits every contender alike
            for label, run in contenders():
                checkpoint()
                samples.setdefault(label, []).append(run())
    finally:
        if not args.keep:
            import psycopg

            with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    results["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["machine"]["steal_seconds_during_run"] = f"{steal_seconds() - steal_at_start:.1f}"
    for label, runs in samples.items():
        best = min(runs, key=lambda run: run["wall_seconds"])
        walls = sorted(run["wall_seconds"] for run in runs)
        results["runs"][label] = {
            **best,
            "median_wall_seconds": walls[len(walls) // 2],
            "walls": walls,
            # every round's client CPU, in round order (the best round's alone says little on a shared VM)
            "cpu_seconds_per_round": [run.get("cpu_seconds") for run in runs],
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
