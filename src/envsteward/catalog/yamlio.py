"""Read catalog YAML into plain Python data while remembering the line of every node.

ruamel.yaml's round-trip loader keeps positions (``.lc.key(k)``, ``.lc.item(i)``); we convert its tree into
plain ``dict``/``list``/scalars (so the rest of the code never sees ruamel types) and keep a side index
``path tuple -> 1-based line``. Duplicate keys, non-string keys and unsupported YAML types are reported as
problems with their line.

Every catalog file is read under a budget (:class:`envsteward.yamlbudget.YamlLimits`: file size, nodes
after alias expansion, nesting depth), because every flow loads the catalog.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from envsteward.catalog.problems import ProblemSink
from envsteward.tree import PathTuple, format_path
from envsteward.yamlbudget import LIMIT_VARIABLES, YamlBudgetError, YamlLimits, budget_yaml

__all__ = ["LIMIT_VARIABLES", "YamlFile", "YamlLimits", "read_yaml"]


@dataclass
class YamlFile:
    """One parsed YAML file: plain ``data`` plus the line of every node."""

    rel: str
    """Path inside the catalog root (posix), used in origins: ``config/production.yaml``."""
    display: str
    """Name used in problems: ``<catalog folder name>/<rel>``."""
    data: Any
    lines: dict[PathTuple, int] = field(default_factory=dict)

    def line_of(self, path: PathTuple) -> int:
        """The line of the node at ``path``, else of its nearest existing ancestor (1 for the root)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def origin(self, path: PathTuple) -> str:
        """``"<rel>:<line>"`` for the node at ``path``."""
        return f"{self.rel}:{self.line_of(path)}"


_DUPLICATE = re.compile(r'found duplicate key "(?P<key>.*?)" with value')


def _mark_line(exc: MarkedYAMLError, text: str) -> int | None:
    """The line where the problem starts, and one that exists.

    ruamel marks the *problem* (where it noticed) and the *context* (the construct it was reading). When the
    problem is the end of the file (an unclosed ``[``, ``{`` or quote), the line that is wrong is where the
    construct was opened, so the context wins; otherwise the problem's own line does."""
    problem, context = exc.problem_mark, exc.context_mark
    mark = problem or context
    if problem is not None and context is not None and not text[int(problem.index) :].strip():
        mark = context
    if mark is None:
        return None
    last_line = max(1, len(text.splitlines()))
    return min(int(mark.line) + 1, last_line)


def _describe_yaml_error(exc: YAMLError) -> str:
    if isinstance(exc, MarkedYAMLError):
        parts = [part for part in (exc.context, exc.problem) if part]
        text = ": ".join(str(part) for part in parts) or type(exc).__name__
        if duplicate := _DUPLICATE.search(text):
            # ruamel's text also quotes both values; a value may be secret, so only the key is named
            return f"duplicate key {duplicate['key']!r}: each key may appear only once in a mapping"
        return f"YAML syntax error: {text}"
    return f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def read_yaml(
    path: Path,
    rel: str,
    display: str,
    sink: ProblemSink,
    *,
    config_tree: bool,
    limits: YamlLimits | None = None,
) -> YamlFile | None:
    """Parse ``path``; report problems to ``sink`` and return None when the file cannot be used at all.

    ``config_tree``: the file is a desired-configuration layer: dates/timestamps become ISO strings
    (configuration values are JSON values). ``limits``: the file's budget (default: :class:`YamlLimits`
    defaults); a file past it is one problem, naming the limit and the line where it was crossed.
    Reads the local file system only.
    """
    limits = limits or YamlLimits()
    try:
        too_large = limits.file_too_large(path.stat().st_size)
        if too_large is not None:
            sink.add(display, None, None, too_large)
            return None
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        sink.add(display, None, None, "file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        sink.add(display, None, None, f"cannot read the file: {reason}")
        return None
    try:
        raw = budget_yaml(limits).load(text)
    except YamlBudgetError as exc:
        sink.add(display, exc.line, None, exc.message)
        return None
    except YAMLError as exc:
        line = _mark_line(exc, text) if isinstance(exc, MarkedYAMLError) else None
        sink.add(display, line, None, _describe_yaml_error(exc))
        return None
    result = YamlFile(rel=rel, display=display, data=None, lines={(): 1})
    before = len(sink)
    result.data = _plain(raw, (), result, sink, config_tree=config_tree, line=1)
    if len(sink) > before and result.data is None:
        return None
    return result


def _plain(
    node: Any, path: PathTuple, out: YamlFile, sink: ProblemSink, *, config_tree: bool, line: int
) -> Any:
    if isinstance(node, CommentedMap):
        mapping: dict[str, Any] = {}
        for key, value in node.items():
            key_line = _key_line(node, key, line)
            if not isinstance(key, str):
                sink.add(
                    out.display,
                    key_line,
                    format_path(path) or None,
                    f"key {key!r} is not a string ({type(key).__name__}): quote it",
                )
                continue
            child = (*path, key)
            out.lines[child] = key_line
            mapping[key] = _plain(value, child, out, sink, config_tree=config_tree, line=key_line)
        return mapping
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            item_line = _item_line(node, index, line)
            child = (*path, index)
            out.lines[child] = item_line
            items.append(_plain(value, child, out, sink, config_tree=config_tree, line=item_line))
        return items
    return _scalar(node, path, out, sink, config_tree=config_tree, line=line)


def _key_line(node: CommentedMap, key: Any, default: int) -> int:
    """1-based line of ``key``; keys pulled in by a YAML merge (``<<: *anchor``) have no position of their
    own, so they get the line of the mapping that merges them."""
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError):
        return default


def _item_line(node: CommentedSeq, index: int, default: int) -> int:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (KeyError, TypeError):
        return default


def _scalar(
    node: Any, path: PathTuple, out: YamlFile, sink: ProblemSink, *, config_tree: bool, line: int
) -> Any:
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime):
        plain = dt.datetime(
            node.year,
            node.month,
            node.day,
            node.hour,
            node.minute,
            node.second,
            node.microsecond,
            node.tzinfo,
        )
        return plain.isoformat() if config_tree else plain
    if isinstance(node, dt.date):
        return node.isoformat() if config_tree else dt.date(node.year, node.month, node.day)
    sink.add(
        out.display,
        line,
        format_path(path) or None,
        f"unsupported YAML value of type {type(node).__name__}: "
        "use a string, number, boolean, list or mapping",
    )
    return None
