"""Rotations in progress, held in this process only. A flow's tasks pass the handle (a random id, not a
secret) from step to step; the pending value never leaves the :class:`~.engine.Rotation` object."""

from __future__ import annotations

import secrets
import threading

from envsteward.errors import PermanentError
from envsteward.rotation.engine import Rotation

_lock = threading.Lock()
_sessions: dict[str, Rotation] = {}


def new_handle() -> str:
    """A fresh, unguessable handle."""
    return "rot-" + secrets.token_hex(12)


def hold(handle: str, rotation: Rotation) -> None:
    """Keep ``rotation`` under ``handle``. Raises PermanentError when the handle is taken."""
    with _lock:
        if handle in _sessions:
            raise PermanentError(f"rotation {handle} is already in progress", system="rotation")
        _sessions[handle] = rotation


def get(handle: str) -> Rotation:
    """The rotation held under ``handle``. Raises PermanentError when this process holds none (e.g. the
    run was resumed in another process after its pending value was created: nothing is changed then)."""
    with _lock:
        rotation = _sessions.get(handle)
    if rotation is None:
        raise PermanentError(
            f"no rotation {handle} in this process (its pending value was never created here)",
            system="rotation",
        )
    return rotation


def find(handle: str) -> Rotation | None:
    with _lock:
        return _sessions.get(handle)


def drop(handle: str) -> None:
    """Forget the rotation under ``handle`` (and its pending value)."""
    with _lock:
        rotation = _sessions.pop(handle, None)
    if rotation is not None:
        rotation.discard()
