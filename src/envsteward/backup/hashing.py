"""SHA-256 computed in a helper thread, so hashing overlaps the caller's own work on a second core.

``hashlib`` releases the GIL while it hashes more than 2 KiB, so a thread that only calls ``update`` runs
in parallel with a caller busy compressing, decompressing or parsing (measured in
benchmarks/backup/README.md). The digest is the same as ``hashlib.sha256`` over the same pieces in the
same order: pieces go through one FIFO queue to one thread.

Memory is bounded: at most :data:`QUEUE_PIECES` pieces wait in the queue (``update`` blocks when it is
full). Pass immutable ``bytes`` only: a piece is hashed after ``update`` returned.

No external calls.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from typing import Final

QUEUE_PIECES: Final = 4
"""Pieces waiting to be hashed at most (4 x 1 MiB source pieces on the write path)."""

_STOP: Final = None


class BackgroundSha256:
    """``update`` hands a piece to a helper thread; ``hexdigest`` waits for it and returns the digest.

    The thread starts with the first non-empty piece (an object that never hashes anything costs no
    thread) and ends at ``hexdigest``, ``abort`` or when this object is garbage-collected.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_PIECES)
        self._thread: threading.Thread | None = None
        self._digest: str | None = None
        self._failure: list[BaseException] = []
        self._finalizer: weakref.finalize[..., BackgroundSha256] | None = None

    def update(self, data: bytes) -> None:
        """Queue ``data`` (immutable bytes) to be hashed.

        Raises RuntimeError after ``hexdigest`` or ``abort``.
        """
        if self._digest is not None:
            raise RuntimeError("BackgroundSha256: update() after hexdigest() or abort()")
        if not data:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=_work,
                args=(self._hash, self._queue, self._failure),
                name="envsteward-sha256",
                daemon=True,
            )
            self._thread.start()
            # Stops the thread if the owner is dropped without hexdigest()/abort() (an error path).
            self._finalizer = weakref.finalize(self, self._queue.put, _STOP)
        self._queue.put(data)

    def hexdigest(self) -> str:
        """Wait for every queued piece to be hashed; the SHA-256 of all of them. Idempotent.

        Raises RuntimeError if the helper thread failed (it never should: it only calls ``update``) or
        after ``abort``.
        """
        if self._digest is None:
            self._stop()
            if self._failure:
                raise RuntimeError(f"background SHA-256 failed: {self._failure[0]!r}")
            self._digest = self._hash.hexdigest()
        if self._digest == "":
            raise RuntimeError("BackgroundSha256: hexdigest() after abort()")
        return self._digest

    def abort(self) -> None:
        """Stop the helper thread without a digest (the owner failed). Safe to call more than once."""
        if self._digest is None:
            self._stop()
            self._digest = ""

    def _stop(self) -> None:
        if self._thread is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            self._queue.put(_STOP)
            self._thread.join()


def _work(target: hashlib._Hash, pieces: queue.Queue[bytes | None], failure: list[BaseException]) -> None:
    """The helper thread's loop: hash pieces until the stop marker. Keeps draining after a failure so
    a producer blocked on a full queue never hangs."""
    while True:
        piece = pieces.get()
        if piece is _STOP:
            return
        if not failure:
            try:
                target.update(piece)
            except BaseException as exc:  # noqa: BLE001 - reported by hexdigest()
                failure.append(exc)
