"""Time to detect: inject a change into the demo platform and time it until the alert reaches Slack.

    .venv/bin/python benchmarks/detect/run.py --drift-trials 5 --health-trials 5 --out results.json

Reuses the demo (``deployments/demo.py``): the example catalog, OpenBao, moto, a real ``prefect server
start``, the seeded platform with its deliberate drift; then serves every deployment of ``prefect.yaml``
with its default schedule (``python -m envsteward.deployments.serve``, a subprocess). The Slack stand-in
here records the arrival time of every ``chat.postMessage``; the platform API stand-in's ``/healthz`` can be
turned to 503.

Drift trial: wait a random offset in [0, drift interval), edit one live value by hand (a new key each trial,
so each is *new* drift: staging's SSM parameters under ``services``), and time it until a Slack message
names that key. Health trial (runs alongside): wait a random offset in [0, health interval), turn
``/healthz`` to 503, time it until Slack says ``<env>/api is DOWN`` for each environment, turn it back to
200 and wait for the recoveries. Times are wall-clock seconds from the injection to the message's arrival.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from envsteward.deployments import demo
from envsteward.deployments.catalog import REPO_ROOT, read_deployments
from envsteward.deployments.demo_standins import start_smtp
from envsteward.deployments.local_stack import LocalStack, port_is_free

ENVIRONMENTS = ("development", "staging", "production")


class Standin:
    """``/healthz`` (200 or 503), Slack's ``auth.test`` / ``chat.postMessage`` (recorded), PagerDuty."""

    def __init__(self, port: int) -> None:
        self.healthy = True
        self.messages: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/healthz"):
                    ok = outer.healthy
                    self._reply(200 if ok else 503, {"status": "ok" if ok else "unavailable"})
                else:
                    self._reply(404, {})

            def do_POST(self) -> None:
                arrived = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/chat.postMessage"):
                    text = raw.decode("utf-8", "replace")
                    with contextlib.suppress(json.JSONDecodeError):
                        text = json.dumps(json.loads(text), ensure_ascii=False)
                    with outer.lock:
                        outer.messages.append((arrived, text))
                    self._reply(200, {"ok": True, "channel": "C1", "ts": f"{arrived:.6f}"})
                elif self.path.endswith("/auth.test"):
                    self._reply(200, {"ok": True, "user": "bench"})
                elif self.path.endswith("/v2/enqueue"):
                    self._reply(202, {"status": "success", "dedup_key": "bench"})
                else:
                    self._reply(404, {"ok": False, "error": "unknown_method"})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first_after(self, since: float, *needles: str) -> float | None:
        """Arrival time of the first message after ``since`` that contains every needle."""
        with self.lock:
            for arrived, text in self.messages:
                if arrived >= since and all(needle in text for needle in needles):
                    return arrived
        return None

    def wait_for(self, since: float, needles: tuple[str, ...], timeout: float) -> float | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.first_after(since, *needles)
            if found is not None:
                return found
            time.sleep(0.2)
        return None


def interval_of(name: str) -> int:
    (definition,) = [d for d in read_deployments() if d.name == name]
    assert definition.interval_seconds is not None, f"{name} has no interval schedule"
    return int(definition.interval_seconds)


def drift_keys(count: int) -> list[tuple[tuple[str, ...], Any]]:
    """``count`` numeric leaves of staging's ``ssm-services`` that the demo left without drift."""
    from envsteward.services import get_services

    services = get_services()
    rendered = services.catalog().render("staging")
    deliberate = {key for env, _, key, _, _ in demo.DELIBERATE_DRIFT if env == "staging"}
    keys = [
        (key, value)
        for key, value in demo.leaves(rendered.data.get("services", {}))
        if isinstance(value, int) and not isinstance(value, bool) and key not in deliberate
    ]
    if len(keys) < count:
        raise SystemExit(f"only {len(keys)} numeric keys under staging's services; asked for {count} trials")
    return keys[:count]


def drift_trials(
    standin: Standin, keys: list[tuple[tuple[str, ...], Any]], period: int, rng: random.Random, lane: int
) -> list[dict[str, Any]]:
    """One lane of drift trials, one key each, one after the other (a random offset after the previous
    detection). Lanes run in parallel threads on disjoint keys: each trial is still one change injected at
    a uniformly random point of the schedule, timed until its own alert."""
    from envsteward.services import get_services

    source = get_services().config_source("staging", "ssm-services")
    results = []
    for number, (key, desired) in enumerate(keys, 1):
        offset = rng.uniform(0, period)
        time.sleep(offset)
        path = "services." + ".".join(key)
        injected = time.time()
        source.write(key, desired + 1000 + number)
        arrived = standin.wait_for(injected, (path,), timeout=3 * period)
        seconds = None if arrived is None else round(arrived - injected, 1)
        results.append(
            {
                "lane": lane,
                "trial": number,
                "offset_s": round(offset, 1),
                "key": path,
                "injected": round(injected, 1),
                "seconds": seconds,
            }
        )
        print(f"drift  lane {lane} trial {number}: {path} -> {seconds} s", flush=True)
    return results


def health_trials(standin: Standin, count: int, period: int, rng: random.Random) -> list[dict[str, Any]]:
    results = []
    for number in range(1, count + 1):
        offset = rng.uniform(0, period)
        time.sleep(offset)
        injected = time.time()
        standin.healthy = False
        per_env = {}
        for env in ENVIRONMENTS:
            arrived = standin.wait_for(injected, (f"{env}/api is DOWN",), timeout=600)
            per_env[env] = None if arrived is None else round(arrived - injected, 1)
        standin.healthy = True
        restored = time.time()
        for env in ENVIRONMENTS:
            standin.wait_for(restored, (f"{env}/api recovered",), timeout=600)
        results.append({"trial": number, "offset_s": round(offset, 1), "seconds": per_env})
        print(f"health trial {number}: {per_env}", flush=True)
    return results


