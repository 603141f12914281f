"""WAL archive benchmark: how fast ``envsteward wal push`` / ``wal fetch`` go, one process per file as
PostgreSQL runs them, and whether archiving keeps up with pgbench on this machine.

    .venv/bin/python benchmarks/pitr/bench_wal.py --segments 16 --rounds 2 --pgbench-seconds 30 \
        --out benchmarks/pitr/results.json

Phase 1 (serial push/fetch): a throwaway cluster (Debian's PostgreSQL 15 binaries, as the ``postgres`` OS
user when run as root) makes real WAL with ``pgbench``; its segments are copied into a ``pg_wal`` layout,
marked ``.ready``, and pushed one process per segment in WAL order exactly as PostgreSQL's archiver does
(``.ready`` renamed ``.done`` after each exit 0) into the embedded default's two stores (primary + DR),
with ``pitr.archive_ahead`` off and on, rounds interleaved; then fetched back and compared.
Phase 2 (keep-up), archive-ahead on, then off: a cluster with ``archive_command = envsteward wal push``,
a ``pgbench -i -s N`` burst, then ``pgbench -c 2`` for S seconds; every second the number of segments
waiting (``archive_status/*.ready``) is sampled. A backlog that keeps growing means archiving cannot keep
up.
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
    give_to_db_user,
    pgbench_command,
    run_checked,
)
from tests.integration._pitr_setup import (  # noqa: E402
    SELECTOR,
    PitrSetup,
    archiving_cluster,
    pitr_setup,
)


def child_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_segments(factory: ClusterFactory, count: int, folder: Path) -> list[Path]:
    """``count`` real segments written by pgbench, copied to ``folder``."""
    cluster = factory("serial")
    run_checked(pgbench_command(cluster.port, "-i", "-s", "5"))
    names = []
    while len(names) < count:
        run_checked(pgbench_command(cluster.port, "-n", "-t", "2000"))
        names.append(cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    folder.mkdir()
    segments = [Path(shutil.copy(cluster.data_dir / "pg_wal" / name, folder / name)) for name in names]
    cluster.stop("immediate")
    return segments


def pusher_cpu(data_dir: Path) -> float:
    """CPU seconds of the detached archive-ahead pusher(s) whose working folder is ``data_dir`` (they are
    not our children, so RUSAGE_CHILDREN misses them); 0 when none runs."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd") != str(data_dir):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def push_like_postgresql(setup: PitrSetup, segments: list[Path], data_dir: Path) -> dict[str, float]:
    """Archive ``segments`` as PostgreSQL's archiver does: all marked ``.ready`` in ``data_dir/pg_wal``,
    then one ``wal push`` process per segment in WAL order from the data directory, ``.ready`` renamed to
    ``.done`` after each exit 0. Returns wall seconds, segments/s and CPU seconds (processes + pusher)."""
    pg_wal = data_dir / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    for path in segments:
        shutil.copy(path, pg_wal / path.name)
        (pg_wal / "archive_status" / f"{path.name}.ready").touch()
    give_to_db_user(data_dir)
    env = {**os.environ, **setup.env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    exe = str(Path(sys.executable).parent / "envsteward")
    times = []
    cpu_before = children_cpu()
    started = time.monotonic()
    for path in segments:
        t0 = time.monotonic()
        command = [exe, "wal", "push", "--target", SELECTOR, f"pg_wal/{path.name}"]
        subprocess.run(command, env=env, check=True, cwd=data_dir)
        times.append(time.monotonic() - t0)
        status = pg_wal / "archive_status"
        os.replace(status / f"{path.name}.ready", status / f"{path.name}.done")
    total = time.monotonic() - started
    cpu = children_cpu() - cpu_before + pusher_cpu(data_dir)
    return {
        "seconds": round(total, 3),
        "segments_per_second": round(len(segments) / total, 2),
        "seconds_median": round(statistics.median(times), 3),
        "cpu_seconds": round(cpu, 3),
    }


def serial(factory: ClusterFactory, count: int, rounds: int) -> dict[str, object]:
    """Serial push with the archive-ahead off and on, rounds interleaved (off, on, on, off, ...), each run
    into its own stores; then a serial fetch of the segments (synchronous setup's archive)."""
    setups = {"off": pitr_setup(factory, "serial-off"), "on": pitr_setup(factory, "serial-on")}
    segments = make_segments(factory, count, factory.base / "segments")
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for index in range(rounds):
        order = ("off", "on") if index % 2 == 0 else ("on", "off")
        for mode in order:
            setup = setups[mode]
            for folder in (setup.home / "objects", setup.home / "objects-dr"):
                shutil.rmtree(folder)
                folder.mkdir()
            give_to_db_user(setup.home)
            setup.write_catalog(5432, archive_ahead={"enabled": mode == "on"})
            runs[mode].append(push_like_postgresql(setup, segments, setup.root / f"data-{index}"))
    setup = setups["off"]
    env = {**os.environ, **setup.env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    exe = str(Path(sys.executable).parent / "envsteward")
    fetch_times = []
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
    best = {mode: max(run["segments_per_second"] for run in runs[mode]) for mode in runs}
    median = {mode: statistics.median(run["segments_per_second"] for run in runs[mode]) for mode in runs}
    cpu = {mode: statistics.median(run["cpu_seconds"] for run in runs[mode]) / count for mode in runs}
    return {
        "segments": count,
        "push_off": runs["off"],
        "push_on": runs["on"],
        "push_segments_per_second_best": best,
        "push_segments_per_second_median": median,
        "speedup_best": round(best["on"] / best["off"], 2),
        "speedup_median": round(median["on"] / median["off"], 2),
        "cpu_seconds_per_segment_median": {mode: round(value, 3) for mode, value in cpu.items()},
        "fetch_segments_per_second": round(count / fetch_total, 2),
        "fetch_seconds_median": round(statistics.median(fetch_times), 3),
        "cli_startup_seconds": round(startup, 3),
        "stored_ratio": round(stored / (count * 16 * 1024 * 1024), 3),
        "max_child_rss_mib": round(child_rss_mib(), 1),
    }


def _sample_while(process: subprocess.Popen[str], status: Path, samples: list[int]) -> str:
    while process.poll() is None:
        samples.append(len(list(status.glob("*.ready"))))
        time.sleep(1)
    return process.communicate()[0]


def keep_up(factory: ClusterFactory, seconds: int, *, ahead: bool, scale: int) -> dict[str, object]:
    """A cluster archiving with ``wal push`` (archive-ahead ``ahead``): a ``pgbench -i -s scale`` burst,
    then ``pgbench -c 2`` for ``seconds``; the ``.ready`` backlog sampled every second in both."""
    mode = "on" if ahead else "off"
    setup = pitr_setup(factory, f"keepup-home-{mode}")
    cluster = archiving_cluster(factory, setup, f"keepup-{mode}", archive_timeout="'60s'")
    setup.write_catalog(cluster.port, archive_ahead={"enabled": ahead})
    port = str(cluster.port)
    status = cluster.data_dir / "pg_wal" / "archive_status"
    start_lsn = cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
    burst: list[int] = []
    init = subprocess.Popen(
        pgbench_command(port, "-i", "-s", str(scale), "-q"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _sample_while(init, status, burst)
    bench = subprocess.Popen(
        pgbench_command(port, "-n", "-c", "2", "-T", str(seconds)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    samples: list[int] = []
    output = _sample_while(bench, status, samples)
    end_lsn = cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
    generated = cluster.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end_lsn, start_lsn))[0][0]
    drained_at = time.monotonic()
    while list(status.glob("*.ready")) and time.monotonic() - drained_at < 300:
        time.sleep(0.5)
    archiver = cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
    tps = next((line for line in output.splitlines() if line.startswith("tps")), "")
    half = len(samples) // 2
    cluster.stop()
    return {
        "archive_ahead": mode,
        "pgbench_seconds": seconds,
        "pgbench": tps,
        "wal_generated_segments": round(float(generated) / (16 << 20), 1),
        "wal_generated_mib_per_second": round(float(generated) / (1 << 20) / seconds, 2),
        "burst_backlog_samples": burst,
        "burst_backlog_max": max(burst or [0]),
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
    parser.add_argument("--rounds", type=int, default=2, help="serial push rounds per mode (interleaved)")
    parser.add_argument("--burst-scale", type=int, default=8, help="pgbench -i -s N before the keep-up")
    parser.add_argument("--no-keep-up", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    factory = ClusterFactory()
    try:
        results: dict[str, object] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_start": os.getloadavg(),
                "platform": platform.platform(),
            },
            "serial": serial(factory, args.segments, args.rounds),
        }
        if not args.no_keep_up:
            results["keep_up"] = [
                keep_up(factory, args.pgbench_seconds, ahead=ahead, scale=args.burst_scale)
                for ahead in (True, False)
            ]
        results["load_average_end"] = os.getloadavg()
    finally:
        factory.cleanup()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
