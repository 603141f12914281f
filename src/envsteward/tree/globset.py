"""Matching many path globs at once, incrementally along a walk (the drift engine's hot path)."""

from __future__ import annotations

from typing import Any

from envsteward.tree.globs import ANY_ITEM, ANY_KEY, DEEP, INDEX, KEY, KEY_GLOB, KEYED, Glob, GlobError
from envsteward.tree.paths import Keyed, Segment

States = frozenset[int]
"""A set of NFA states; a state is ``glob_index << 8 | token_position``."""


class _StepTable:
    """How one state set moves on: what any mapping key / any list item leads to, plus the extra states a
    literal key, index or keyed item adds. Built once per state set, so a step is a few dict lookups."""

    __slots__ = ("any_item", "any_key", "index", "key_globs", "keyed", "keyed_any", "literal")

    def __init__(self) -> None:
        self.any_key: States = frozenset()
        self.any_item: States = frozenset()
        self.literal: dict[str, States] = {}
        self.index: dict[int, States] = {}
        self.key_globs: list[tuple[Any, States]] = []
        self.keyed: dict[tuple[str, type, Any], States] = {}
        self.keyed_any: dict[str, States] = {}


class GlobSet:
    """All globs of one compare, matched incrementally: the walk keeps the state set of each node and steps
    it by one segment per child, so matching costs a few dict lookups per visited node, never a re-match of
    the whole path. Each distinct state set gets a step table once (:class:`_StepTable`); with anchored
    globs most nodes deep in a document have the empty set and cost nothing.
    """

    def __init__(self, globs: list[Glob]) -> None:
        if any(len(g.tokens) > 250 for g in globs):
            raise GlobError("a path glob may have at most 250 segments")
        self.globs = globs
        self._tokens = [g.tokens for g in globs]
        self._tables: dict[States, _StepTable] = {}
        self.start: States = self._closure({i << 8 for i in range(len(globs))})
        self._accepting: dict[States, tuple[int, ...]] = {}

    def _closure(self, states: set[int]) -> States:
        todo = list(states)
        out = set(states)
        while todo:
            state = todo.pop()
            tokens = self._tokens[state >> 8]
            pos = state & 0xFF
            if pos < len(tokens) and tokens[pos][0] == DEEP:
                nxt = state + 1
                if nxt not in out:
                    out.add(nxt)
                    todo.append(nxt)
        return frozenset(out)

    def _table(self, states: States) -> _StepTable:
        table = _StepTable()
        stay: set[int] = set()
        any_key: set[int] = set()
        any_item: set[int] = set()
        literal: dict[Any, set[int]] = {}
        index: dict[Any, set[int]] = {}
        keyed: dict[Any, set[int]] = {}
        keyed_any: dict[Any, set[int]] = {}
        globs: list[tuple[Any, int]] = []
        for state in states:
            tokens = self._tokens[state >> 8]
            pos = state & 0xFF
            if pos >= len(tokens):
                continue
            kind, arg, extra = tokens[pos]
            nxt = state + 1
            if kind == DEEP:
                stay.add(state)
            elif kind == ANY_KEY:
                any_key.add(nxt)
            elif kind == ANY_ITEM:
                any_item.add(nxt)
            elif kind == KEY:
                literal.setdefault(arg, set()).add(nxt)
            elif kind == KEY_GLOB:
                globs.append((arg, nxt))
            elif kind == INDEX:
                index.setdefault(arg, set()).add(nxt)
            elif kind == KEYED:
                keyed.setdefault((arg, type(extra), extra), set()).add(nxt)
            else:  # KEYED_ANY
                keyed_any.setdefault(arg, set()).add(nxt)
        table.any_key = self._closure(stay | any_key)
        table.any_item = self._closure(stay | any_item)
        table.literal = {k: self._closure(v) for k, v in literal.items()}
        table.index = {k: self._closure(v) for k, v in index.items()}
        table.keyed = {k: self._closure(v) for k, v in keyed.items()}
        table.keyed_any = {k: self._closure(v) for k, v in keyed_any.items()}
        table.key_globs = [(regex, self._closure({nxt})) for regex, nxt in globs]
        self._tables[states] = table
        return table

    def step(self, states: States, segment: Segment) -> States:
        """The state set after consuming ``segment``."""
        if not states:
            return states
        table = self._tables.get(states) or self._table(states)
        kind = type(segment)
        if kind is str:
            result = table.any_key
            extra = table.literal.get(segment)  # type: ignore[arg-type]
            if extra is not None:
                result = result | extra
            for regex, after in table.key_globs:
                if regex.fullmatch(segment) is not None:
                    result = result | after
            return result
        result = table.any_item
        if kind is int:
            extra = table.index.get(segment)  # type: ignore[arg-type]
            return result | extra if extra is not None else result
        assert isinstance(segment, Keyed)
        extra = table.keyed.get((segment.field, type(segment.value), segment.value))
        if extra is not None:
            result = result | extra
        extra = table.keyed_any.get(segment.field)
        return result | extra if extra is not None else result

    def accepting(self, states: States) -> tuple[int, ...]:
        """Indexes of the globs that match the path whose state set is ``states``, in declaration order."""
        if not states:
            return ()
        cached = self._accepting.get(states)
        if cached is None:
            cached = tuple(
                sorted({s >> 8 for s in states if (s & 0xFF) == len(self._tokens[s >> 8])}),
            )
            self._accepting[states] = cached
        return cached
