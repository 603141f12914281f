"""A ConfigSource over one local YAML or JSON file (``.yaml``/``.yml`` or ``.json``).

``read`` returns the file's top-level mapping as plain Python data (YAML timestamps become ISO-8601
strings, ``!!binary`` becomes base64 text, mapping keys become strings). ``write`` changes one leaf and
rewrites the file atomically (temp file in the same folder, fsync, ``os.replace``, original permissions
kept) in the same format: YAML is edited round-trip with ruamel.yaml, so comments, key order and quoting
survive; JSON is re-serialised with two-space indentation in its original key order.

Writes are read-modify-write: run one writer per file at a time (envsteward's flows hold a concurrency
limit per environment for exactly this).
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from envsteward.errors import (
    ConfigurationError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import JSONValue

SYSTEM = "file"
FileFormat = Literal["yaml", "json"]
_SUFFIXES: dict[str, FileFormat] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class FileSource:
    """ConfigSource over a YAML or JSON file."""

    def __init__(
        self, name: str, path: Path, writable: bool = False, file_format: FileFormat | None = None
    ) -> None:
        """``file_format`` defaults to the one the suffix names.

        Raises ConfigurationError for an unknown suffix.
        """
        self.name = name
        self.path = Path(path)
        self.writable = writable
        detected = file_format or _SUFFIXES.get(self.path.suffix.lower())
        if detected is None:
            raise ConfigurationError(
                f"source {name!r}: cannot tell the format of {self.path} (use a .yaml, .yml or .json file)",
                system=SYSTEM,
                operation="open",
            )
        self.file_format: FileFormat = detected

    def __repr__(self) -> str:
        return f"FileSource(name={self.name!r}, path={str(self.path)!r}, writable={self.writable!r})"

    def read(self) -> Mapping[str, JSONValue]:
        """The file's top-level mapping (an empty YAML file is an empty mapping). Reads the local file.

        Raises NotFoundError when the file does not exist, PermanentError naming the file and line when it
        is malformed or its top level is not a mapping, PermissionDeniedError when it cannot be read.
        """
        document = self._load("read")
        return _plain(document)  # type: ignore[no-any-return]

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """Set the leaf at ``key_path`` (creating intermediate mappings) and rewrite the file atomically.

        Raises PermanentError when the source is read-only, the key path is empty or runs through a
        non-mapping value, or the file is malformed; NotFoundError when the file does not exist;
        PermissionDeniedError when it cannot be written.
        """
        operation = f"write {'/'.join(key_path)}"
        if not self.writable:
            raise PermanentError(
                f"source {self.name!r} ({self.path}) is read-only; "
                "set writable: true in the catalog to allow heals",
                system=SYSTEM,
                operation=operation,
            )
        if not key_path:
            raise PermanentError("key path is empty", system=SYSTEM, operation=operation)
        document = self._load(operation)
        node: Any = document
        for depth, part in enumerate(key_path[:-1]):
            child = node.get(part)
            if child is None:
                child = {} if self.file_format == "json" else _yaml_map()
                node[part] = child
            elif not isinstance(child, dict):
                raise PermanentError(
                    f"{self.path}: {'/'.join(key_path[: depth + 1])} holds a value, not a mapping",
                    system=SYSTEM,
                    operation=operation,
                )
            node = child
        node[key_path[-1]] = value
        self._save(document, operation)

    # -- internals -------------------------------------------------------------------------------------------

    def _load(self, operation: str) -> Any:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _translate(exc, operation, self.path) from None
        except UnicodeDecodeError:
            raise PermanentError(
                f"{self.path} is not UTF-8 text", system=SYSTEM, operation=operation
            ) from None
        document = (
            _parse_json(text, self.path, operation)
            if self.file_format == "json"
            else _parse_yaml(text, self.path, operation)
        )
        if document is None and self.file_format == "yaml":
            document = _yaml_map()
        if not isinstance(document, dict):
            raise PermanentError(
                f"{self.path}, line 1: the top level must be a mapping (key: value), "
                f"not a {type(document).__name__}",
                system=SYSTEM,
                operation=operation,
            )
        return document

    def _save(self, document: Any, operation: str) -> None:
        if self.file_format == "json":
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            buffer = io.StringIO()
            _yaml().dump(document, buffer)
            text = buffer.getvalue()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        try:
            mode = self.path.stat().st_mode & 0o7777
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise _translate(exc, operation, self.path) from None
        finally:
            tmp.unlink(missing_ok=True)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def _yaml_map() -> Any:
    from ruamel.yaml.comments import CommentedMap

    return CommentedMap()


def _parse_yaml(text: str, path: Path, operation: str) -> Any:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        problem = exc.problem or exc.context or "invalid YAML"
        raise PermanentError(
            f"{path}, {where}: malformed YAML ({problem}); fix the file", system=SYSTEM, operation=operation
        ) from None
    except YAMLError as exc:
        raise PermanentError(
            f"{path}: malformed YAML ({type(exc).__name__}); fix the file", system=SYSTEM, operation=operation
        ) from None


def _parse_json(text: str, path: Path, operation: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"{path}, line {exc.lineno}, column {exc.colno}: malformed JSON ({exc.msg}); fix the file",
            system=SYSTEM,
            operation=operation,
        ) from None


def _plain(value: Any) -> JSONValue:
    """ruamel's round-trip types as plain dict/list/str/int/float/bool/None (``!!binary`` as base64)."""
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, ScalarBoolean):  # an anchored true/false: an int subclass in ruamel
        return bool(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _translate(exc: OSError, operation: str, path: Path) -> EnvstewardError:
    """Map an OSError on the source file to an envsteward error (the one place that does)."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return NotFoundError(f"{path} does not exist", system=SYSTEM, operation=operation)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"{path}: permission denied", system=SYSTEM, operation=operation)
    if isinstance(exc, IsADirectoryError):
        return PermanentError(f"{path} is a folder, not a file", system=SYSTEM, operation=operation)
    if isinstance(exc, BlockingIOError | InterruptedError):
        return TransientError(f"{path}: {exc.strerror}", system=SYSTEM, operation=operation)
    return PermanentError(f"{path}: {exc.strerror or type(exc).__name__}", system=SYSTEM, operation=operation)
