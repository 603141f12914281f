"""The embedded default's object store: a folder on the local filesystem (the ObjectStore port).

Layout under ``root``:

* an object with key ``a/b/c`` is the file ``root/a/b/c``;
* its metadata sidecar is ``root/a/b/.c.meta.json``: ``{"etag", "metadata", "inode", "size"}``;
* writes in flight are ``root/a/b/.c.<random>.tmp``.

So every name that starts with a dot belongs to the store: keys are ``/``-separated relative paths whose
segments are not empty, not ``.``/``..`` and do not start with a dot (a clear ConfigurationError otherwise),
and :meth:`FilesystemObjectStore.list` skips dot-names.

Guarantees:

* Every write goes to a temp file in the object's own folder, is fsynced, and is moved into place with
  ``os.replace`` (readers see the old object or the new one, never a part). An interrupted
  :meth:`~FilesystemObjectStore.put_stream` removes its temp file and leaves no object.
* :meth:`~FilesystemObjectStore.put_if_absent` publishes with ``os.link``, which fails atomically when the
  name exists, so exactly one of several racing processes wins.
* The sidecar records the inode and size of the object file it describes, and is written right after the
  object. A sidecar that does not match its object (a crash between the two writes, or a reader that looks
  in between) is ignored: the object is reported with no metadata and no etag rather than the wrong ones.
* The etag is the SHA-256 (hex) of the content. ``modified`` is the file's mtime, in UTC.

A key cannot be both an object and a "folder" of other objects (``a`` and ``a/b``), unlike S3: such a put
raises ConflictError.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from envsteward._fsync import fsync_dir
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import ObjectInfo

SYSTEM = "objectstore"
_SIDECAR_SUFFIX = ".meta.json"


class FilesystemObjectStore:
    """ObjectStore over a local folder. Safe for concurrent use by threads and processes on one host."""

    def __init__(self, root: Path) -> None:
        """Create ``root`` (and its parents) when missing. Raises PermissionDeniedError/PermanentError."""
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _translate(exc, "open", str(self.root)) from None

    def __repr__(self) -> str:
        return f"FilesystemObjectStore(root={str(self.root)!r})"

    # -- writes ---------------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Write (replace) the object at ``key`` atomically. Writes local files only.

        Raises ConfigurationError for a bad key or metadata, ConflictError when the key collides with a
        folder of other objects, PermissionDeniedError or PermanentError for filesystem failures.
        """
        return self.put_stream(key, [data], metadata)

    def put_stream(
        self, key: str, chunks: Iterable[bytes], metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Stream ``chunks`` into a temp file and move it to ``key`` only when all of them were written.

        An exception raised by ``chunks`` propagates unchanged, after the temp file is removed: no object
        and no temp file are left behind. Raises the errors listed on :meth:`put_bytes`.
        """
        path = self._path(key)
        meta = _check_metadata(metadata)
        digest = hashlib.sha256()

        def write(handle: IO[bytes]) -> None:
            for chunk in chunks:
                digest.update(chunk)
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise _translate(exc, "put", key) from None

        tmp = self._write_temp(key, path, write)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _translate(exc, "put", key) from None
        fsync_dir(path.parent)
        return self._finish_write(key, path, digest.hexdigest(), meta)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only when no object has that key; False (and no write) when one exists.

        Atomic across processes (``os.link`` refuses an existing name). Raises the errors listed on
        :meth:`put_bytes`.
        """
        path = self._path(key)

        def write(handle: IO[bytes]) -> None:
            try:
                handle.write(data)
            except OSError as exc:
                raise _translate(exc, "put_if_absent", key) from None

        tmp = self._write_temp(key, path, write)
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.is_dir():
                raise ConflictError(
                    f"{key} is a folder of other objects", system=SYSTEM, operation=f"put_if_absent {key}"
                ) from None
            return False
        except OSError as exc:
            raise _translate(exc, "put_if_absent", key) from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)
        self._finish_write(key, path, hashlib.sha256(data).hexdigest(), {})
        return True

    def delete(self, key: str) -> None:
        """Delete the object (and its sidecar); a missing object is not an error.

        Empty folders left behind are removed. Raises ConfigurationError for a bad key, or
        PermissionDeniedError/PermanentError.
        """
        path = self._path(key)
        try:
            if path.is_dir():
                return  # a "folder" of other objects, not an object
            path.unlink(missing_ok=True)
            _sidecar(path).unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(exc, "delete", key) from None
        self._prune(path.parent)

    # -- reads ----------------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        """The whole object. Raises NotFoundError, ConfigurationError for a bad key, PermanentError."""
        path = self._path(key)
        try:
            if path.is_dir():
                raise NotFoundError(f"no object {key}", system=SYSTEM, operation=f"get {key}")
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object {key}", system=SYSTEM, operation=f"get {key}") from None
        except OSError as exc:
            raise _translate(exc, "get", key) from None

    def get_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object in chunks of at most ``chunk_size`` bytes.

        The file is opened before this returns, so a missing object raises NotFoundError here, not on
        the first ``next()``. Raises ConfigurationError for a bad key, PermanentError.
        """
        if chunk_size <= 0:
            raise ConfigurationError("chunk_size must be positive", system=SYSTEM, operation="get_stream")
        path = self._path(key)
        try:
            if path.is_dir():
                raise NotFoundError(f"no object {key}", system=SYSTEM, operation=f"get_stream {key}")
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object {key}", system=SYSTEM, operation=f"get_stream {key}") from None
        except OSError as exc:
            raise _translate(exc, "get_stream", key) from None
        return _read_chunks(handle, chunk_size, key)

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when there is no object at ``key``. Raises ConfigurationError."""
        path = self._path(key)
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _translate(exc, "head", key) from None
        if not stat.S_ISREG(info.st_mode):
            return None
        return self._info(key, path, info)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (plain string order).

        ``prefix`` is a plain string prefix, as in S3 (``backups/pro`` matches ``backups/prod/x``).
        Reads local folders only.
        """
        if prefix.startswith("/") or "\\" in prefix or "\0" in prefix:
            raise ConfigurationError(
                f"invalid prefix {prefix!r}: prefixes are relative, '/'-separated",
                system=SYSTEM,
                operation="list",
            )
        # Walk only the deepest folder that contains every match.
        folder_parts = prefix.split("/")[:-1]
        if any(part in ("", ".", "..") or part.startswith(".") for part in folder_parts):
            return iter(())
        start = self.root.joinpath(*folder_parts)
        found: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                key = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                if key.startswith(prefix):
                    found.append((key, Path(dirpath) / filename))
        found.sort()
        return self._infos(found)

    def _infos(self, found: builtins.list[tuple[str, Path]]) -> Iterator[ObjectInfo]:
        for key, path in found:
            try:
                info = path.stat()
            except FileNotFoundError:
                continue  # deleted since the walk
            except OSError as exc:
                raise _translate(exc, "list", key) from None
            yield self._info(key, path, info)

    # -- leftovers of interrupted writes --------------------------------------------------------------------

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Temp files of writes that never finished (a process killed mid-``put_stream``), oldest first.

        Each is reported as the object it was going to become: ``key``, the temp file's ``size`` so far and
        its ``modified`` time; ``metadata["upload"]`` is the temp file's name (for
        :meth:`abort_incomplete_upload`). A write in progress looks the same: the caller decides by age.
        Reads local folders only.
        """
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                target = _temp_target(filename)
                if target is None:
                    continue
                key = target if rel_dir == "." else f"{rel_dir}/{target}"
                if not key.startswith(prefix):
                    continue
                try:
                    info = (Path(dirpath) / filename).stat()
                except FileNotFoundError:
                    continue  # finished or removed since the walk
                meta = {"upload": filename}
                found.append(ObjectInfo(key=key, size=info.st_size, modified=_mtime(info), metadata=meta))
        return iter(sorted(found, key=lambda item: (item.modified, item.key)))

    def abort_incomplete_upload(self, upload: ObjectInfo) -> None:
        """Remove the temp file of an unfinished write (from :meth:`list_incomplete_uploads`); a missing
        one is fine. Raises ConfigurationError for a name that is not one of this store's temp files."""
        name = upload.metadata.get("upload", "")
        if _temp_target(name) is None or "/" in name:
            raise ConfigurationError(
                f"{name!r} is not a temp file of this store", system=SYSTEM, operation="abort upload"
            )
        path = self._path(upload.key).with_name(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(exc, "abort upload", upload.key) from None
        self._prune(path.parent)

    # -- internals -------------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_key_parts(key))

    def _write_temp(self, key: str, path: Path, write: Callable[[IO[bytes]], None]) -> Path:
        """Create a temp file next to ``path``, fill it with ``write``, fsync it; remove it on any failure."""
        for attempt in range(3):
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                if attempt == 2:
                    raise TransientError(
                        "the object's folder kept vanishing (concurrent deletes)",
                        system=SYSTEM,
                        operation="put",
                    ) from None
                continue  # a concurrent delete pruned the folder between mkdir and open
            except OSError as exc:
                raise _translate(exc, "put", key) from None
            break
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _finish_write(self, key: str, path: Path, etag: str, metadata: dict[str, str]) -> ObjectInfo:
        try:
            info = path.stat()
            document = {"etag": etag, "metadata": metadata, "inode": info.st_ino, "size": info.st_size}
            sidecar = _sidecar(path)
            tmp = sidecar.with_name(f"{sidecar.name}.{secrets.token_hex(8)}.tmp")
            try:
                tmp.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
                os.replace(tmp, sidecar)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(exc, "put", key) from None
        return ObjectInfo(key=key, size=info.st_size, modified=_mtime(info), etag=etag, metadata=metadata)

    def _info(self, key: str, path: Path, info: os.stat_result) -> ObjectInfo:
        etag: str | None = None
        metadata: dict[str, str] = {}
        try:
            document = json.loads(_sidecar(path).read_text(encoding="utf-8"))
            if document.get("inode") == info.st_ino and document.get("size") == info.st_size:
                etag = document.get("etag")
                metadata = dict(document.get("metadata") or {})
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # no sidecar, or one that describes another version: report no metadata
        return ObjectInfo(key=key, size=info.st_size, modified=_mtime(info), etag=etag, metadata=metadata)

    def _prune(self, folder: Path) -> None:
        root = self.root.resolve()
        current = folder
        while current.resolve() != root:
            try:
                current.rmdir()
            except OSError:
                return  # not empty (or already gone): stop
            current = current.parent


def _key_parts(key: str) -> list[str]:
    """Split and validate a key. Raises ConfigurationError that says what is wrong and what is allowed."""
    if not isinstance(key, str) or not key:
        raise ConfigurationError(
            "object key is empty; keys are relative '/'-separated paths like "
            "'backups/prod/2024-01-01.tar.zst'",
            system=SYSTEM,
            operation="key",
        )
    problem: str | None = None
    if key.startswith("/"):
        problem = "is absolute (starts with '/')"
    elif "\\" in key or "\0" in key:
        problem = "contains a backslash or NUL byte"
    else:
        for part in key.split("/"):
            if part == "":
                problem = "has an empty segment ('//' or a trailing '/')"
            elif part in (".", ".."):
                problem = f"has a {part!r} segment"
            elif part.startswith("."):
                problem = f"has a segment starting with '.' ({part!r}); dot-names are reserved for the store"
            if problem:
                break
    if problem:
        raise ConfigurationError(
            f"invalid object key {key!r}: it {problem}; keys are relative '/'-separated paths like "
            "'backups/prod/2024-01-01.tar.zst'",
            system=SYSTEM,
            operation="key",
        )
    return key.split("/")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if not metadata:
        return {}
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ConfigurationError(
                f"metadata must map non-empty strings to strings (bad entry {name!r})",
                system=SYSTEM,
                operation="put",
            )
        checked[name] = value
    return checked


_TEMP_NAME = re.compile(r"^\.(?P<name>[^/]+)\.[0-9a-f]{16}\.tmp$")


def _temp_target(filename: str) -> str | None:
    """The object name a temp file ``.<name>.<16 hex>.tmp`` was written for; None for any other name
    (sidecars and their own temp files included)."""
    match = _TEMP_NAME.match(filename)
    if match is None:
        return None
    name = match.group("name")
    if name.startswith(".") or name.endswith(_SIDECAR_SUFFIX):
        return None
    return name


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}{_SIDECAR_SUFFIX}")


def _read_chunks(handle: IO[bytes], chunk_size: int, key: str) -> Iterator[bytes]:
    with handle:
        while True:
            try:
                chunk = handle.read(chunk_size)
            except OSError as exc:
                raise _translate(exc, "get_stream", key) from None
            if not chunk:
                return
            yield chunk


def _mtime(info: os.stat_result) -> datetime:
    return datetime.fromtimestamp(info.st_mtime, tz=UTC)


def _translate(exc: OSError, operation: str, key: str) -> EnvstewardError:
    """Map an OSError from the filesystem to an envsteward error (the one place that does)."""
    kwargs: dict[str, Any] = {"system": SYSTEM, "operation": f"{operation} {key}"}
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"no object {key}", **kwargs)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"{reason} (check the permissions of the store folder)", **kwargs)
    if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
        return ConflictError(
            f"{key} collides with another object: a key cannot be both an object and a folder of objects",
            **kwargs,
        )
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY):
        return TransientError(reason, **kwargs)
    return PermanentError(reason, **kwargs)
