"""Key files: a key kept as one line of text in a file only its owner can read.

Used for the embedded default's local key-encryption key and for the fingerprint HMAC key. A missing key
file is created with mode 0600 (in a folder created with mode 0700), written to a temporary name, fsynced
and published with ``os.link``, which refuses an existing name: when two processes create it at the same
time, both end up using the one that won. A key file that group or others can read is refused, never
used. Errors name the file and what to do, never its content.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from envsteward._fsync import fsync_dir
from envsteward.errors import ConfigurationError

_MAX_KEY_FILE_BYTES = 64 * 1024


def read_or_create_key_file(
    path: Path, new_key_text: Callable[[], str], *, what: str = "key file", system: str | None = None
) -> str:
    """The text of the key file at ``path``; when it does not exist, create it holding ``new_key_text()``.

    ``what`` names the file in messages (``fingerprint key file``). Reads and writes local files only.
    Raises ConfigurationError when the file is readable by group or others, is not ASCII text, or cannot
    be read or created.
    """
    text = _read(path, what, system)
    if text is not None:
        return text
    _create(path, new_key_text(), what, system)
    text = _read(path, what, system)
    if text is None:
        raise ConfigurationError(
            f"{what} {path} vanished while it was being created; run again",
            system=system,
            operation="create key",
        )
    return text


def _read(path: Path, what: str, system: str | None) -> str | None:
    """The file's text, or None when it does not exist. Checks the mode of the file actually opened."""

    def unreadable(reason: str) -> ConfigurationError:
        return ConfigurationError(f"cannot read {what} {path}: {reason}", system=system, operation="load key")

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise unreadable(exc.strerror or type(exc).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise unreadable("not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"{what} {path} is readable by group or others (mode {mode:04o}); run: chmod 600 {path}",
                system=system,
                operation="load key",
            )
        data = os.read(fd, _MAX_KEY_FILE_BYTES)
    except OSError as exc:
        raise unreadable(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise unreadable("not ASCII text") from None


def _create(path: Path, text: str, what: str, system: str | None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(text.encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create {what} {path}: {exc.strerror or type(exc).__name__}",
            system=system,
            operation="create key",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)  # the only copy of a key must survive a crash
