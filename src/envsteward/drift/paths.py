"""Drift paths and path globs.

Paths
-----
A path names one place in a configuration document, from the root:

* a mapping key is written as is and joined with ``.``: ``database.pool.size``;
* a key that contains ``.``, ``[``, ``]``, ``"``, ``*``, ``?`` or white space, or is empty, is written as a
  JSON string in brackets: ``labels["app.kubernetes.io/name"]``;
* a list position is ``[i]`` (0-based): ``hosts[2]``;
* an item of a list that the rules match *by key* is ``[field=value]``: ``services[name=api].port``.
  The value is written bare when it is a plain word, otherwise as JSON: ``[id=7]``, ``[name="7"]``,
  ``[enabled=true]``;
* the root itself is the empty path ``""``.

Non-string mapping keys (YAML allows ``80: http``) are written as their text (``true``/``false``/``null``
for YAML's booleans and null).

Globs
-----
Rules (severity, ignore, secret paths, list keys, environment-specific keys) select paths with globs in the
same syntax, plus wildcards:

* ``*`` matches exactly one mapping key (``services.*.image``); inside a key, ``*`` and ``?`` work like
  shell wildcards (``env.*_PASSWORD``);
* ``**`` matches any number of segments, including none (``**.password``, ``database.**``);
* ``[*]`` matches any one list item, by position or by key (``services[*].port``);
* ``[3]`` matches position 3, ``[name=api]`` the keyed item, ``[name=*]`` any keyed item.

A glob matches a *whole* path: ``database`` selects the value at ``database`` only, ``database.**``
selects it and everything below it. Secrecy is inherited: every part of a secret value is secret.

Specificity (used when several severity or list-key rules match one path): more literal segments wins,
then more partly-wild keys (``*_PASSWORD``), then fewer ``**``, then fewer ``*``/``[*]``; among equally
specific rules the most severe wins (fail safe).

Raises :class:`GlobError` (a ``ValueError``) for a malformed glob.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import translate
from typing import Any, NamedTuple

_PLAIN_KEY = re.compile(r'[^.\[\]"*?\s]+')
_PLAIN_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:@]*")
_KEYWORDS = frozenset({"true", "false", "null"})


class GlobError(ValueError):
    """A malformed path glob; the message shows where and what is accepted."""


class Keyed(NamedTuple):
    """The path segment of a list item matched by key: ``[field=value]``."""

    field: str
    value: Any


Segment = str | int | Keyed
"""A mapping key (str), a list position (int) or a keyed list item."""


def key_text(key: Any) -> str:
    """The text of a mapping key in a path (non-string YAML keys get their YAML spelling)."""
    if type(key) is str:
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def render_key(key: str) -> str:
    """A mapping key as a path segment, without the leading dot."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def render_value(value: Any) -> str:
    """A keyed-item value as written inside ``[field=value]``."""
    if type(value) is str and _PLAIN_WORD.fullmatch(value) and value not in _KEYWORDS:
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def join(parent: str, segment: Segment) -> str:
    """The path of ``segment`` under the path ``parent``."""
    if type(segment) is str:
        text = render_key(segment)
        if text[0] == "[" or not parent:
            return parent + text
        return parent + "." + text
    if type(segment) is int:
        return f"{parent}[{segment}]"
    assert isinstance(segment, Keyed)
    return f"{parent}[{segment.field}={render_value(segment.value)}]"


def render(segments: tuple[Segment, ...] | list[Segment]) -> str:
    """The path of a sequence of segments."""
    path = ""
    for segment in segments:
        path = join(path, segment)
    return path


# ---------------------------------------------------------------------------------------------------------
# Glob parsing
# ---------------------------------------------------------------------------------------------------------

# Token kinds. A token is a small tuple so matching stays cheap: (kind, arg1, arg2).
KEY = 0  # literal key
KEY_GLOB = 1  # key with * or ? inside (compiled regex)
ANY_KEY = 2  # *
DEEP = 3  # **
INDEX = 4  # [3]
ANY_ITEM = 5  # [*]
KEYED = 6  # [field=value]
KEYED_ANY = 7  # [field=*]

Token = tuple[int, Any, Any]


@dataclass(frozen=True)
class Glob:
    """A parsed glob: its text, tokens and specificity (higher is more specific)."""

    text: str
    tokens: tuple[Token, ...]
    specificity: tuple[int, int, int, int]

    def matches(self, segments: tuple[Segment, ...] | list[Segment]) -> bool:
        """True when the glob matches the whole path given as segments (reference matcher; the engine
        uses the precompiled :class:`GlobSet`)."""
        return _match(self.tokens, 0, list(segments), 0)


