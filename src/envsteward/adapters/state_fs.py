"""The filesystem state store (embedded default): small JSON documents that flows keep between runs.

:class:`FileStateStore` implements :class:`envsteward.ports.StateStore` with one JSON file per key under a
folder; writes are atomic (temporary file + fsync + rename) and writers of one key serialise on an
``flock``, so ``update(key, fn)`` is an atomic read-modify-write (alert de-duplication relies on it). The
Redis implementation is :mod:`envsteward.adapters.state_redis`.

Values must be plain JSON (dict, list, str, int, float, bool, None). ``update``'s function receives the
current value (None when the key is absent) and returns the new one; returning None deletes the key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from envsteward.adapters._state_json import UpdateFn, check_key, encode
from envsteward.errors import IntegrityError, PermanentError, PermissionDeniedError, TransientError
from envsteward.ports import JSONValue

_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME_BYTES = 180


def file_name_for_key(key: str) -> str:
    """A safe, injective file name for ``key``: ``[A-Za-z0-9_-]`` kept, every other byte as ``%XX``.

    Names longer than 180 bytes are shortened to a readable head plus the SHA-256 of the key.
    """
    check_key(key)
    name = "".join(
        char if char in _SAFE_CHARS else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in key
    )
    if len(name) > _MAX_NAME_BYTES:
        name = f"{name[:64]}~{hashlib.sha256(key.encode('utf-8')).hexdigest()}"
    return name


class FileStateStore:
    """One JSON file per key in ``root`` (``<name>.json``, lock ``<name>.lock``). Safe across processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / f"{file_name_for_key(key)}.json"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            _raise_os(exc, f"lock {key}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            os.close(fd)

    def get(self, key: str) -> JSONValue | None:
        """The value at ``key``, or None. Raises IntegrityError when the file is not JSON."""
        return self._read(self._path(key), key)

    def put(self, key: str, value: JSONValue) -> None:
        """Store ``value`` (atomically replacing any old one). Raises PermanentError for non-JSON values."""
        text = encode(key, value)
        with self._locked(key) as path:
            self._write(path, text, key)

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        with self._locked(key) as path:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                _raise_os(exc, f"delete {key}")

    def update(self, key: str, fn: UpdateFn) -> JSONValue | None:
        """Atomically replace the value with ``fn(current)`` (None deletes) and return the new value.

        Other writers of the same key wait on the lock, so no update is lost. Exceptions from ``fn``
        propagate and leave the value unchanged.
        """
        with self._locked(key) as path:
            new = fn(self._read(path, key))
            if new is None:
                path.unlink(missing_ok=True)
            else:
                self._write(path, encode(key, new), key)
            return new

    @staticmethod
    def _read(path: Path, key: str) -> JSONValue | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            _raise_os(exc, f"get {key}")
        try:
            return json.loads(text)
        except ValueError:
            raise IntegrityError(
                f"{path} is not valid JSON; delete it to reset this state",
                system="state",
                operation=f"get {key}",
            ) from None

    @staticmethod
    def _write(path: Path, text: str, key: str) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            _raise_os(exc, f"put {key}")


def _raise_os(exc: OSError, operation: str) -> NoReturn:
    """The one place that maps filesystem errors for the file state store."""
    import errno

    message = exc.strerror or str(exc)
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ENOSPC, errno.EIO):
        raise TransientError(message, system="state", operation=operation) from None
    if exc.errno in (errno.EACCES, errno.EPERM):
        raise PermissionDeniedError(message, system="state", operation=operation) from None
    raise PermanentError(message, system="state", operation=operation) from None
