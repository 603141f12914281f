"""Load a YAML or JSON document as plain data, with the ``file:line`` of every value.

Used by ``envsteward drift diff`` and anything else that compares documents read from files. Every file is
read under the same budget as catalog files (:class:`envsteward.yamlbudget.YamlLimits`: size, nodes after
alias expansion, nesting depth), since a document on the command line is as untrusted as a catalog. YAML is
read with ruamel.yaml (round-trip loader, for line numbers, duplicate keys rejected) and turned into plain
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
from envsteward.yamlbudget import YamlBudgetError, YamlLimits, budget_yaml, describe_limit

_JSON_SUFFIXES = frozenset({".json"})


class DocumentError(ConfigurationError):
    """A document that cannot be read or parsed; the message names the file and, when known, the line."""


def load_document(
    path: Path, *, label: str | None = None, limits: YamlLimits | None = None
) -> tuple[Any, dict[str, str]]:
    """Read ``path`` (``.json`` as JSON, anything else as YAML, which also accepts JSON) and return the data
    and its origins ``{path: "label:line"}`` (``label`` defaults to the file name as given).

    ``limits``: the file's budget (default: :meth:`YamlLimits.from_environment`). Raises DocumentError naming
    the file and the line of a syntax error or of the place a limit was crossed, or why it cannot be read.
    Reads the local file system only.
    """
    label = label or str(path)
    try:
        limits = limits or YamlLimits.from_environment()
    except ValueError as exc:
        raise DocumentError(str(exc)) from None
    try:
        too_large = limits.file_too_large(path.stat().st_size)
        if too_large is not None:
            raise DocumentError(f"{path}: {too_large}")
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
        return _load_json(text, path, label, limits)
    return _load_yaml(text, path, label, limits)


def _load_json(text: str, path: Path, label: str, limits: YamlLimits) -> tuple[Any, dict[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        # json's C scanner recurses per nesting level; the budget below would name the line, but this
        # parse already failed before it could run
        raise DocumentError(
            f"{path}: invalid JSON: nested too deeply ({describe_limit('max_depth', limits.max_depth)})"
        ) from None
    origins: dict[str, str] = {}
    _json_lines(text, path, origins, label, limits)
    return data, origins


def _json_lines(text: str, path: Path, origins: dict[str, str], label: str, limits: YamlLimits) -> None:
    """JSON has no line info in the stdlib parser; re-read it with ruamel (JSON is YAML) for the lines, and
    so the budget (nodes, depth) applies to JSON as it does to YAML. Raises DocumentError past the budget."""
    from ruamel.yaml.error import YAMLError

    try:
        loaded = budget_yaml(limits).load(text)
    except YamlBudgetError as exc:
        raise DocumentError(f"{path}: line {exc.line}: {exc.message}") from None
    except YAMLError:  # a JSON quirk YAML rejects: lines are a nicety, the data is loaded
        return
    _plain(loaded, "", origins, label)


def _load_yaml(text: str, path: Path, label: str, limits: YamlLimits) -> tuple[Any, dict[str, str]]:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        loaded = budget_yaml(limits).load(text)
    except YamlBudgetError as exc:
        raise DocumentError(f"{path}: line {exc.line}: {exc.message}") from None
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
