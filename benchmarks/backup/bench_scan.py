"""CPU of the table-checksum scan over a real pg_dump archive: v4 (stream hash, header deletion) vs v5
(framed rows hashed in place), old and new interleaved in ONE process, ``time.process_time``.

    pg_dump -Fc --compress=0 -h 127.0.0.1 -U postgres envsteward_bench > /tmp/bench.dump
    .venv/bin/python benchmarks/backup/bench_scan.py /tmp/bench.dump [--rounds 3] [--mib 0] \
        [--baseline /work/main/src/envsteward/backup/sources/pg_archive.py]

The archive is read into memory in 1 MiB pieces first (``--mib``: only the first N MiB; 0: all), then fed
to each scanner as the backup pipeline feeds it. Prints CPU seconds per GiB, best and every round, the
digests, and the load average. ``--baseline``: another version of ``pg_archive.py`` (e.g. the main
checkout's) measured as a third contender (its v4 scanner, as it was).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envsteward.adapters.pg_checksums import FRAMED_ALGORITHM, STREAM_ALGORITHM
from envsteward.backup.sources.pg_archive import ArchiveScanner

PIECE = 1 << 20


def run(pieces: list[bytes], make: Callable[[], Any], *, whole: bool) -> tuple[float, object]:
    scanner = make()
    started = time.process_time()
    for piece in pieces:
        scanner.feed(piece)
    took = time.process_time() - started
    if not whole:
        return took, "(partial archive: no digest)"
    return took, [(item.name, item.rows, item.checksum) for item in scanner.finish()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dump", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=0)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    contenders: dict[str, Callable[[], Any]] = {}
    if args.baseline:
        spec = importlib.util.spec_from_file_location("pg_archive_baseline", args.baseline)
        assert spec is not None
        assert spec.loader is not None
        baseline = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = baseline
        spec.loader.exec_module(baseline)
        contenders["v4, baseline scanner"] = baseline.ArchiveScanner
    contenders[STREAM_ALGORITHM] = lambda: ArchiveScanner(family=STREAM_ALGORITHM)
    contenders[FRAMED_ALGORITHM] = lambda: ArchiveScanner(family=FRAMED_ALGORITHM)
    pieces: list[bytes] = []
    with args.dump.open("rb") as handle:
        while piece := handle.read(PIECE):
            pieces.append(piece)
            if args.mib and len(pieces) >= args.mib:
                break
    total = sum(map(len, pieces))
    gib = total / (1 << 30)
    print(f"{total} bytes in {len(pieces)} pieces; loadavg {Path('/proc/loadavg').read_text().split()[:3]}")
    times: dict[str, list[float]] = {name: [] for name in contenders}
    digests: dict[str, object] = {}
    for _ in range(args.rounds):
        for name, make in contenders.items():
            took, digests[name] = run(pieces, make, whole=args.mib == 0)
            times[name].append(took / gib)
    for family, values in times.items():
        shown = " ".join(f"{v:.2f}" for v in values)
        print(f"{family}: best {min(values):.2f} s CPU/GiB (rounds {shown}); {digests[family]}")
    print(f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
