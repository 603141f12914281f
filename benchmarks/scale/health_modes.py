"""One health-check run at N environments x 10 checks, one task run per check against one per environment,
side by side in one run (alternating, so load changes on the machine hit both sides).

    .venv/bin/python benchmarks/scale/health_modes.py [--envs 50] [--pairs 3] [--out health_modes.json]

The cheapest faithful setup: the health-check flow needs no Vault, AWS or drift, only the catalog, its
health endpoints and a Prefect API. So: the catalog of ``world.py`` (``--envs`` environments, 10 HTTP checks
each; written twice, differing only in ``health.per_check_tasks_up_to``: above the check count = per-check
mode, 100 = grouped), the endpoints of ``endpoints.py`` in their own process (the same plan: 4 % slow, 2 %
HTTP 503, 2 per 500 hanging past the 5 s timeout), a temporary Prefect server (SQLite, its own process:
``prefect_test_harness``) and a Slack stand-in. Each flow run is its own process (``python -c`` calling the
flow, as a deployment's flow-run process does: imports, catalog, the run), and per run it records: wall
time of the process and of the flow call, CPU time (user + system, ``wait4`` rusage) of the whole process
and of the flow call alone (``process_time`` in it, without the imports), peak RSS, the 1-minute load
average before and after, and (once every run has ended) its task runs from the API. Each mode has its own
state home and one unmeasured run first (every check known; the first measured pair confirms the findings,
``consecutive`` 2, and alerts; later pairs repeat them): both modes see the same sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import world  # noqa: E402 - a sibling script
from envsteward.deployments.local_stack import http_ok, port_is_free  # noqa: E402
from run import Slack  # noqa: E402 - a sibling script

CHILD = """
import json, time
from envsteward.flows.health_check import health_check
started_wall, started_cpu = time.perf_counter(), time.process_time()
state = health_check(return_state=True)
summary = state.result()
print("RESULT " + json.dumps({
    "flow_wall_s": time.perf_counter() - started_wall,
    "flow_cpu_s": time.process_time() - started_cpu,
    "flow_run_id": str(state.state_details.flow_run_id),
    "counts": summary["counts"],
    "changes": len(summary["changes"]),
}))
"""


def free_port(start: int) -> int:
    return next(p for p in range(start, start + 500) if port_is_free(p))


def write_catalogs(root: Path, envs: int, endpoint_port: int) -> dict[str, Path]:
    """The world's catalog twice: ``per-check`` (threshold above the check count) and ``grouped`` (100)."""
    folders = {}
    for mode, up_to in (("per-check", 100_000), ("grouped", 100)):
        folder = root / mode / "catalog"
        world.write_catalog(folder, envs, endpoint_port)
        doc = yaml.safe_load((folder / "catalog.yaml").read_text())
        doc["health"] = {"per_check_tasks_up_to": up_to}
        (folder / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        folders[mode] = folder
    return folders


def task_runs(flow_run_id: str) -> dict[str, Any]:
    """The flow run's task runs (API, paged) and when, after the flow run's start, the last check task
    (``check-*``) ended: the probes' share of the run's wall time. Prefect records task runs from their
    events, which lag behind under load: called once every run has finished."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        while True:
            batch = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=200,
                offset=len(runs),
            )
            runs += batch
            if len(batch) < 200:
                break
    check_ends = [r.end_time for r in runs if r.name.startswith("check-") and r.end_time is not None]
    start, end = flow_run.start_time, flow_run.end_time
    return {
        "task_runs": len(runs),
        "checks_done_at_s": round((max(check_ends) - start).total_seconds(), 2)
        if check_ends and start
        else None,
        "flow_run_s": round((end - start).total_seconds(), 2) if start and end else None,
    }


def run_measured(env: dict[str, str]) -> dict[str, Any]:
    """Run the flow in its own process; its times (CPU and peak RSS from ``wait4``) and counts. Raises
    RuntimeError if the run fails."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # read the pipes in full before reaping, so that the child cannot block on a full pipe
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"flow run failed ({proc.returncode}): {err[-3000:]}")
    child = json.loads(line.removeprefix("RESULT "))
    return {
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "flow_wall_s": round(child["flow_wall_s"], 2),
        "flow_cpu_s": round(child["flow_cpu_s"], 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "counts": child["counts"],
        "changes": child["changes"],
        "flow_run_id": child["flow_run_id"],
        "load_1m_before": round(load_before, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
    }


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(row[key] for row in rows), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "health_modes.json")
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="envsteward-health-modes-") as tmp, prefect_test_harness(120):
        root = Path(tmp)
        endpoint_port, slack_port = free_port(25700), free_port(25800)
        plan_file = root / "plan.json"
        plan_file.write_text(json.dumps(world.endpoint_plan(args.envs)))
        endpoints = subprocess.Popen(
            [sys.executable, str(HERE / "endpoints.py"), str(endpoint_port), str(plan_file)]
        )
        slack = Slack(slack_port)
        try:
            deadline = time.monotonic() + 30
            while not http_ok(f"http://127.0.0.1:{endpoint_port}/_stats")() and time.monotonic() < deadline:
                time.sleep(0.2)
            catalogs = write_catalogs(root, args.envs, endpoint_port)
            base = {
                **os.environ,
                "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "ENVSTEWARD_ACTOR": "health-modes-bench",
                "ENVSTEWARD_SLACK__BASE_URL": f"http://127.0.0.1:{slack_port}/api/",
                "SLACK_BOT_TOKEN": "xoxb-bench-health-modes",
            }
            envs = {
                mode: {
                    **base,
                    "ENVSTEWARD_CATALOG": str(folder),
                    "ENVSTEWARD_HOME": str(folder.parent / "home"),
                }
                for mode, folder in catalogs.items()
            }
            for mode, env in envs.items():  # the steady state: checks known, findings confirmed
                print(f"warm-up {mode}", flush=True)
                run_measured(env)
            rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in envs}
            for pair in range(args.pairs):
                for mode in list(envs) if pair % 2 == 0 else list(reversed(envs)):
                    row = run_measured(envs[mode])
                    rows[mode].append(row)
                    print(json.dumps({"pair": pair + 1, "mode": mode, **row}), flush=True)
            time.sleep(10)  # let the server record the last task runs' events
            for row in (row for mode_rows in rows.values() for row in mode_rows):
                row.update(task_runs(row.pop("flow_run_id")))
        finally:
            endpoints.terminate()
            endpoints.wait()
            slack.server.shutdown()

    checks = args.envs * world.CHECKS_PER_ENV
    report = {
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "envs": args.envs,
        "checks": checks,
        "nproc": os.cpu_count(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "median": {
            mode: {
                key: median_of(r, key)
                for key in ("process_wall_s", "process_cpu_s", "flow_wall_s", "flow_cpu_s")
            }
            for mode, r in rows.items()
        },
        "runs": rows,
    }
    per, grouped = report["median"]["per-check"], report["median"]["grouped"]
    report["ratio_per_check_over_grouped"] = {
        key: round(per[key] / grouped[key], 2) for key in per if grouped[key]
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("median", "ratio_per_check_over_grouped", "loadavg_at_end")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
