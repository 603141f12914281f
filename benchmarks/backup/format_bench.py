"""Throughput of the backup object format alone (no object store), against plain zstd.

Run from the repository root:

    .venv/bin/python benchmarks/backup/format_bench.py [--mib 256] [--repeat 3]

Reports MiB/s of *plaintext* for: plain zstd (the floor the format is compared with), the format's write
path (zstd + AES-256-GCM chunks + SHA-256 of plaintext and ciphertext) and its read path (authenticate +
decrypt + decompress + SHA-256 of both), for zstd in-thread (threads=0) and with 2 and 4 zstd workers,
on two inputs: pg_dump-like text rows and incompressible random bytes. Results go in README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import time
from collections.abc import Callable, Iterator

import zstandard

from envsteward.backup.format import DEFAULT_CHUNK_SIZE, BackupReader, StreamHeader, encrypt_stream

PIECE = 256 << 10


def _rows(total: int) -> Iterator[bytes]:
    """COPY-format rows like a pg_dump of an orders table (repetitive but not trivial)."""
    rng = random.Random(42)
    words = [f"{rng.getrandbits(40):x}" for _ in range(5000)]
    produced, buffer, index = 0, [], 0
    while produced < total:
        line = (
            f"{index}\t{rng.choice(words)}\t{rng.choice(words)} {rng.randint(0, 10**6)}\t"
            f"2024-01-{rng.randint(1, 28):02d} 12:{rng.randint(0, 59):02d}:00+00\t{rng.random():.4f}\n"
        )
        buffer.append(line)
        index += 1
        if len(buffer) == 4000:
            block = "".join(buffer).encode()
            buffer.clear()
            produced += len(block)
            yield block


def _random(total: int) -> Iterator[bytes]:
    for _ in range(total // PIECE):
        yield os.urandom(PIECE)


def _materialise(make: Callable[[int], Iterator[bytes]], total: int) -> list[bytes]:
    data = b"".join(make(total))[:total]
    return [data[i : i + PIECE] for i in range(0, len(data), PIECE)]


def _time(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (all threads of this process) over ``repeat`` runs."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    total = args.mib << 20
    key = os.urandom(32)
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"zstandard {zstandard.__version__} (libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}), "
        f"{args.mib} MiB per run, best of {args.repeat}"
    )
    print("MiB/s of plaintext by wall clock (in brackets: per CPU-second, all threads)")
    print("| input | zstd threads | ratio | plain zstd | format write | format read |")
    print("|---|---|---|---|---|---|")
    for name, make in (("pg_dump-like rows", _rows), ("random bytes", _random)):
        pieces = _materialise(make, total)
        size = sum(map(len, pieces))
        for threads in (0, 2, 4):

            def plain_zstd(threads: int = threads, pieces: list[bytes] = pieces) -> int:
                chunker = zstandard.ZstdCompressor(level=3, threads=threads, write_checksum=True).chunker(
                    chunk_size=DEFAULT_CHUNK_SIZE
                )
                out = 0
                for piece in pieces:
                    out += sum(len(c) for c in chunker.compress(piece))
                return out + sum(len(c) for c in chunker.finish())

            blob: list[bytes] = []

            def write(threads: int = threads, pieces: list[bytes] = pieces, blob: list[bytes] = blob) -> None:
                header = StreamHeader.new(
                    backup_id="bench", key_id="k", wrapped_key=b"w", chunk_size=DEFAULT_CHUNK_SIZE
                )
                blob[:] = list(encrypt_stream(key, header, pieces, zstd_threads=threads))

            def read(blob: list[bytes] = blob) -> None:
                digest = hashlib.sha256()
                reader = BackupReader(lambda _h: key, digest.update)
                for part in blob:
                    reader.feed(part)
                reader.close()

            mib = size / 2**20
            cells = []
            for action in (plain_zstd, write, read):
                wall, cpu = _time(action, args.repeat)
                cells.append(f"{mib / wall:.0f} ({mib / cpu:.0f})")
            ratio = size / sum(map(len, blob))
            print(f"| {name} | {threads} | {ratio:.2f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
