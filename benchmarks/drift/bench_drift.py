"""Benchmark: ``envsteward.drift.compare`` against plain ``DeepDiff(desired, live)`` on the same inputs.

Run from the repository root (not part of the test suite; a few minutes in total)::

    .venv/bin/python benchmarks/drift/bench_drift.py                      # 10k, 100k, 1M x 0.1 %, 1 %
    .venv/bin/python benchmarks/drift/bench_drift.py --sizes 10000 --rates 0.01 --deepdiff-timeout 30

Every case runs in its own forked process, so memory figures do not leak between cases:

* inputs: bytes ``tracemalloc`` counts for building desired + live;
* compare peak: ``tracemalloc`` peak during one ``compare`` above what was allocated before it (includes
  the report), and the ratio to the inputs (target < 2);
* compare time: best and median of 5 runs without tracing; then the median of 5 runs with a realistic rule
  set (:data:`RULES`);
* DeepDiff: one run in a grandchild process with a time limit (``--deepdiff-timeout``); its peak memory
  is the rise of the process's resident high-water mark (``/proc/self/status`` VmHWM after resetting it
  through ``/proc/self/clear_refs``), measured in the same run. At 1M leaves DeepDiff runs only for the
  first drift rate (``--deepdiff-1m-rates`` to change), and is reported as "> N s, stopped" when it hits
  the limit.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import count_leaves, desired_config, live_config

from envsteward.drift import DriftRules, compare

# A realistic rule set, to show that rule matching does not dominate: anchored and ** globs, secret paths,
# a valid and an expired ignore, a list key that never applies.
RULES = DriftRules.model_validate(
    {
        "severity": [
            {"path": "**.replicas", "severity": "high"},
            {"path": "teams.*.services.*.env.**", "severity": "low"},
            {"path": "**.ports[*]", "severity": "critical"},
            {"path": "teams.team-0001.**", "severity": "critical"},
            {"path": "teams.*.services.*.image", "severity": "high"},
        ],
        "secret_paths": ["**.env.VAR_3", "**.limits"],
        "ignore": [
            {"path": "**.tags[*]", "reason": "labels are managed elsewhere"},
            {"path": "**.owner", "reason": "ownership migration", "expires": "2020-01-01"},
        ],
        "list_keys": [{"path": "**.containers", "key": "name"}],
    }
)

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _deepdiff_child(desired: Any, live: Any, conn: Any) -> None:
    from deepdiff import DeepDiff

    gc.collect()
    exact = _reset_hwm()
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    result = DeepDiff(desired, live)
    elapsed = time.perf_counter() - start
    peak = (_status_kib("VmHWM") - base) * 1024 if exact else -1
    findings = sum(len(v) for v in result.values())
    conn.send({"seconds": elapsed, "peak_bytes": peak, "findings": findings})
    conn.close()


def _run_deepdiff(desired: Any, live: Any, timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_deepdiff_child, args=(desired, live, child))
    proc.start()
    child.close()
    if parent.poll(timeout):
        result: dict[str, Any] = parent.recv()
        proc.join()
        return result
    proc.kill()
    proc.join()
    return {"seconds": None, "stopped_after": timeout}


def _case(size: int, rate: float, deepdiff_timeout: float | None, conn: Any) -> None:
    tracemalloc.start()
    desired = desired_config(size)
    live, mutations = live_config(desired, rate)
    inputs = tracemalloc.get_traced_memory()[0]
    gc.collect()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    report = compare(desired, live)
    peak = tracemalloc.get_traced_memory()[1] - before
    findings = len(report.items)
    del report
    tracemalloc.stop()

    gc.collect()
    exact = _reset_hwm()
    base = _status_kib("VmRSS")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        compare(desired, live)
        times.append(time.perf_counter() - start)
    rss_peak = (_status_kib("VmHWM") - base) * 1024 if exact else -1
    with_rules = []
    for _ in range(5):
        start = time.perf_counter()
        compare(desired, live, RULES)
        with_rules.append(time.perf_counter() - start)

    result: dict[str, Any] = {
        "size": size,
        "leaves": count_leaves(desired),
        "rate": rate,
        "mutations": mutations,
        "findings": findings,
        "inputs_bytes": inputs,
        "compare_peak_bytes": peak,
        "compare_rss_peak_bytes": rss_peak,
        "compare_best": min(times),
        "compare_median": statistics.median(times),
        "rules_median": statistics.median(with_rules),
    }
    if deepdiff_timeout is not None:
        result["deepdiff"] = _run_deepdiff(desired, live, deepdiff_timeout)
    conn.send(result)
    conn.close()


def run_case(size: int, rate: float, deepdiff_timeout: float | None) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_case, args=(size, rate, deepdiff_timeout, child))
    proc.start()
    child.close()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def _fmt_mib(value: float) -> str:
    return f"{value / MIB:,.1f} MiB" if value >= 0 else "n/a"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _status_kib("MemTotal")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1])
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem / 1024 / 1024:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, deepdiff {version('deepdiff')}, "
        f"pydantic {version('pydantic')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--deepdiff-timeout", type=float, default=90.0)
    parser.add_argument(
        "--deepdiff-1m-rates",
        type=float,
        nargs="*",
        default=None,
        help="rates at which DeepDiff runs at >= 1M",
    )
    args = parser.parse_args()
    big_rates = args.deepdiff_1m_rates if args.deepdiff_1m_rates is not None else args.rates[-1:]

    print(f"machine: {machine()}\n")
    header = (
        "| leaves | drift | findings | inputs | compare best / median | with rules (median) | "
        "compare peak (x inputs) | DeepDiff | DeepDiff peak RSS | speed-up |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for size in args.sizes:
        for rate in args.rates:
            timeout = args.deepdiff_timeout if size < 1_000_000 or rate in big_rates else None
            r = run_case(size, rate, timeout)
            ratio = r["compare_peak_bytes"] / r["inputs_bytes"]
            dd = r.get("deepdiff")
            if dd is None:
                dd_time, dd_mem, speedup = "not run", "", ""
            elif dd.get("seconds") is None:
                dd_time = f"> {dd['stopped_after']:.0f} s, stopped"
                dd_mem = ""
                speedup = f"> {dd['stopped_after'] / r['compare_median']:,.0f}x"
            else:
                dd_time = f"{dd['seconds']:.2f} s ({dd['findings']} findings)"
                dd_mem = _fmt_mib(dd["peak_bytes"])
                speedup = f"{dd['seconds'] / r['compare_median']:,.0f}x"
            print(
                f"| {r['leaves']:,} | {rate:.1%} | {r['findings']:,} | {_fmt_mib(r['inputs_bytes'])} | "
                f"{r['compare_best'] * 1000:,.1f} / {r['compare_median'] * 1000:,.1f} ms | "
                f"{r['rules_median'] * 1000:,.1f} ms | "
                f"{_fmt_mib(r['compare_peak_bytes'])} ({ratio:.3f}x; "
                f"RSS +{_fmt_mib(r['compare_rss_peak_bytes'])}) | "
                f"{dd_time} | {dd_mem} | {speedup} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
