"""Scale: the drift-scan and health-check deployments' run times at N environments x 1,000 keys.

    .venv/bin/python benchmarks/scale/run.py --envs 50 --drift-runs 3 --health-runs 3 --label after

Builds the world of ``world.py`` (a catalog of N environments; 1,000 keys each, half in OpenBao KV v2, half
in moto SSM; 10 HTTP health endpoints per environment served by ``endpoints.py``), starts a real ``prefect
server start`` (SQLite) and serves every deployment of ``prefect.yaml`` (``serve_bench.py``: health-check on
its 30 s schedule, drift-scan started here, back to back, with fresh drift injected before each run). Then
reads each flow run's start and end from the Prefect API and records, per run: run time, peak RSS of the
flow-run process (``VmHWM``, sampled every 0.25 s), task runs, and calls to each external system (Vault
from an OpenBao file audit device, SSM from moto's request recorder, health endpoints and Slack from the
stand-ins' counters). Writes ``results.json`` (one entry per ``--label``/``--envs``, merged).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import world  # noqa: E402 - a sibling script
from envsteward.deployments.catalog import REPO_ROOT  # noqa: E402
from envsteward.deployments.local_stack import LocalStack, executable, http_ok, port_is_free  # noqa: E402

DRIFT_RUN_TIMEOUT = 900
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Slack:
    """Slack's ``auth.test`` / ``chat.postMessage`` on loopback: records the arrival time of each post."""

    def __init__(self, port: int) -> None:
        self.posts: list[float] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/chat.postMessage"):
                    with outer.lock:
                        outer.posts.append(time.time())
                body = json.dumps({"ok": True, "channel": "C1", "ts": f"{time.time():.6f}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for t in self.posts if start <= t <= end)


class ProcessSampler:
    """Every 0.25 s: the descendants of ``root`` that are flow-run processes (multiprocessing spawns), with
    the first and last time each was seen and its resident high-water mark (``VmHWM``), and the load."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, dict[str, Any]] = {}
        self.load: list[tuple[float, float]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _children(self, pid: int) -> list[int]:
        found = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    found += [int(c) for c in (task / "children").read_text().split()]
        return found

    def _loop(self) -> None:
        last_load = 0.0
        while not self.stopped.is_set():
            now = time.time()
            stack, pids = [self.root], []
            while stack:
                for child in self._children(stack.pop()):
                    pids.append(child)
                    stack.append(child)
            for pid in pids:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    status = Path(f"/proc/{pid}/status").read_text()
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                hwm = next(
                    (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0
                )
                if pid not in self.seen:
                    command = cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]
                    self.seen[pid] = {"first": now, "hwm_kib": 0, "cmd": command, "run": _flow_run_id(pid)}
                entry = self.seen[pid]
                entry["last"] = now
                entry["hwm_kib"] = max(entry["hwm_kib"], hwm)
                # utime + stime (fields 14 and 15 of /proc/PID/stat), in clock ticks
                entry["cpu_s"] = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
            if now - last_load >= 5:
                self.load.append((now, os.getloadavg()[0]))
                last_load = now
            time.sleep(0.25)

    def process_for(self, flow_run_id: str) -> dict[str, Any] | None:
        """The process that ran the flow run (``PREFECT__FLOW_RUN_ID`` in its environment). Its ``hwm_kib``
        is its peak RSS, ``cpu_s`` its CPU time (user + system) at the last sample (0.25 s before its end at
        most)."""
        return next((e for e in self.seen.values() if e["run"] == flow_run_id), None)

    def load_between(self, start: float, end: float) -> list[float]:
        return [round(v, 2) for t, v in self.load if start - 5 <= t <= end + 5]


def _flow_run_id(pid: int) -> str | None:
    """The flow run a ``python -m prefect.engine`` process runs: the runner puts it in its environment."""
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                return item.split(b"=", 1)[1].decode()
    return None


def vault_calls(audit_file: Path, start: float, end: float) -> dict[str, int]:
    """Requests in the OpenBao audit log between ``start`` and ``end``, by operation (list, read...)."""
    counts: Counter[str] = Counter()
    if not audit_file.exists():
        return {}
    with audit_file.open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("type") != "request":
                continue
            when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            if start <= when <= end:
                counts[entry["request"].get("operation", "?")] += 1
    return dict(counts)


def moto_calls(recording: Path) -> dict[str, int]:
    """Requests in moto's recording, by AWS operation (``X-Amz-Target``)."""
    counts: Counter[str] = Counter()
    if not recording.exists():
        return {}
    for line in recording.read_text().splitlines():
        headers = {k.lower(): v for k, v in json.loads(line)["headers"].items()}
        counts[headers.get("x-amz-target", "?").rsplit(".", 1)[-1]] += 1
    return dict(counts)


def moto_api(port: int, action: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/recorder/{action}", method="POST")
    urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 - loopback


def endpoint_requests(port: int) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
        return int(json.loads(response.read())["requests"])


def flow_runs(deployment: str) -> list[Any]:
    """Every flow run of ``deployment`` (``flow/deployment``), oldest first. Calls the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[deployment.split("/")[1]])
                ),
                sort=FlowRunSort.START_TIME_ASC,
                limit=200,
            )
        )


def task_run_count(flow_run_id: Any) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        response = client.request(
            "POST", "/task_runs/count", json={"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
        )
        return int(response.json())


def wait_for_deployments(names: list[str], timeout: float = 300) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(Exception), get_client(sync_client=True) as client:
            if all(client.read_deployment_by_name(name) for name in names):
                return
        time.sleep(2)
    raise SystemExit(f"deployments {names} did not appear within {timeout:.0f} s")


def start_drift_run(run_deployment: Any) -> Any:
    """Run the drift-scan deployment and wait for it. The SQLite Prefect server answers 503 now and then
    on a loaded machine: creating the run is tried again (at most 5 times, 10 s apart)."""
    from prefect.exceptions import PrefectHTTPStatusError

    for attempt in range(5):
        try:
            return run_deployment("drift-scan/drift-scan", timeout=DRIFT_RUN_TIMEOUT)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 503 or attempt == 4:
                raise
            print(f"creating the drift run: HTTP 503, trying again ({attempt + 1})", flush=True)
            time.sleep(10)
    raise AssertionError("unreachable")


def run_row(run: Any, sampler: ProcessSampler) -> dict[str, Any]:
    start, end = run.start_time.timestamp(), run.end_time.timestamp()
    process = sampler.process_for(str(run.id))
    return {
        "id": str(run.id),
        "state": run.state.name if run.state else None,
        "run_s": round(end - start, 1),
        "peak_rss_mib": round(process["hwm_kib"] / 1024, 1) if process else None,
        "process_cpu_s": round(process["cpu_s"], 1) if process else None,
        "task_runs": task_run_count(run.id),
        "load1": sampler.load_between(start, end),
        "start": run.start_time.isoformat(),
    }


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def configure(ns: argparse.Namespace, workdir: Path) -> None:
    os.environ.update(
        {
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{ns.prefect_port}/api",
            "PREFECT_UI_URL": f"http://127.0.0.1:{ns.prefect_port}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "ENVSTEWARD_CATALOG": str(workdir / "catalog"),
            "ENVSTEWARD_HOME": str(workdir / "home"),
            "ENVSTEWARD_ACTOR": "scale-bench",
            "ENVSTEWARD_VAULT__ADDR": f"http://127.0.0.1:{ns.vault_port}",
            "VAULT_TOKEN": "bench-" + secrets.token_hex(12),
            "ENVSTEWARD_AWS__ENDPOINT_URL": f"http://127.0.0.1:{ns.aws_port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "ENVSTEWARD_SLACK__BASE_URL": f"http://127.0.0.1:{ns.slack_port}/api/",
            "SLACK_BOT_TOKEN": "xoxb-bench-" + secrets.token_hex(8),
        }
    )


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    import prefect

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(total_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "prefect": prefect.__version__,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--drift-runs", type=int, default=3)
    parser.add_argument("--health-runs", type=int, default=3, help="at least this many scheduled runs")
    parser.add_argument("--label", default="run")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    ports = iter(p for p in range(25300, 26000, 10) if port_is_free(p) and port_is_free(p + 1))
    ns = argparse.Namespace(
        prefect_port=next(ports),
        vault_port=next(ports),
        aws_port=next(ports),
        slack_port=next(ports),
        endpoint_port=next(ports),
    )
    workdir = Path(tempfile.mkdtemp(prefix="envsteward-scale-"))
    configure(ns, workdir)
    world.write_catalog(workdir / "catalog", args.envs, ns.endpoint_port)
    plan_file = workdir / "endpoints.json"
    plan_file.write_text(json.dumps(world.endpoint_plan(args.envs)))
    recording = workdir / "moto_recording.jsonl"
    audit_file = workdir / "vault_audit.jsonl"
    stack = LocalStack(workdir)
    slack = Slack(ns.slack_port)
    sampler: ProcessSampler | None = None
    started = time.time()
    try:
        stack.start(
            "endpoints",
            [sys.executable, str(HERE / "endpoints.py"), str(ns.endpoint_port), str(plan_file)],
            lambda: not port_is_free(ns.endpoint_port),
            port=ns.endpoint_port,
        )
        # the file audit device counts Vault calls; OpenBao takes it from its configuration only
        config = workdir / "openbao-audit.hcl"
        config.write_text(
            f'audit "file" "bench" {{\n  options {{\n    file_path = "{audit_file}"\n  }}\n}}\n'
        )
        stack.start(
            "openbao",
            [
                executable("bao"),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{ns.vault_port}",
                "-dev-no-store-token",
                f"-config={config}",
            ],
            http_ok(f"http://127.0.0.1:{ns.vault_port}/v1/sys/health"),
            port=ns.vault_port,
            env={"BAO_DEV_ROOT_TOKEN_ID": os.environ["VAULT_TOKEN"]},
            redact=[os.environ["VAULT_TOKEN"]],
        )
        stack.start(
            "moto",
            [executable("moto_server"), "-H", "127.0.0.1", "-p", str(ns.aws_port)],
            http_ok(f"http://127.0.0.1:{ns.aws_port}/moto-api/"),
            port=ns.aws_port,
            env={"MOTO_RECORDER_FILEPATH": str(recording)},
        )
        stack.start(
            "prefect-server",
            [executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(ns.prefect_port)],
            http_ok(f"http://127.0.0.1:{ns.prefect_port}/api/health"),
            port=ns.prefect_port,
            timeout=180,
        )
        from envsteward.services import get_services

        services = get_services()
        t0 = time.time()
        seeded = world.seed(services, args.envs)
        seed_s = round(time.time() - t0, 1)
        rng = random.Random(13)
        initial = world.inject_drift(services, args.envs, rng, envs=max(1, args.envs // 5), per_env=4)
        print(f"seeded {seeded} in {seed_s} s; {len(initial)} drifted values", flush=True)

        log = (workdir / "logs" / "serve.log").open("wb")
        served = subprocess.Popen(
            [sys.executable, str(HERE / "serve_bench.py")],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.processes.append(("serve", served))
        wait_for_deployments(["drift-scan/drift-scan", "health-check/health-check"])
        sampler = ProcessSampler(served.pid)
        print("serving; starting drift runs", flush=True)

        from prefect.deployments import run_deployment

        drift_rows = []
        for number in range(1, args.drift_runs + 1):
            injected = [] if number == 1 else world.inject_drift(services, args.envs, rng, envs=3, per_env=4)
            moto_api(ns.aws_port, "reset-recording")
            moto_api(ns.aws_port, "start-recording")
            run = start_drift_run(run_deployment)
            moto_api(ns.aws_port, "stop-recording")
            run = flow_runs("drift-scan/drift-scan")[-1] if run.end_time is None else run
            row = run_row(run, sampler)
            start, end = run.start_time.timestamp(), run.end_time.timestamp()
            row.update(
                {
                    "drift_injected": len(injected),
                    "vault_calls": vault_calls(audit_file, start - 1, end + 1),
                    "ssm_calls": moto_calls(recording),
                    "slack_posts": slack.between(start, end + 1),
                }
            )
            drift_rows.append(row)
            print(f"drift run {number}: {json.dumps(row)}", flush=True)

        # the health runs: every run of the schedule since serving started, at least --health-runs of them
        deadline = time.time() + 60 * max(3, args.health_runs)
        while time.time() < deadline:
            done = [r for r in flow_runs("health-check/health-check") if r.end_time is not None]
            if len(done) >= args.health_runs:
                break
            time.sleep(5)
        served_requests = endpoint_requests(ns.endpoint_port)
        health_rows = []
        for run in flow_runs("health-check/health-check"):
            if run.end_time is None or run.start_time is None:
                continue
            row = run_row(run, sampler)
            start, end = run.start_time.timestamp(), run.end_time.timestamp()
            row["slack_posts"] = slack.between(start, end + 1)
            row["overlaps_drift_run"] = any(
                datetime.fromisoformat(d["start"]).timestamp() < end
                and start < datetime.fromisoformat(d["start"]).timestamp() + d["run_s"]
                for d in drift_rows
            )
            health_rows.append(row)
            print(f"health run: {json.dumps(row)}", flush=True)

        entry = {
            "label": args.label,
            "envs": args.envs,
            "keys_per_env": world.KEYS,
            "keys_total": world.KEYS * args.envs,
            "endpoints": args.envs * world.CHECKS_PER_ENV,
            "seeded": seeded,
            "seed_s": seed_s,
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "drift": {"runs": drift_rows, "run_s": summary([r["run_s"] for r in drift_rows])},
            "health": {
                "runs": health_rows,
                "run_s": summary([r["run_s"] for r in health_rows]),
                "endpoint_requests_total": served_requests,
                "endpoint_requests_per_run": round(served_requests / max(1, len(health_rows)), 1),
            },
            "wall_clock_s": round(time.time() - started),
        }
        results = json.loads(args.out.read_text()) if args.out.exists() else {"entries": []}
        results["entries"] = [
            e for e in results["entries"] if (e["label"], e["envs"]) != (args.label, args.envs)
        ] + [entry]
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(
            json.dumps({"drift": entry["drift"]["run_s"], "health": entry["health"]["run_s"]}, indent=1),
            flush=True,
        )
        return 0
    finally:
        if sampler is not None:
            sampler.stopped.set()
        stack.stop()
        slack.server.shutdown()
        if sampler is not None:
            (workdir / "processes.json").write_text(json.dumps(sampler.seen, indent=1))
        print(f"logs in {workdir}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
