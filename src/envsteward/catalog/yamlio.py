"""Read catalog YAML into plain Python data while remembering the line of every node.

ruamel.yaml's round-trip loader keeps positions (``.lc.key(k)``, ``.lc.item(i)``); we convert its tree into
plain ``dict``/``list``/scalars (so the rest of the code never sees ruamel types) and keep a side index
``path tuple -> 1-based line``. Duplicate keys, non-string keys and unsupported YAML types are reported as
problems with their line.

Every catalog file is read under a budget (:class:`YamlLimits`: file size, nodes after alias expansion,
nesting depth), because every flow loads the catalog: a hostile or broken file (an alias bomb, 10,000
nested lists, a 50 MB file) is refused with one problem naming the limit and the line, before it can take
the process's memory, time or stack.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from envsteward.catalog.problems import ProblemSink
from envsteward.tree import PathTuple, format_path


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


@dataclass(frozen=True)
class YamlLimits:
    """The budget of one catalog file. Generous for any real catalog; each can be raised through the
    environment variable named in :data:`LIMIT_VARIABLES` (and in the problem that reports it)."""

    max_file_bytes: int = 8 * 1024 * 1024
    max_nodes: int = 500_000
    """Nodes (mappings, lists, keys and scalars) after every alias is expanded."""
    max_depth: int = 100
    """Nesting levels of mappings and lists."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> YamlLimits:
        """Defaults overridden by ``ENVSTEWARD_CATALOG_MAX_*`` variables. Raises ValueError naming a variable
        that is not a positive integer."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name, variable in LIMIT_VARIABLES.items():
            text = env.get(variable)
            if text is None or not text.strip():
                continue
            try:
                value = int(text.strip().replace("_", ""))
            except ValueError:
                value = 0
            if value <= 0:
                raise ValueError(f"{variable} must be a positive integer, not {text!r}")
            values[name] = value
        return cls(**values)


LIMIT_VARIABLES = {
    "max_file_bytes": "ENVSTEWARD_CATALOG_MAX_FILE_BYTES",
    "max_nodes": "ENVSTEWARD_CATALOG_MAX_NODES",
    "max_depth": "ENVSTEWARD_CATALOG_MAX_DEPTH",
}


def _limit(name: str, value: int) -> str:
    return f"{name} {value:,}; raise it with {LIMIT_VARIABLES[name]}"


class _BudgetError(YAMLError):
    """A file exceeds its :class:`YamlLimits` (raised while composing, before any data is built)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BudgetComposer(Composer):
    """ruamel's composer with a budget: counts every node as aliases would expand it, and the nesting
    depth, refusing past :class:`YamlLimits` at the line of the alias or node that crosses the limit.

    An alias costs the expanded size of the node it names (memoised per node, so even a billion-laughs
    file is measured in time proportional to its text); an alias to a mapping or list that is still
    being composed (a recursive alias) is refused, since it would expand without end.
    """

    limits: YamlLimits = YamlLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nodes = 0
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        line = int(event.start_mark.line) + 1
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if isinstance(target, SequenceNode | MappingNode) and target.end_mark is None:
                    raise _BudgetError(line, f"alias *{event.anchor} refers to a node that contains it")
                size, depth = self._measure(target)
                self._count(size, line, f"alias *{event.anchor} expands")
                self._check_depth(self.depth + depth, line)
            return super().compose_node(parent, index)
        self._count(1, line, "the document grows")
        self._check_depth(self.depth + 1, line)
        return super().compose_node(parent, index)

    def _count(self, size: int, line: int, what: str) -> None:
        self._nodes += size
        if self._nodes > self.limits.max_nodes:
            raise _BudgetError(
                line,
                f"{what} past {self.limits.max_nodes:,} nodes after alias expansion "
                f"({_limit('max_nodes', self.limits.max_nodes)})",
            )

    def _check_depth(self, depth: int, line: int) -> None:
        if depth > self.limits.max_depth:
            raise _BudgetError(
                line,
                f"nesting deeper than {self.limits.max_depth} levels "
                f"({_limit('max_depth', self.limits.max_depth)})",
            )

    def _measure(self, node: Node) -> tuple[int, int]:
        """(nodes, nesting levels) of ``node`` with every alias inside it expanded."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size, depth = 1, 1
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            child_size, child_depth = self._measure(child)
            size += child_size
            depth = max(depth, child_depth + 1)
        self._sizes[id(node)] = (size, depth)
        return size, depth


def _composer_for(limits: YamlLimits) -> type[_BudgetComposer]:
    class _Limited(_BudgetComposer):
        pass

    _Limited.limits = limits
    return _Limited


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
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            sink.add(
                display,
                None,
                None,
                f"the file is {size:,} bytes, above the limit "
                f"({_limit('max_file_bytes', limits.max_file_bytes)})",
            )
            return None
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        sink.add(display, None, None, "file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        sink.add(display, None, None, f"cannot read the file: {reason}")
        return None
    yaml = YAML(typ="rt")
    yaml.Composer = _composer_for(limits)
    try:
        raw = yaml.load(text)
    except _BudgetError as exc:
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
