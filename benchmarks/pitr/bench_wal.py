"""WAL archive benchmark: how fast ``envsteward wal push`` / ``wal fetch`` go, one process per file as
PostgreSQL runs them, and whether archiving keeps up with pgbench on this machine.

    .venv/bin/python benchmarks/pitr/bench_wal.py --segments 16 --pgbench-seconds 60 \
        --out benchmarks/pitr/results.json

Phase 1 (serial push/fetch): a throwaway cluster (Debian's PostgreSQL 15 binaries, as the ``postgres`` OS
user when run as root) makes real WAL with ``pgbench -i``; its segments are copied out and pushed one by
one with the CLI into the embedded default's two stores (primary + DR, synchronous), then fetched back.
Phase 2 (keep-up): a cluster with ``archive_command = envsteward wal push`` under ``pgbench -c 2`` for N
seconds; every 2 s the number of segments waiting (``archive_status/*.ready``) is sampled. A backlog that
keeps growing means archiving cannot keep up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fixtures.pg_cluster import (  # noqa: E402
    ClusterFactory,
    pgbench_command,
    run_checked,
)
from tests.integration._pitr_setup import SELECTOR, archiving_cluster, pitr_setup  # noqa: E402


def child_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def serial(factory: ClusterFactory, count: int) -> dict[str, object]:
    setup = pitr_setup(factory)
    cluster = factory("serial")
    setup.write_catalog(cluster.port)
    run_checked(pgbench_command(cluster.port, "-i", "-s", "5"))
    names = []
    while len(names) < count:
        run_checked(pgbench_command(cluster.port, "-n", "-t", "2000"))
        names.append(cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    folder = setup.root / "segments"
    folder.mkdir()
    segments = [Path(shutil.copy(cluster.data_dir / "pg_wal" / name, folder / name)) for name in names]
    cluster.stop("immediate")
    env = {**os.environ, **setup.env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    exe = str(Path(sys.executable).parent / "envsteward")
    push_times, fetch_times = [], []
    started = time.monotonic()
    for path in segments:
        t0 = time.monotonic()
        subprocess.run([exe, "wal", "push", "--target", SELECTOR, str(path)], env=env, check=True)
        push_times.append(time.monotonic() - t0)
    push_total = time.monotonic() - started
    out = setup.root / "fetched"
    started = time.monotonic()
    for path in segments:
        t0 = time.monotonic()
        subprocess.run([exe, "wal", "fetch", "--target", SELECTOR, path.name, str(out)], env=env, check=True)
        fetch_times.append(time.monotonic() - t0)
        assert out.read_bytes() == path.read_bytes()
    fetch_total = time.monotonic() - started
    t0 = time.monotonic()
    subprocess.run([exe, "version"], env=env, check=True, capture_output=True)
    startup = time.monotonic() - t0
    stored = sum(p.stat().st_size for p in (setup.home / "objects").rglob("0000*"))
    return {
        "segments": count,
        "push_segments_per_second": round(count / push_total, 2),
        "push_seconds_median": round(statistics.median(push_times), 3),
        "fetch_segments_per_second": round(count / fetch_total, 2),
        "fetch_seconds_median": round(statistics.median(fetch_times), 3),
        "cli_startup_seconds": round(startup, 3),
        "stored_ratio": round(stored / (count * 16 * 1024 * 1024), 3),
        "max_child_rss_mib": round(child_rss_mib(), 1),
    }


def keep_up(factory: ClusterFactory, seconds: int) -> dict[str, object]:
    setup = pitr_setup(factory, "keepup-home")
    cluster = archiving_cluster(factory, setup, "keepup", archive_timeout="'60s'")
    port = str(cluster.port)
    run_checked(pgbench_command(port, "-i", "-s", "5"))
    bench = subprocess.Popen(
        pgbench_command(port, "-n", "-c", "2", "-T", str(seconds)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status = cluster.data_dir / "pg_wal" / "archive_status"
    samples = []
    start_lsn = cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
    while bench.poll() is None:
        samples.append(len(list(status.glob("*.ready"))))
        time.sleep(2)
    output = bench.communicate()[0]
    end_lsn = cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
    generated = cluster.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end_lsn, start_lsn))[0][0]
    drained_at = time.monotonic()
    while list(status.glob("*.ready")) and time.monotonic() - drained_at < 300:
        time.sleep(0.5)
    archiver = cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
    tps = next((line for line in output.splitlines() if line.startswith("tps")), "")
    half = len(samples) // 2
    return {
        "pgbench_seconds": seconds,
        "pgbench": tps,
        "wal_generated_segments": round(float(generated) / (16 << 20), 1),
        "wal_generated_mib_per_second": round(float(generated) / (1 << 20) / seconds, 2),
        "ready_backlog_samples": samples,
        "backlog_first_half_max": max(samples[:half] or [0]),
        "backlog_second_half_max": max(samples[half:] or [0]),
        "seconds_to_drain_after_load": round(time.monotonic() - drained_at, 1),
        "archived_count": archiver[0],
        "failed_count": archiver[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--pgbench-seconds", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    factory = ClusterFactory()
    try:
        results = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average": os.getloadavg(),
                "platform": platform.platform(),
            },
            "serial": serial(factory, args.segments),
            "keep_up": keep_up(factory, args.pgbench_seconds),
        }
    finally:
        factory.cleanup()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
