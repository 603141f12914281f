"""State stores: small JSON documents that flows keep between runs (last health status, alert fingerprints).

Two implementations of :class:`envsteward.ports.StateStore`, both with an atomic read-modify-write
``update(key, fn)`` that alert de-duplication relies on:

* :class:`FileStateStore` (embedded default): one JSON file per key under a folder; writes are atomic
  (temporary file + fsync + rename) and writers of one key serialise on an ``flock``.
* :class:`RedisStateStore`: one Redis string per key (``<prefix><key>``); ``update`` uses WATCH/MULTI and
  retries when another client changed the key in between.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from envsteward._redact import vendor_text
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import JSONValue, StateStore

if TYPE_CHECKING:
    import redis

    from envsteward.settings import Settings

UpdateFn = Callable[[JSONValue | None], JSONValue | None]

_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME_BYTES = 180
_REDIS_UPDATE_ATTEMPTS = 50


def _encode(key: str, value: JSONValue) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"value is not plain JSON: {exc}", system="state", operation=f"put {key}"
        ) from None


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise PermanentError("state keys must be non-empty strings", system="state")


def file_name_for_key(key: str) -> str:
    """A safe, injective file name for ``key``: ``[A-Za-z0-9_-]`` kept, every other byte as ``%XX``.

    Names longer than 180 bytes are shortened to a readable head plus the SHA-256 of the key.
    """
    _check_key(key)
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
        text = _encode(key, value)
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
                self._write(path, _encode(key, new), key)
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


class RedisStateStore:
    """One Redis string per key, named ``<prefix><key>``. Connection problems raise TransientError."""

    def __init__(self, url: str, prefix: str = "envsteward:", *, timeout_seconds: float = 5.0) -> None:
        import redis

        self.prefix = prefix
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                decode_responses=True,
            )
        except ValueError:
            # The URL may hold a password: do not repeat it.
            raise ConfigurationError(
                "state.redis_url is not a valid Redis URL (redis://[user:password@]host:port/db)",
                system="redis",
            ) from None

    def __repr__(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return (
            f"RedisStateStore({kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}, {self.prefix!r})"
        )

    def _name(self, key: str) -> str:
        _check_key(key)
        return self.prefix + key

    def get(self, key: str) -> JSONValue | None:
        """The value at ``key``, or None. Raises TransientError (connection), IntegrityError (not JSON)."""
        name = self._name(key)
        try:
            text = self._client.get(name)
        except Exception as exc:  # noqa: BLE001 - translated in one place
            _raise_redis(exc, f"get {key}")
        return _decode(text, key)

    def put(self, key: str, value: JSONValue) -> None:
        """Store ``value``. Raises PermanentError for non-JSON values, TransientError when Redis is down."""
        name, text = self._name(key), _encode(key, value)
        try:
            self._client.set(name, text)
        except Exception as exc:  # noqa: BLE001
            _raise_redis(exc, f"put {key}")

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        name = self._name(key)
        try:
            self._client.delete(name)
        except Exception as exc:  # noqa: BLE001
            _raise_redis(exc, f"delete {key}")

    def update(self, key: str, fn: UpdateFn) -> JSONValue | None:
        """Atomically replace the value with ``fn(current)`` (None deletes) using WATCH/MULTI/EXEC.

        ``fn`` may run more than once when another client changes the key in between; it must not have
        side effects. Raises ConflictError after 50 lost races, TransientError when Redis is down.
        """
        import redis

        name = self._name(key)
        try:
            with self._client.pipeline() as pipe:
                for _attempt in range(_REDIS_UPDATE_ATTEMPTS):
                    try:
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        new = fn(_decode(pipe.get(name), key))
                        text = None if new is None else _encode(key, new)
                        pipe.multi()
                        if text is None:
                            pipe.delete(name)
                        else:
                            pipe.set(name, text)
                        pipe.execute()
                        return new
                    except redis.WatchError:
                        continue
        except EnvstewardError:
            raise
        except Exception as exc:  # noqa: BLE001
            _raise_redis(exc, f"update {key}")
        raise ConflictError(
            f"{key} kept changing; gave up after {_REDIS_UPDATE_ATTEMPTS} attempts",
            system="redis",
            operation=f"update {key}",
        )

    def close(self) -> None:
        self._client.close()


def _decode(text: Any, key: str) -> JSONValue | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise IntegrityError(
            "stored value is not valid JSON; delete the key to reset this state",
            system="redis",
            operation=f"get {key}",
        ) from None


def _raise_redis(exc: BaseException, operation: str) -> NoReturn:
    """The one place that maps redis-py exceptions to envsteward errors (messages never hold values)."""
    import redis

    if isinstance(exc, redis.AuthenticationError | redis.AuthenticationWrongNumberOfArgsError):
        raise AuthenticationError(
            "authentication failed (check the password in state.redis_url)",
            system="redis",
            operation=operation,
        ) from None
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError | OSError):
        raise TransientError(
            f"Redis is not reachable ({type(exc).__name__})", system="redis", operation=operation
        ) from None
    if isinstance(exc, redis.ResponseError):
        # Some replies quote the command's arguments ("unknown command ..., with args beginning with: ..."),
        # and an argument may be a stored value: show the reply only after redaction.
        raw = str(exc)
        text = vendor_text(raw)
        if raw.startswith("NOPERM"):
            raise PermissionDeniedError(text, system="redis", operation=operation) from None
        if raw.startswith(("LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY")):
            raise TransientError(text, system="redis", operation=operation) from None
        raise PermanentError(text, system="redis", operation=operation) from None
    if isinstance(exc, redis.RedisError):
        raise PermanentError(
            f"{type(exc).__name__}: {vendor_text(str(exc))}", system="redis", operation=operation
        ) from None
    raise exc


def open_state_store(settings: Settings) -> StateStore:
    """The state store named by ``settings.state.kind``: ``<home>/state`` or Redis at ``state.redis_url``.

    Connects lazily (the first call talks to Redis). Raises ConfigurationError for a malformed Redis URL.
    """
    if settings.state.kind == "redis":
        return RedisStateStore(settings.state.redis_url, settings.state.key_prefix)
    return FileStateStore(settings.home / "state")
