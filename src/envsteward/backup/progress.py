"""Progress reporting for backup, verify and restore: a plain callback, no UI and no Prefect here.

The CLI turns events into a rich progress bar and a flow into a Prefect progress artifact; both only need
the cumulative byte counts and, when known, the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Phase = Literal["backup", "verify", "restore"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where one backup operation is. Counts are cumulative; sent once per stored chunk (about 1 MiB)."""

    phase: Phase
    backup_id: str
    stored_bytes: int
    """Bytes of the data object written or read so far."""
    plaintext_bytes: int
    """Bytes of the source stream read (backup) or of plaintext produced (verify, restore) so far."""
    total_stored_bytes: int | None = None
    """Size of the data object when known (verify and restore; None while a backup is written)."""
    done: bool = False

    @property
    def fraction(self) -> float | None:
        """0.0..1.0 of the data object processed, or None when the total is unknown."""
        if not self.total_stored_bytes:
            return 1.0 if self.done else None
        return min(1.0, self.stored_bytes / self.total_stored_bytes)


class ProgressCallback(Protocol):
    """Called with each :class:`ProgressEvent`. It must be quick and must not raise."""

    def __call__(self, event: ProgressEvent) -> None: ...
