"""Path globs: select paths with wildcards, in the syntax of :mod:`envsteward.tree.paths`.

Rules (severity, ignore, secret paths, list keys, environment-specific keys, tier rules, promotion
selections) select paths with globs in the path syntax, plus wildcards:

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

:func:`parse_glob` / :func:`compile_glob` raise :class:`GlobError` (a ``ValueError``) for a malformed glob;
:func:`parse_path` reads a path without wildcards. Matching many globs at once along a walk is
:class:`envsteward.tree.globset.GlobSet`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from envsteward.tree.paths import KEYWORDS, PLAIN_KEY, Keyed, PathTuple, Segment, render_key, render_value


class GlobError(ValueError):
    """A malformed path glob; the message shows where and what is accepted."""


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
    """A parsed glob: its text, tokens and specificity (higher is more specific). Build it with
    :func:`parse_glob` or (cached, surrounding blanks stripped) :func:`compile_glob`."""

    text: str
    tokens: tuple[Token, ...]
    specificity: tuple[int, int, int, int]

    def matches(self, path: Sequence[Segment] | str) -> bool:
        """True when the glob matches the whole ``path`` (segments, or a path text). One glob against one
        path; to match many globs along a walk use :class:`~envsteward.tree.globset.GlobSet`.

        Raises GlobError when ``path`` is a text that is not a valid path."""
        parts = parse_path(path) if isinstance(path, str) else tuple(path)
        if all(type(part) is str or type(part) is int for part in parts):
            return _match_cached(self, parts)
        # keyed items compare their values type-exactly ([id=1] is not [id=true]); the cache would not
        return _match(self.tokens, 0, list(parts), 0)

    @property
    def is_literal(self) -> bool:
        """True when the glob has no wildcard at all (it names exactly one path)."""
        return all(token[0] in (KEY, INDEX) for token in self.tokens)

    @property
    def has_double_star(self) -> bool:
        return any(token[0] == DEEP for token in self.tokens)

    @property
    def last_key(self) -> str | None:
        """The last segment when it is a literal mapping key, else None."""
        if self.tokens and self.tokens[-1][0] == KEY:
            return str(self.tokens[-1][1])
        return None

    def parent(self) -> Glob:
        """The glob without its last segment (the root glob ``""`` for a one-segment glob)."""
        tokens = self.tokens[:-1]
        return Glob(_tokens_text(tokens), tokens, _specificity(tokens))

    def literal_prefix(self) -> PathTuple:
        """The leading literal segments (up to the first wildcard)."""
        parts: list[str | int] = []
        for kind, arg, _ in self.tokens:
            if kind == KEY:
                parts.append(str(arg))
            elif kind == INDEX:
                parts.append(int(arg))
            else:
                break
        return tuple(parts)

    def literal_path(self) -> PathTuple:
        """The path a literal glob names. Raises ValueError when the glob has wildcards."""
        if not self.is_literal:
            raise ValueError(f"glob {self.text!r} has wildcards")
        return self.literal_prefix()

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=65536)
def _match_cached(glob: Glob, path: tuple[Segment, ...]) -> bool:
    return _match(glob.tokens, 0, list(path), 0)


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
    if text in KEYWORDS or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text):
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
    return Glob(text, tuple(tokens), _specificity(tokens))


def _specificity(tokens: Sequence[Token]) -> tuple[int, int, int, int]:
    literal = sum(1 for t in tokens if t[0] in (KEY, INDEX, KEYED))
    partial = sum(1 for t in tokens if t[0] in (KEY_GLOB, KEYED_ANY))
    deep = sum(1 for t in tokens if t[0] == DEEP)
    wild = sum(1 for t in tokens if t[0] in (ANY_KEY, ANY_ITEM))
    return (literal, partial, -deep, -wild)


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
    if not sep or not PLAIN_KEY.fullmatch(field) or not value:
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


@functools.lru_cache(maxsize=4096)
def compile_glob(text: str) -> Glob:
    """:func:`parse_glob` of ``text`` without surrounding blanks, cached.

    Raises GlobError naming the problem."""
    return parse_glob(text.strip())


def glob_matches(pattern: str, path: Sequence[Segment] | str) -> bool:
    """Convenience: ``compile_glob(pattern).matches(path)``. Raises GlobError for a malformed glob or path."""
    return compile_glob(pattern).matches(path)


@functools.lru_cache(maxsize=4096)
def parse_path(text: str) -> PathTuple:
    """Parse a path without wildcards (``""`` is the root): ``"services[0].name"`` ->
    ``("services", 0, "name")``. Raises GlobError (a ValueError) naming the problem."""
    if not text.strip():
        return ()
    parts: list[str | int] = []
    for kind, arg, _ in parse_glob(text.strip()).tokens:
        if kind == KEY:
            parts.append(str(arg))
        elif kind == INDEX:
            parts.append(int(arg))
        else:
            raise GlobError(f"invalid path {text!r}: wildcards and [field=value] are not allowed here")
    return tuple(parts)


def _token_text(token: Token) -> str:
    kind, arg, extra = token
    if kind == KEY:
        return render_key(str(arg))
    if kind == KEY_GLOB:
        return str(extra)
    if kind == ANY_KEY:
        return "*"
    if kind == DEEP:
        return "**"
    if kind == INDEX:
        return f"[{arg}]"
    if kind == ANY_ITEM:
        return "[*]"
    if kind == KEYED:
        return f"[{arg}={render_value(extra)}]"
    return f"[{arg}=*]"


def _tokens_text(tokens: Sequence[Token]) -> str:
    text = ""
    for token in tokens:
        piece = _token_text(token)
        text += piece if piece.startswith("[") or not text else f".{piece}"
    return text
