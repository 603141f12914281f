"""BackgroundSha256: same digest as hashlib, bounded queue, the helper thread always ends."""

from __future__ import annotations

import gc
import hashlib
import os
import threading

import pytest

from envsteward.backup import hashing
from envsteward.backup.hashing import BackgroundSha256


def _helpers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "envsteward-sha256")


def test_digest_equals_hashlib_over_the_same_pieces_in_order() -> None:
    pieces = [os.urandom(size) for size in (0, 1, 2047, 2048, 1 << 20, 3, 300_000)] * 3
    background = BackgroundSha256()
    for piece in pieces:
        background.update(piece)
    assert background.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert background.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()  # idempotent


def test_nothing_hashed_is_the_empty_digest_and_starts_no_thread() -> None:
    before = _helpers()
    background = BackgroundSha256()
    background.update(b"")
    assert _helpers() == before
    assert background.hexdigest() == hashlib.sha256().hexdigest()


def test_thread_ends_at_digest_and_at_abort() -> None:
    before = _helpers()
    done = BackgroundSha256()
    done.update(b"x" * 10_000)
    assert _helpers() == before + 1
    done.hexdigest()
    aborted = BackgroundSha256()
    aborted.update(b"y" * 10_000)
    aborted.abort()
    aborted.abort()
    assert _helpers() == before
    with pytest.raises(RuntimeError, match="after abort"):
        aborted.hexdigest()
    with pytest.raises(RuntimeError, match="after hexdigest"):
        done.update(b"more")


def test_thread_ends_when_the_owner_is_dropped() -> None:
    before = _helpers()
    dropped = BackgroundSha256()
    dropped.update(b"z" * 10_000)
    del dropped
    gc.collect()
    for thread in threading.enumerate():
        if thread.name == "envsteward-sha256":
            thread.join(timeout=5)
    assert _helpers() == before


def test_queue_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer faster than the hash waits: at most QUEUE_PIECES pieces are ever queued."""
    gate = threading.Event()
    seen: list[int] = []
    real_work = hashing._work

    def slow_work(target, pieces, failure):  # type: ignore[no-untyped-def]
        gate.wait()
        real_work(target, pieces, failure)

    monkeypatch.setattr(hashing, "_work", slow_work)
    background = BackgroundSha256()
    producer = threading.Thread(
        target=lambda: [background.update(b"p" * 4096) or seen.append(1) for _ in range(20)], daemon=True
    )
    producer.start()
    try:
        producer.join(timeout=0.5)
        assert producer.is_alive()
        assert len(seen) == hashing.QUEUE_PIECES  # the gated thread took none; the 5th put waits
    finally:
        gate.set()
        producer.join(timeout=5)
    assert background.hexdigest() == hashlib.sha256(b"p" * 4096 * 20).hexdigest()
