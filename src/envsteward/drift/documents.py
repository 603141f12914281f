"""Load a YAML or JSON document as plain data, with the ``file:line`` of every value.

Used by ``envsteward drift diff`` and anything else that compares documents read from files. YAML is read
with ruamel.yaml (round-trip loader, for line numbers, duplicate keys rejected) and turned into plain
``dict``/``list``/scalars: YAML timestamps become ISO strings (JSON has none), ruamel's scalar subclasses
their base types. Origins are keyed by positional paths (``services[0].port``) as
:func:`envsteward.drift.compare` expects them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from envsteward.errors import ConfigurationError
from envsteward.tree import join, key_text

_JSON_SUFFIXES = frozenset({".json"})


class DocumentError(ConfigurationError):
    """A document that cannot be read or parsed; the message names the file and, when known, the line."""


def load_document(path: Path, *, label: str | None = None) -> tuple[Any, dict[str, str]]:
    """Read ``path`` (``.json`` as JSON, anything else as YAML, which also accepts JSON) and return the data
    and its origins ``{path: "label:line"}`` (``label`` defaults to the file name as given).

    Raises DocumentError naming the file and the line of a syntax error, or why it cannot be read.
    """
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DocumentError(f"{path}: is a directory, expected a YAML or JSON file") from None
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix.lower() in _JSON_SUFFIXES:
        return _load_json(text, path, label)
    return _load_yaml(text, path, label)


def _load_json(text: str, path: Path, label: str) -> tuple[Any, dict[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    origins: dict[str, str] = {}
    _json_lines(text, data, origins, label)
    return data, origins


def _json_lines(text: str, data: Any, origins: dict[str, str], label: str) -> None:
    """JSON has no line info in the stdlib parser; re-read it with ruamel (JSON is YAML) just for lines."""
    try:
        loaded = _yaml().load(text)
    except Exception:  # noqa: BLE001 - a JSON quirk YAML rejects: lines are a nicety, the data is loaded
        return
    _plain(loaded, "", origins, label)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _load_yaml(text: str, path: Path, label: str) -> tuple[Any, dict[str, str]]:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        loaded = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        # ruamel quotes the duplicate's value ("... with value "hunter2""): never echo document values
        problem = re.sub(r" with value .*", "", problem, flags=re.DOTALL)
        if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            problem += f" (the construct started at line {exc.context_mark.line + 1})"
        raise DocumentError(f"{path}: {where}invalid YAML: {problem}") from None
    except YAMLError as exc:
        raise DocumentError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    origins: dict[str, str] = {}
    return _plain(loaded, "", origins, label), origins


def _plain(value: Any, path: str, origins: dict[str, str], label: str) -> Any:
    """Plain data from ruamel's round-trip types, recording ``label:line`` of every key and item."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        lines = getattr(getattr(value, "lc", None), "data", {})
        for key, item in value.items():
            plain_key = _plain_scalar(key) if not isinstance(key, tuple | list) else str(key)
            child = join(path, key_text(plain_key))
            if key in lines:
                origins[child] = f"{label}:{lines[key][0] + 1}"
            out[plain_key] = _plain(item, child, origins, label)
        return out
    if isinstance(value, list | tuple):
        items: list[Any] = []
        lines = getattr(getattr(value, "lc", None), "data", {})
        for index, item in enumerate(value):
            child = join(path, index)
            if index in lines:
                origins[child] = f"{label}:{lines[index][0] + 1}"
            items.append(_plain(item, child, origins, label))
        return items
    return _plain_scalar(value)


def _plain_scalar(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    tagged = getattr(value, "value", None)  # ruamel TaggedScalar (custom tags): keep the text
    if isinstance(tagged, str):
        return tagged
    return str(value)