def summary(values: list[float | None]) -> dict[str, Any]:
    seen = [v for v in values if v is not None]
    return {
        "n": len(values),
        "missed": len(values) - len(seen),
        "median_s": round(statistics.median(seen), 1) if seen else None,
        "worst_s": max(seen) if seen else None,
    }


def flow_runs(flow_name: str) -> list[dict[str, Any]]:
    """Every run of the flow so far: when it was due, when it started and ended, how it ended (epoch
    seconds). Calls the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    def epoch(moment: Any) -> float | None:
        return None if moment is None else round(moment.timestamp(), 1)

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200)
    found = [
        {
            "due": epoch(run.expected_start_time),
            "started": epoch(run.start_time),
            "ended": epoch(run.end_time),
            "state": run.state_name,
            "run_s": round(run.total_run_time.total_seconds(), 1),
        }
        for run in runs
        if run.start_time is not None
    ]
    return sorted(found, key=lambda r: r["due"] or 0)


def run_durations(flow_name: str) -> dict[str, Any]:
    """Median and longest run time (s) of the flow's completed runs so far. Calls the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            limit=200,
        )
    times = [run.total_run_time.total_seconds() for run in runs]
    if not times:
        return {"runs": 0}
    return {"runs": len(times), "median_s": round(statistics.median(times), 1), "max_s": round(max(times), 1)}


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "loadavg_at_end": [round(x, 2) for x in load],
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


def main() -> int:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drift-trials", type=int, default=5)
    parser.add_argument("--health-trials", type=int, default=5)
    parser.add_argument(
        "--drift-lanes", type=int, default=1, help="run the drift trials in this many parallel lanes"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    ports = iter(p for p in range(24200, 24800, 10) if port_is_free(p) and port_is_free(p + 1))
    ns = argparse.Namespace(
        prefect_port=next(ports),
        vault_port=next(ports),
        aws_port=next(ports),
        standin_port=next(ports),
        smtp_port=next(ports),
    )
    workdir = Path(tempfile.mkdtemp(prefix="envsteward-detect-"))
    demo.render_catalog(demo.EXAMPLE_CATALOG, workdir / "catalog", demo.chosen_ports(ns))
    demo.configure_environment(ns, workdir)
    stack = LocalStack(workdir)
    database = None
    smtp = None
    served: subprocess.Popen[bytes] | None = None
    standin = Standin(ns.standin_port)
    started = time.time()
    try:
        database = demo.prepare_database(workdir)
        smtp = start_smtp(ns.smtp_port, lambda _text: None)
        demo.start_servers(stack, ns)
        demo.seed_platform()
        log = (workdir / "serve.log").open("wb")
        served = subprocess.Popen(
            [sys.executable, "-m", "envsteward.deployments.serve"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        drift_period, health_period = interval_of("drift-scan"), interval_of("health-check")
        print(f"serving; drift-scan every {drift_period} s, health-check every {health_period} s", flush=True)
        # warm-up: the first scan alerts the deliberate drift; the first health runs see everything up
        if standin.wait_for(started, ("appeared in staging",), timeout=3 * drift_period) is None:
            raise SystemExit(f"no drift alert during warm-up; see {workdir / 'serve.log'}")
        time.sleep(2 * health_period)

        found: dict[str, Any] = {"drift": []}
        keys = drift_keys(args.drift_trials)
        lanes = max(1, min(args.drift_lanes, args.drift_trials))

        def lane(number: int, seed: float) -> None:
            mine = keys[number::lanes]
            found["drift"] += drift_trials(standin, mine, drift_period, random.Random(seed), number + 1)

        threads = [threading.Thread(target=lane, args=(number, rng.random())) for number in range(lanes)] + [
            threading.Thread(
                target=lambda: found.update(
                    health=health_trials(
                        standin, args.health_trials, health_period, random.Random(rng.random())
                    )
                )
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        drift = found.get("drift", [])
        health = found.get("health", [])
        scan_runs = flow_runs("drift-scan")
        report = {
            "command": " ".join(sys.argv),
            "schedules": {"drift-scan": drift_period, "health-check": health_period},
            "machine": machine(),
            "drift": {"trials": drift, **summary([t["seconds"] for t in drift])},
            "health": {
                "trials": health,
                **summary(
                    [max((s for s in t["seconds"].values() if s is not None), default=None) for t in health]
                ),
                "per_environment": {
                    env: summary([t["seconds"][env] for t in health]) for env in ENVIRONMENTS
                },
            },
            "run_time": {name: run_durations(name) for name in ("health-check", "drift-scan")},
            "drift_scan_runs": scan_runs,
            "drift_scan_start_delay_s": summary(
                [round(r["started"] - r["due"], 1) for r in scan_runs if r["started"] and r["due"]]
            ),
            "wall_clock_s": round(time.time() - started),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        shown = ("drift", "health", "drift_scan_start_delay_s")
        print(json.dumps({k: v for k, v in report.items() if k in shown}, indent=1)[:3000])
        return 0
    finally:
        if served is not None:
            served.terminate()
            try:
                served.wait(timeout=30)
            except subprocess.TimeoutExpired:
                served.kill()
        stack.stop()
        if smtp is not None:
            smtp.stop()
        standin.server.shutdown()
        if database is not None:
            demo.demo_database.drop(database)
        print(f"logs in {workdir}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
