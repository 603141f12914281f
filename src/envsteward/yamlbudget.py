"""A budget for reading YAML from files people hand us: file size, nodes after alias expansion, nesting depth.

Used by the catalog loader (every flow loads the catalog) and by ``envsteward drift diff`` (documents given on
the command line). A hostile or broken file (an alias bomb, 10,000 nested lists, a 50 MB file) is refused with
one message naming the limit and the line, before it can take the process's memory, time or stack. The limits
are read from ``ENVSTEWARD_CATALOG_MAX_*`` variables, so one setting covers every YAML input.

Reads nothing itself: callers pass text and use :func:`budget_yaml` to get a ruamel loader under the budget.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode


@dataclass(frozen=True)
class YamlLimits:
    """The budget of one YAML file. Generous for any real catalog; each can be raised through the
    environment variable named in :data:`LIMIT_VARIABLES` (and in the message that reports it)."""

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

    def file_too_large(self, size: int) -> str | None:
        """The message for a file of ``size`` bytes past :attr:`max_file_bytes`, else None."""
        if size <= self.max_file_bytes:
            return None
        limit = describe_limit("max_file_bytes", self.max_file_bytes)
        return f"the file is {size:,} bytes, above the limit ({limit})"


LIMIT_VARIABLES = {
    "max_file_bytes": "ENVSTEWARD_CATALOG_MAX_FILE_BYTES",
    "max_nodes": "ENVSTEWARD_CATALOG_MAX_NODES",
    "max_depth": "ENVSTEWARD_CATALOG_MAX_DEPTH",
}


def describe_limit(name: str, value: int) -> str:
    """``"max_nodes 500,000; raise it with ENVSTEWARD_CATALOG_MAX_NODES"``."""
    return f"{name} {value:,}; raise it with {LIMIT_VARIABLES[name]}"


class YamlBudgetError(YAMLError):
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
                    raise YamlBudgetError(line, f"alias *{event.anchor} refers to a node that contains it")
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
            raise YamlBudgetError(
                line,
                f"{what} past {self.limits.max_nodes:,} nodes after alias expansion "
                f"({describe_limit('max_nodes', self.limits.max_nodes)})",
            )

    def _check_depth(self, depth: int, line: int) -> None:
        if depth > self.limits.max_depth:
            raise YamlBudgetError(
                line,
                f"nesting deeper than {self.limits.max_depth} levels "
                f"({describe_limit('max_depth', self.limits.max_depth)})",
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


def budget_yaml(limits: YamlLimits) -> YAML:
    """A round-trip ruamel loader (line numbers kept, duplicate keys refused) whose ``load`` raises
    :class:`YamlBudgetError` past ``limits``."""

    class _Limited(_BudgetComposer):
        pass

    _Limited.limits = limits
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Composer = _Limited
    return yaml
