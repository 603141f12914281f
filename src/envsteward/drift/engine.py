"""The drift engine: compare a desired configuration with the live one, and two environments for parity.

How it stays fast on large documents
------------------------------------
The walk never looks inside subtrees that are equal. Two values are *the same* when they are type-exact
equal: ``type(a) is type(b)`` all the way down, so ``true`` vs ``1`` and ``7`` vs ``7.0`` are drift even
though Python's ``==`` says equal. Scalars are checked with one ``type() is`` and one ``==``. For two
containers, C-level ``==`` runs first (it stops at the first difference); when it says equal, a
``marshal.dumps(version=0)`` of both sides confirms type-exactness in C: version-0 marshal encodes every
value with its exact type (``True`` / ``1`` / ``1.0`` differ), has no reference or interning flags, and
refuses subclasses and foreign types. Equal bytes therefore imply type-exact equality; unequal bytes (for
example the same mapping in another key order) only send the walk down the slow path, which is always
exact. Findings are identical to a plain recursive walk (a randomised test checks this against one).

Rules (severity, ignore, secret paths, list keys, environment-specific keys) are compiled once per call into
one :class:`~envsteward.tree.GlobSet`, stepped one segment per visited node; only nodes on the way to
a difference are ever visited.

Equality details: two NaNs are equal; ``0.0`` equals ``-0.0``; any mapping is an object and any list or
tuple an array (so a ruamel ``CommentedMap`` equals a ``dict``), scalar subclasses count as their base type.

Healing (``DriftItem.healable``) is decided per item, first reason wins: an item matched by an expired
ignore must be reviewed, not healed; a secret (by reference, secret path or key name, anywhere in the
item's values) is never written by the healer (rotate it at its source); a key present only in live
(``added``: removed from desired) is not deleted automatically; the document root and paths that cross a
list (positions or keyed items) cannot be written as one key (``ConfigSource.write`` takes mapping keys);
anything else can be healed by writing the desired value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import marshal
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, NamedTuple

from envsteward.drift.model import DriftItem, DriftKind, DriftReport, ExpiredIgnore
from envsteward.drift.redaction import REDACTED, is_secret_key
from envsteward.drift.rules import DriftRules, IgnoreRule
from envsteward.errors import ConfigurationError
from envsteward.ports import Severity
from envsteward.secret_refs import SECRET_PREFIX, SecretRef
from envsteward.tree import (
    MISSING,
    Glob,
    GlobError,
    GlobSet,
    Keyed,
    Segment,
    States,
    join,
    key_text,
    parse_glob,
)

Fingerprint = Callable[[Any], str]
"""A keyed HMAC of a value (``envsteward.fingerprint.Fingerprinter.fingerprint``)."""

_NONE_TYPE = type(None)
_EXACT_SCALARS = frozenset({str, int, bool, _NONE_TYPE})
_KIND = {str: str, int: int, float: float, bool: bool, _NONE_TYPE: _NONE_TYPE, dict: dict, list: list}
_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    _NONE_TYPE: "null",
    dict: "object",
    list: "array",
    SecretRef: "secret_ref",
}

# secrecy levels of a node, inherited by everything under it
_NOT_SECRET, _BY_NAME, _BY_PATH, _BY_REF = 0, 1, 2, 3


# ---------------------------------------------------------------------------------------------------------
# Type-exact sameness
# ---------------------------------------------------------------------------------------------------------


def _kind(value: Any) -> type:
    """The comparison type: exact for JSON scalars (bool, int, float, str, None are all different), any
    mapping is ``dict``, any list or tuple is ``list``, scalar subclasses count as their base type."""
    kind = _KIND.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return bool
    for base in (int, float, str):
        if isinstance(value, base):
            return base
    if isinstance(value, Mapping):
        return dict
    if isinstance(value, list | tuple):
        return list
    return type(value)


def _scalar_equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _same(a: Any, b: Any) -> bool:
    """Fast, conservative type-exact equality: True only when ``a`` and ``b`` are type-exact equal. False
    may be wrong for equal values (the caller then walks them), never the other way round."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _EXACT_SCALARS:
        return bool(a == b)
    if kind is dict or kind is list:
        if a != b:
            return False
        try:
            return marshal.dumps(a, 0) == marshal.dumps(b, 0)
        except ValueError:  # a foreign type, a subclass, or too deep: let the walk decide
            return False
    return False


