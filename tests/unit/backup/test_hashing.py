"""BackgroundSha256: same digest as hashlib, bounded queue, the helper thread always ends."""

from __future__ import annotations

import gc
import hashlib
import os
import threading

import pytest

from envsteward.backup import hashing
from envsteward.backup.format import BackupReader
from envsteward.backup.hashing import BackgroundSha256
from envsteward.errors import IntegrityError

from ._streams import build_object


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
    dropped = BackgroundSha256()
    dropped.update(b"z" * 10_000)
    thread = dropped._thread
    assert thread is not None
    assert thread.is_alive()
    del dropped
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_reader_that_fails_ends_its_thread_at_once() -> None:
    """A damaged object raises from feed() or close(): the reader's thread must end right there, not when
    the traceback that keeps the reader alive is finally collected."""
    blob, key, _header = build_object(os.urandom(200_000))
    flipped_last_byte = blob[:-1] + bytes([blob[-1] ^ 1])
    readers = [BackupReader(lambda _header: key, lambda _piece: None) for _ in range(2)]
    with pytest.raises(IntegrityError):
        readers[0].feed(flipped_last_byte)  # the final chunk does not authenticate
    readers[1].feed(blob[: len(blob) // 2])
    with pytest.raises(IntegrityError, match="truncated"):
        readers[1].close()
    for reader in readers:
        thread = reader._plain_hash._thread
        assert thread is not None
        thread.join(timeout=10)
        assert not thread.is_alive()


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