def _match(tokens: tuple[Token, ...], ti: int, segments: list[Segment], si: int) -> bool:
    while ti < len(tokens):
        token = tokens[ti]
        if token[0] == DEEP:
            return any(_match(tokens, ti + 1, segments, k) for k in range(si, len(segments) + 1))
        if si >= len(segments) or not token_matches(token, segments[si]):
            return False
        ti += 1
        si += 1
    return si == len(segments)


def token_matches(token: Token, segment: Segment) -> bool:
    """Whether one non-``**`` token matches one path segment."""
    kind = token[0]
    if kind == KEY:
        return type(segment) is str and segment == token[1]
    if kind == ANY_KEY:
        return type(segment) is str
    if kind == KEY_GLOB:
        return type(segment) is str and token[1].fullmatch(segment) is not None
    if kind == ANY_ITEM:
        return type(segment) is int or type(segment) is Keyed
    if kind == INDEX:
        return type(segment) is int and segment == token[1]
    if kind == KEYED:
        return (
            type(segment) is Keyed
            and segment.field == token[1]
            and type(segment.value) is type(token[2])
            and segment.value == token[2]
        )
    if kind == KEYED_ANY:
        return type(segment) is Keyed and segment.field == token[1]
    return False


def _parse_value(text: str, glob: str) -> Any:
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            raise GlobError(f"bad quoted value {text} in glob {glob!r}") from None
        if not isinstance(value, str):
            raise GlobError(f"bad quoted value {text} in glob {glob!r}")
        return value
    if text in _KEYWORDS or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text):
        return json.loads(text)
    return text


def _key_token(text: str) -> Token:
    if text == "*":
        return (ANY_KEY, None, None)
    if text == "**":
        return (DEEP, None, None)
    if "*" in text or "?" in text:
        return (KEY_GLOB, re.compile(translate(text)), text)
    return (KEY, text, None)


def parse_glob(text: str) -> Glob:
    """Parse a path glob (syntax in the module docstring). Raises GlobError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise GlobError("a path glob must be a non-empty string")
    tokens: list[Token] = []
    i, n = 0, len(text)
    expect_segment = True  # at the start or after a dot
    while i < n:
        char = text[i]
        if char == "[":
            end = _bracket_end(text, i)
            inner = text[i + 1 : end]
            tokens.append(_bracket_token(inner, text))
            i = end + 1
            expect_segment = False
        elif char == ".":
            if expect_segment:
                raise GlobError(f"empty segment at position {i} in glob {text!r}")
            i += 1
            expect_segment = True
            if i == n:
                raise GlobError(f"glob {text!r} ends with '.'")
        else:
            if not expect_segment:
                raise GlobError(f"expected '.' or '[' at position {i} in glob {text!r}")
            j = i
            while j < n and text[j] not in ".[":
                j += 1
            word = text[i:j]
            if any(c in word for c in ']"') or any(c.isspace() for c in word):
                raise GlobError(
                    f'segment {word!r} in glob {text!r} needs quoting: write it as ["..."] (JSON string)'
                )
            tokens.append(_key_token(word))
            i = j
            expect_segment = False
    literal = sum(1 for t in tokens if t[0] in (KEY, INDEX, KEYED))
    partial = sum(1 for t in tokens if t[0] in (KEY_GLOB, KEYED_ANY))
    deep = sum(1 for t in tokens if t[0] == DEEP)
    wild = sum(1 for t in tokens if t[0] in (ANY_KEY, ANY_ITEM))
    return Glob(text, tuple(tokens), (literal, partial, -deep, -wild))


def _bracket_end(text: str, start: int) -> int:
    i = start + 1
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "]":
            return i
        i += 1
    raise GlobError(f"unclosed '[' at position {start} in glob {text!r}")


def _bracket_token(inner: str, glob: str) -> Token:
    if inner == "*":
        return (ANY_ITEM, None, None)
    if inner.isdigit():
        return (INDEX, int(inner), None)
    if inner.startswith('"'):
        try:
            key = json.loads(inner)
        except ValueError:
            raise GlobError(f"bad quoted key [{inner}] in glob {glob!r}") from None
        if not isinstance(key, str):
            raise GlobError(f"bad quoted key [{inner}] in glob {glob!r}")
        return (KEY, key, None)
    field, sep, value = inner.partition("=")
    if not sep or not _PLAIN_KEY.fullmatch(field) or not value:
        raise GlobError(
            f"bad bracket [{inner}] in glob {glob!r}: "
            'expected [*], [INDEX], ["KEY"], [FIELD=VALUE] or [FIELD=*]'
        )
    if value == "*":
        return (KEYED_ANY, field, None)
    return (KEYED, field, _parse_value(value, glob))


def validate_glob(text: str) -> str:
    """Pydantic validator helper: parse ``text`` and return it unchanged (raises GlobError)."""
    parse_glob(text)
    return text


# ---------------------------------------------------------------------------------------------------------
# Matching many globs at once, incrementally along a walk
# ---------------------------------------------------------------------------------------------------------

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