def _is_ref(value: Any) -> bool:
    return type(value) is SecretRef or (isinstance(value, str) and value.startswith(SECRET_PREFIX))


def _ref_text(value: Any) -> str:
    if isinstance(value, SecretRef):
        return SECRET_PREFIX + value.uri()
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        return value
    return REDACTED


def type_name(value: Any) -> str | None:
    """The JSON name of a value's type (``boolean``, ``integer``, ``number``, ``string``, ``null``,
    ``object``, ``array``, ``secret_ref``); None for :data:`MISSING`."""
    if value is MISSING:
        return None
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        return "secret_ref"
    kind = type(value) if type(value) is SecretRef else _kind(value)
    return _TYPE_NAMES.get(kind, kind.__name__)


def _json_scalar(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, SecretRef):
        return SECRET_PREFIX + value.uri()
    if isinstance(value, bool):
        return bool(value)
    for base in (int, float, str):
        if isinstance(value, base):
            return _json_scalar(base(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


# ---------------------------------------------------------------------------------------------------------
# Rules, compiled once per call
# ---------------------------------------------------------------------------------------------------------


class _Accept(NamedTuple):
    severity: Severity | None
    ignore: IgnoreRule | None
    expired: IgnoreRule | None
    secret: bool
    list_key: str | None
    env_specific: bool


_NOTHING = _Accept(None, None, None, False, None, False)

_SEVERITY, _IGNORE, _SECRET, _LIST_KEY, _ENV_SPECIFIC = range(5)


class _CompiledRules:
    """Every glob of one call in one :class:`GlobSet`, with what each means when it matches."""

    def __init__(
        self,
        rules: DriftRules,
        *,
        environment: str | None,
        today: date,
        use_ignores: bool,
        environment_specific: Iterable[str] = (),
    ) -> None:
        globs: list[Glob] = []
        self._roles: list[tuple[int, Any]] = []
        self.expired: list[IgnoreRule] = []
        self.default_severity = rules.default_severity

        def add(text: str, field: str, role: int, payload: Any) -> None:
            try:
                globs.append(parse_glob(text))
            except GlobError as exc:
                raise ConfigurationError(f"drift rules: {field}: {exc}") from None
            self._roles.append((role, payload))

        for i, sev in enumerate(rules.severity):
            add(sev.path, f"severity[{i}].path", _SEVERITY, sev.severity)
        for i, text in enumerate(rules.secret_paths):
            add(text, f"secret_paths[{i}]", _SECRET, None)
        for i, lk in enumerate(rules.list_keys):
            add(lk.path, f"list_keys[{i}].path", _LIST_KEY, lk.key)
        if use_ignores:
            for i, ign in enumerate(rules.ignore):
                if ign.environments is not None and environment not in ign.environments:
                    continue
                expired = ign.expires is not None and today > ign.expires
                if expired:
                    self.expired.append(ign)
                add(ign.path, f"ignore[{i}].path", _IGNORE, (ign, expired))
        for i, text in enumerate(environment_specific):
            add(text, f"environment_specific[{i}]", _ENV_SPECIFIC, None)
        self.globs = globs
        self.globset = GlobSet(globs)
        self._accepts: dict[States, _Accept] = {}

    def accept(self, states: States) -> _Accept:
        """What the globs matching a node's path say about it (cached per state set)."""
        if not states:
            return _NOTHING
        cached = self._accepts.get(states)
        if cached is not None:
            return cached
        severity: tuple[tuple[int, int, int, int], int, Severity] | None = None
        list_key: tuple[tuple[int, int, int, int], str] | None = None
        ignore = expired = None
        secret = env_specific = False
        for index in self.globset.accepting(states):
            role, payload = self._roles[index]
            spec = self.globs[index].specificity
            if role == _SEVERITY:
                candidate = (spec, payload.rank, payload)
                if severity is None or candidate[:2] > severity[:2]:
                    severity = candidate
            elif role == _SECRET:
                secret = True
            elif role == _LIST_KEY:
                if list_key is None or spec > list_key[0]:
                    list_key = (spec, payload)
            elif role == _IGNORE:
                rule, is_expired = payload
                if is_expired:
                    expired = expired or rule
                else:
                    ignore = ignore or rule
            else:
                env_specific = True
        cached = _Accept(
            severity[2] if severity else None,
            ignore,
            expired,
            secret,
            list_key[1] if list_key else None,
            env_specific,
        )
        self._accepts[states] = cached
        return cached


# ---------------------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------------------


class _Node:
    """A visited place: its path, its positional path in the desired document (for origins), its mapping
    keys (None once a list is crossed), its glob states and its secrecy."""

    __slots__ = ("keys", "opath", "parent", "path", "secret", "states")

    def __init__(  # noqa: PLR0917 - built in one hot place, positional for speed
        self,
        parent: _Node | None,
        path: str,
        opath: str | None,
        keys: tuple[str, ...] | None,
        states: States,
        secret: int,
    ) -> None:
        self.parent = parent
        self.path = path
        self.opath = opath
        self.keys = keys
        self.states = states
        self.secret = secret


class _Walker:
    def __init__(
        self,
        compiled: _CompiledRules,
        *,
        environment: str | None,
        origins: Mapping[str, str] | None,
        secret_paths: frozenset[str],
        secret_fingerprints: Mapping[str, str] | None,
        fingerprint: Fingerprint | None,
        parity: tuple[str, str] | None = None,
    ) -> None:
        self.rules = compiled
        self.environment = environment
        self.origins = origins or {}
        self.secret_paths = secret_paths
        self.secret_fingerprints = secret_fingerprints or {}
        self.fingerprint = fingerprint
        self.parity = parity
        self.items: list[DriftItem] = []
        self.redactions = 0  # counts redacted values while an item is rendered
        self.ignored = 0
        self.expired_matches: dict[int, int] = {}
        self.root = _Node(None, "", "", (), compiled.globset.start, _NOT_SECRET)
        self.root.secret = self._secrecy(self.root, _NOT_SECRET, None)

    # -- nodes ------------------------------------------------------------------------------------------

    def _secrecy(self, node: _Node, inherited: int, key: str | None) -> int:
        level = inherited
        if level < _BY_PATH and self.rules.accept(node.states).secret:
            level = _BY_PATH
        if level < _BY_NAME and key is not None and is_secret_key(key):
            level = _BY_NAME
        if self.secret_paths and node.path in self.secret_paths:
            level = _BY_REF
        return level

    def child(self, node: _Node, segment: Segment, opos: Segment | None) -> _Node:
        """The node of ``segment`` under ``node``; ``opos`` is its segment in the desired document's
        positional path (None when it has none there)."""
        opath = join(node.opath, opos) if node.opath is not None and opos is not None else None
        keys = (*node.keys, segment) if node.keys is not None and type(segment) is str else None
        new = _Node(
            node, join(node.path, segment), opath, keys, self.rules.globset.step(node.states, segment), 0
        )
        new.secret = self._secrecy(new, node.secret, segment if type(segment) is str else None)
        return new

    def key_child(self, node: _Node, key: Any) -> _Node:
        text = key_text(key)
        return self.child(node, text, text)

    # -- comparing ---------------------------------------------------------------------------------------

    def diff(self, desired: Any, live: Any, node: _Node) -> None:
        """Record the differences between two present values at ``node``."""
        if self.parity is not None:
            if self.rules.accept(node.states).env_specific:
                return
            ref_d, ref_l = _is_ref(desired), _is_ref(live)
            if ref_d or ref_l:
                if ref_d != ref_l:
                    self.emit(node, DriftKind.TYPE_CHANGED, desired, live)
                return
        elif _is_ref(desired) or (node.path in self.secret_paths and _kind(desired) not in (dict, list)):
            node.secret = _BY_REF  # everything shown at or under this node is redacted
            self.secret_leaf(desired, live, node)
            return
        kind = _kind(desired)
        if kind is not _kind(live):
            self.emit(node, DriftKind.TYPE_CHANGED, desired, live)
        elif kind is dict:
            self.walk_dict(desired, live, node)
        elif kind is list:
            self.walk_list(desired, live, node)
        elif self.parity is None and not _scalar_equal(desired, live):
            self.emit(node, DriftKind.CHANGED, desired, live)

    def walk_dict(self, desired: Mapping[Any, Any], live: Mapping[Any, Any], node: _Node) -> None:
        removed = 0
        same = _same
        for key, want in desired.items():
            have = live.get(key, MISSING)
            if have is MISSING:
                removed += 1
                self.emit(self.key_child(node, key), DriftKind.REMOVED, want, MISSING)
            elif want is not have and not same(want, have):
                self.diff(want, have, self.key_child(node, key))
        if len(live) > len(desired) - removed:
            for key, have in live.items():
                if key not in desired:
                    text = key_text(key)
                    self.emit(self.child(node, text, None), DriftKind.ADDED, MISSING, have)

    def walk_list(self, desired: Any, live: Any, node: _Node) -> None:
        field = self.rules.accept(node.states).list_key
        if field is not None:
            by_key_d = _index_by_key(desired, field)
            by_key_l = _index_by_key(live, field) if by_key_d is not None else None
            if by_key_d is not None and by_key_l is not None:
                self.walk_keyed(by_key_d, by_key_l, field, node)
                return
        same = _same
        common = min(len(desired), len(live))
        for i in range(common):
            want, have = desired[i], live[i]
            if want is not have and not same(want, have):
                self.diff(want, have, self.child(node, i, i))
        for i in range(common, len(desired)):
            self.emit(self.child(node, i, i), DriftKind.REMOVED, desired[i], MISSING)
        for i in range(common, len(live)):
            self.emit(self.child(node, i, None), DriftKind.ADDED, MISSING, live[i])

    def walk_keyed(
        self,
        desired: dict[tuple[type, Any], tuple[int, Any, Any]],
        live: dict[tuple[type, Any], tuple[int, Any, Any]],
        field: str,
        node: _Node,
    ) -> None:
        for key, (index, want, value) in desired.items():
            entry = live.get(key)
            child = self.child(node, Keyed(field, value), index)
            if entry is None:
                self.emit(child, DriftKind.REMOVED, want, MISSING)
            elif not _same(want, entry[1]):
                self.diff(want, entry[1], child)
        for key, (_, have, value) in live.items():
            if key not in desired:
                self.emit(self.child(node, Keyed(field, value), None), DriftKind.ADDED, MISSING, have)

    def secret_leaf(self, desired: Any, live: Any, node: _Node) -> None:
        """A secret is expected at ``node``: check presence, and the value by fingerprint when both the
        expected fingerprint and the fingerprint function are known. Never resolves the reference."""
        ref = _ref_text(desired)
        if _kind(live) in (dict, list):
            self.emit(node, DriftKind.TYPE_CHANGED, desired, live, detail=f"a secret is expected ({ref})")
            return
        expected = self.secret_fingerprints.get(node.path)
        if expected is None or self.fingerprint is None:
            return  # presence is all we can check
        actual = self.fingerprint(live)
        if not hmac.compare_digest(str(actual), str(expected)):
            self.emit(
                node,
                DriftKind.CHANGED,
                desired,
                live,
                shown=(expected, actual),
                detail=f"the live value differs from the secret at {ref}",
            )

    # -- items -------------------------------------------------------------------------------------------

    def emit(
        self,
        node: _Node,
        kind: DriftKind,
        desired: Any,
        live: Any,
        *,
        shown: tuple[Any, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        accept = self.rules.accept(node.states)
        if self.parity is not None and accept.env_specific:
            return
        if accept.ignore is not None:
            self.ignored += 1
            return
        ignored_by = None
        if accept.expired is not None:
            ignored_by = accept.expired.path
            key = id(accept.expired)
            self.expired_matches[key] = self.expired_matches.get(key, 0) + 1
        rank = -1
        floor = node.secret >= _BY_PATH
        shown_desired: Any = None
        shown_live: Any = None
        self.redactions = 0
        if desired is not MISSING:
            shown_desired, r, f = self.render(desired, node, desired_side=True, root=True)
            rank, floor = max(rank, r), floor or f
        if live is not MISSING:
            shown_live, r, f = self.render(live, node, desired_side=self.parity is not None, root=True)
            rank, floor = max(rank, r), floor or f
        if shown is not None:
            shown_desired, shown_live = shown
        severity = accept.severity or self.rules.default_severity
        if rank > severity.rank:
            severity = _BY_RANK[rank]
        if floor and severity.rank < Severity.HIGH.rank:
            severity = Severity.HIGH
        secret = node.secret > _NOT_SECRET or self.redactions > 0 or shown is not None
        if self.parity is not None and detail is None:
            detail = _parity_detail(kind, self.parity, desired, live)
        self.add_item(
            node,
            kind,
            severity,
            shown_desired,
            shown_live,
            desired_type=type_name(desired),
            live_type=type_name(live),
            secret=secret,
            ignored_by=ignored_by,
            detail=detail,
        )

    def add_item(
        self,
        node: _Node,
        kind: DriftKind,
        severity: Severity,
        desired: Any,
        live: Any,
        *,
        desired_type: str | None,
        live_type: str | None,
        secret: bool,
        ignored_by: str | None = None,
        detail: str | None = None,
    ) -> None:
        healable, reason = heal_decision(kind, secret=secret, ignored_by=ignored_by, key_path=node.keys)
        if self.parity is not None:
            healable, reason = False, "parity findings are fixed in the catalog, not healed"
        self.items.append(
            DriftItem(
                path=node.path,
                kind=kind,
                severity=severity,
                origin=self.origin(node),
                desired=desired,
                live=live,
                desired_type=desired_type,
                live_type=live_type,
                secret=secret,
                healable=healable,
                heal_reason=reason,
                ignored_by=ignored_by,
                key_path=node.keys if node.keys else None,
                detail=detail,
                fingerprint=item_fingerprint(self.environment, node.path, kind, desired, live),
            )
        )

    def origin(self, node: _Node | None) -> str | None:
        if not self.origins:
            return None
        while node is not None:
            found = self.origins.get(node.path)
            if found is None and node.opath is not None:
                found = self.origins.get(node.opath)
            if found is not None:
                return found
            node = node.parent
        return None

    def render(self, value: Any, node: _Node, *, desired_side: bool, root: bool) -> tuple[Any, int, bool]:
        """A JSON copy of ``value`` with every secret part redacted, the highest severity a rule gives any
        part below ``node`` (-1 for none), and whether a secret reference or secret path lies inside."""
        rank = -1
        if not root:
            severity = self.rules.accept(node.states).severity
            if severity is not None:
                rank = severity.rank
        floor = node.secret >= _BY_PATH
        if desired_side and _is_ref(value):
            self.redactions += 1
            return _ref_text(value), rank, True
        kind = _kind(value)
        if kind is dict:
            out: dict[str, Any] = {}
            for key, item in value.items():
                text = key_text(key)
                shown, r, f = self.render(
                    item, self.child(node, text, text), desired_side=desired_side, root=False
                )
                out[text] = shown
                rank, floor = max(rank, r), floor or f
            return out, rank, floor
        if kind is list:
            field = self.rules.accept(node.states).list_key
            keyed = _index_by_key(value, field) if field is not None else None
            segments: list[Segment] = (
                [Keyed(field, v) for (_, _, v) in keyed.values()] if keyed is not None and field else []
            )
            items: list[Any] = []
            for i, item in enumerate(value):
                segment: Segment = segments[i] if segments else i
                shown, r, f = self.render(
                    item, self.child(node, segment, i), desired_side=desired_side, root=False
                )
                items.append(shown)
                rank, floor = max(rank, r), floor or f
            return items, rank, floor
        if node.secret > _NOT_SECRET:
            return self.redact(value), rank, floor
        return _json_scalar(value), rank, floor

    def redact(self, value: Any) -> str:
        self.redactions += 1
        if self.fingerprint is None:
            return REDACTED
        return str(self.fingerprint(value))


_BY_RANK = {s.rank: s for s in Severity}
_FLAT = frozenset({str, int, float, bool, _NONE_TYPE})


def _index_by_key(items: Any, field: str) -> dict[tuple[type, Any], tuple[int, Any, Any]] | None:
    """Items of a list by the value of their ``field``; None when an item is not a mapping, lacks the
    field, has a non-scalar key value, or two items share a key value (then the list is compared by
    position)."""
    out: dict[tuple[type, Any], tuple[int, Any, Any]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or field not in item:
            return None
        value = item[field]
        kind = _kind(value)
        if kind not in (str, int, float, bool, _NONE_TYPE):
            return None
        key = (kind, value)
        if key in out:
            return None
        out[key] = (index, item, value)
    return out


def _parity_detail(kind: DriftKind, names: tuple[str, str], left: Any, right: Any) -> str:
    left_name, right_name = names
    if kind == DriftKind.REMOVED:
        return f"present in {left_name}, missing in {right_name}"
    if kind == DriftKind.ADDED:
        return f"present in {right_name}, missing in {left_name}"
    return f"{type_name(left)} in {left_name}, {type_name(right)} in {right_name}"


def heal_decision(
    kind: DriftKind, *, secret: bool, ignored_by: str | None, key_path: tuple[str, ...] | None
) -> tuple[bool, str]:
    """Whether an item can be healed by writing the desired value, and why (first reason wins)."""
    if ignored_by is not None:
        return False, f"an expired ignore rule ({ignored_by}) matches: review the rule before healing"
    if secret:
        return False, "secret values are never written by the healer: rotate or fix the secret at its source"
    if kind == DriftKind.ADDED:
        return False, "the key exists only in live (removed from desired): deleting live data needs a person"
    if kind == DriftKind.SECRET_REUSED:
        return False, "a reused secret must be rotated in one of the environments"
    if key_path is None:
        return False, "the path crosses a list: list items are not written one by one"
    if not key_path:
        return False, "the whole document differs: there is no single key to write"
    return True, "the desired value can be written to the live key"


def item_fingerprint(environment: str | None, path: str, kind: DriftKind, desired: Any, live: Any) -> str:
    """The de-duplication id of an item: SHA-256 over environment, path, kind and the *redacted* values
    (redacted values are ``<redacted>`` or keyed HMACs, so this is never a plain hash of a secret)."""
    data = [environment, path, kind.value, desired, live]
    if type(desired) in _FLAT and type(live) in _FLAT:
        payload = json.dumps(data)
    else:
        payload = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------


def compare(
    desired: Any,
    live: Any,
    rules: DriftRules | None = None,
    *,
    environment: str | None = None,
    origins: Mapping[str, str] | None = None,
    secret_paths: Iterable[str] = (),
    secret_fingerprints: Mapping[str, str] | None = None,
    fingerprint: Fingerprint | None = None,
    today: date | None = None,
) -> DriftReport:
    """Compare the desired configuration with the live one and return every difference, redacted.

    ``desired``/``live``: nested mappings, lists and scalars (JSON/YAML data). A
    :class:`~envsteward.catalog.refs.SecretRef` leaf (or a ``secret+…`` string) on the desired side means
    "a secret is expected here": its presence is checked, and its value only by fingerprint, when
    ``secret_fingerprints[path]`` (the keyed fingerprint of the resolved desired secret) and ``fingerprint``
    (the keyed HMAC function applied to the live value) are both given. Secrets are never resolved here.

    ``rules``: severity, ignore (with expiry, per environment), secret paths and list keys (see
    :mod:`envsteward.tree.globs` for the glob syntax). ``environment`` selects per-environment ignores and
    goes into each item's fingerprint. ``origins``: ``file:line`` by path (positional paths of the desired
    document, ``services[0].port``, or the keyed form); an item without an exact origin gets its nearest
    ancestor's. ``secret_paths``: exact paths where the desired side holds a secret reference. ``today``:
    the date ignore expiries are checked against (default: today).

    Raises ConfigurationError for a malformed glob in ``rules`` (naming the field); pure otherwise.
    """
    rules = rules or DriftRules()
    compiled = _CompiledRules(rules, environment=environment, today=today or date.today(), use_ignores=True)
    walker = _Walker(
        compiled,
        environment=environment,
        origins=origins,
        secret_paths=frozenset(secret_paths),
        secret_fingerprints=secret_fingerprints,
        fingerprint=fingerprint,
    )
    if not _same(desired, live):
        walker.diff(desired, live, walker.root)
    return DriftReport(
        environment=environment,
        items=tuple(walker.items),
        expired_ignores=tuple(
            ExpiredIgnore(
                path=rule.path,
                reason=rule.reason,
                expires=rule.expires,
                environments=tuple(rule.environments) if rule.environments is not None else None,
                matched=walker.expired_matches.get(id(rule), 0),
            )
            for rule in compiled.expired
            if rule.expires is not None
        ),
        ignored=walker.ignored,
    )


def parity(
    left_name: str,
    left: Any,
    right_name: str,
    right: Any,
    *,
    environment_specific: Iterable[str] = (),
    secret_fingerprints_left: Mapping[str, str] | None = None,
    secret_fingerprints_right: Mapping[str, str] | None = None,
    rules: DriftRules | None = None,
    origins: Mapping[str, str] | None = None,
    fingerprint: Fingerprint | None = None,
) -> DriftReport:
    """Check two neighbouring environments on the promotion path (e.g. staging and production) for parity.

    Findings: keys present in one and missing in the other (``removed``: only in ``left``; ``added``: only
    in ``right``), type mismatches (``type_changed``, including a secret reference on one side and a literal
    on the other), except at or under a path matching an ``environment_specific`` glob. Different values of
    the same type are not findings. A secret value used by both environments (the same keyed fingerprint in
    ``secret_fingerprints_left`` and ``secret_fingerprints_right``, at any paths) is a ``secret_reused``
    item of severity critical. Items put the left value in ``desired`` and the right one in ``live``
    (redacted as in :func:`compare`); ``rules`` give severities, secret paths and list keys (ignores do not
    apply to parity). Parity items are never healable: they are fixed in the catalog.

    Raises ConfigurationError for a malformed glob; pure otherwise.
    """
    rules = rules or DriftRules()
    compiled = _CompiledRules(
        rules,
        environment=None,
        today=date.today(),
        use_ignores=False,
        environment_specific=environment_specific,
    )
    environment = f"{left_name}<->{right_name}"
    walker = _Walker(
        compiled,
        environment=environment,
        origins=origins,
        secret_paths=frozenset(),
        secret_fingerprints=None,
        fingerprint=fingerprint,
        parity=(left_name, right_name),
    )
    if not _same(left, right):
        walker.diff(left, right, walker.root)
    by_fingerprint: dict[str, list[str]] = {}
    for path, value in (secret_fingerprints_right or {}).items():
        by_fingerprint.setdefault(value, []).append(path)
    for left_path, value in sorted((secret_fingerprints_left or {}).items()):
        for right_path in sorted(by_fingerprint.get(value, ())):
            node = _node_for(walker, left_path)
            walker.add_item(
                node,
                DriftKind.SECRET_REUSED,
                Severity.CRITICAL,
                value,
                value,
                desired_type="secret_ref",
                live_type="secret_ref",
                secret=True,
                detail=(
                    f"{left_name}:{left_path} and {right_name}:{right_path} hold the same secret value "
                    "(equal keyed fingerprints)"
                ),
            )
    return DriftReport(environment=environment, items=tuple(walker.items), ignored=0)


def _node_for(walker: _Walker, path: str) -> _Node:
    """A node for a path given as text (for items not found by the walk); no glob states, no key path."""
    return _Node(walker.root, path, path, None, frozenset(), _BY_REF)
