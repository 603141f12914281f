"""The two health-check fixes side by side, in one run (ratios are what to compare on a shared machine).

    .venv/bin/python benchmarks/scale/probe_cpu.py [--checks 500] [--out probe_cpu.json]

1. CPU time of ``checks`` HTTP probes against a loopback server, 16 at a time: one new ``httpx.Client`` per
   probe (what ``get_status`` did before) against the shared probe client (what it does now).
2. Wall time of folding ``checks`` results into a file state store (fsync per write): one after the other
   (``record_result`` in a loop, as before) against ``record_results`` (16 at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from envsteward.adapters._http import get_status
from envsteward.adapters.state_fs import FileStateStore
from envsteward.health.recording import record_result, record_results
from envsteward.health.result import CheckResult, CheckStatus


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def probe_old(url: str) -> int:
    with httpx.Client(timeout=5.0, follow_redirects=False) as client:
        return client.get(url).status_code


def probe_new(url: str) -> int:
    return get_status(url, timeout_seconds=5.0, system="http", operation="get")[0]


def cpu_of(fn: Any, url: str, count: int) -> float:
    started = time.process_time()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(fn, [url] * count))
    assert all(status == 200 for status in statuses)
    return time.process_time() - started


def results(count: int, status: CheckStatus) -> list[CheckResult]:
    return [
        CheckResult(
            environment=f"env-{n // 10:02d}",
            check=f"check-{n % 10}",
            kind="http",
            status=status,
            detail=status.value,
            checked_at=datetime.now(UTC),
        )
        for n in range(count)
    ]


def record_wall(count: int, parallel: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="envsteward-probe-cpu-") as folder:
        store = FileStateStore(Path(folder))
        record_results(store, results(count, CheckStatus.UP), {})  # the keys exist, as in a steady state
        batch = results(count, CheckStatus.DOWN)
        started = time.perf_counter()
        if parallel:
            record_results(store, batch, {})
        else:
            for result in batch:
                record_result(store, result, 1)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("probe_cpu.json"))
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    probe_new(url)  # build the shared client outside the measurement
    rows = []
    for attempt in range(3):  # alternate, so load changes on the machine hit both sides
        rows.append(
            {
                "attempt": attempt + 1,
                "probe_cpu_s_new_client_each": round(cpu_of(probe_old, url, args.checks), 2),
                "probe_cpu_s_shared_client": round(cpu_of(probe_new, url, args.checks), 2),
                "record_wall_s_one_by_one": round(record_wall(args.checks, parallel=False), 2),
                "record_wall_s_record_results": round(record_wall(args.checks, parallel=True), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    server.shutdown()
    report = {
        "checks": args.checks,
        "nproc": os.cpu_count(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "attempts": rows,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
