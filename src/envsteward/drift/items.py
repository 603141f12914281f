"""From a difference at a node to a redacted :class:`DriftItem`: nodes, secrecy, rendering, redaction.

A node's secrecy is inherited by everything under it: a secret reference or a secret path (``BY_REF``,
``BY_PATH``) also raises the item's severity to at least high; a key whose name says secret (``BY_NAME``)
only redacts. Rendering copies a value to JSON with every secret part redacted (``<redacted>`` or a keyed
fingerprint) and finds the highest severity a rule gives any part of it.

Healing (``DriftItem.healable``) is decided per item by :func:`heal_decision`, first reason wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from envsteward.drift.compiled_rules import CompiledRules
from envsteward.drift.model import DriftItem, DriftKind
from envsteward.drift.redaction import REDACTED, is_secret_key
from envsteward.drift.values import (
    NONE_TYPE,
    index_by_key,
    is_ref,
    json_scalar,
    kind_of,
    ref_text,
    type_name,
)
from envsteward.ports import Severity
from envsteward.tree import MISSING, Keyed, Segment, States, join, key_text

Fingerprint = Callable[[Any], str]
"""A keyed HMAC of a value (``envsteward.fingerprint.Fingerprinter.fingerprint``)."""

# secrecy levels of a node, inherited by everything under it
NOT_SECRET, BY_NAME, BY_PATH, BY_REF = 0, 1, 2, 3


class Node:
    """A visited place: its path, its positional path in the desired document (for origins), its mapping
    keys (None once a list is crossed), its glob states and its secrecy."""

    __slots__ = ("keys", "opath", "parent", "path", "secret", "states")

    def __init__(  # noqa: PLR0917 - built in one hot place, positional for speed
        self,
        parent: Node | None,
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


class ItemMaker:
    """The nodes of one compare and the items found at them; :class:`~envsteward.drift.walk.Walker` walks."""

    def __init__(
        self,
        compiled: CompiledRules,
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
        self.root = Node(None, "", "", (), compiled.globset.start, NOT_SECRET)
        self.root.secret = self._secrecy(self.root, NOT_SECRET, None)

    # -- nodes ------------------------------------------------------------------------------------------

    def _secrecy(self, node: Node, inherited: int, key: str | None) -> int:
        level = inherited
        if level < BY_PATH and self.rules.accept(node.states).secret:
            level = BY_PATH
        if level < BY_NAME and key is not None and is_secret_key(key):
            level = BY_NAME
        if self.secret_paths and node.path in self.secret_paths:
            level = BY_REF
        return level

    def child(self, node: Node, segment: Segment, opos: Segment | None) -> Node:
        """The node of ``segment`` under ``node``; ``opos`` is its segment in the desired document's
        positional path (None when it has none there)."""
        opath = join(node.opath, opos) if node.opath is not None and opos is not None else None
        keys = (*node.keys, segment) if node.keys is not None and type(segment) is str else None
        new = Node(
            node, join(node.path, segment), opath, keys, self.rules.globset.step(node.states, segment), 0
        )
        new.secret = self._secrecy(new, node.secret, segment if type(segment) is str else None)
        return new

    def key_child(self, node: Node, key: Any) -> Node:
        text = key_text(key)
        return self.child(node, text, text)

    # -- comparing ---------------------------------------------------------------------------------------

    # -- items -------------------------------------------------------------------------------------------

    def emit(
        self,
        node: Node,
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
        floor = node.secret >= BY_PATH
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
        secret = node.secret > NOT_SECRET or self.redactions > 0 or shown is not None
        if self.parity is not None and detail is None:
            detail = parity_detail(kind, self.parity, desired, live)
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
        node: Node,
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

    def origin(self, node: Node | None) -> str | None:
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

    def render(self, value: Any, node: Node, *, desired_side: bool, root: bool) -> tuple[Any, int, bool]:
        """A JSON copy of ``value`` with every secret part redacted, the highest severity a rule gives any
        part below ``node`` (-1 for none), and whether a secret reference or secret path lies inside."""
        rank = -1
        if not root:
            severity = self.rules.accept(node.states).severity
            if severity is not None:
                rank = severity.rank
        floor = node.secret >= BY_PATH
        if desired_side and is_ref(value):
            self.redactions += 1
            return ref_text(value), rank, True
        kind = kind_of(value)
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
            keyed = index_by_key(value, field) if field is not None else None
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
        if node.secret > NOT_SECRET:
            return self.redact(value), rank, floor
        return json_scalar(value), rank, floor

    def redact(self, value: Any) -> str:
        self.redactions += 1
        if self.fingerprint is None:
            return REDACTED
        return str(self.fingerprint(value))


_BY_RANK = {s.rank: s for s in Severity}
_FLAT = frozenset({str, int, float, bool, NONE_TYPE})


def parity_detail(kind: DriftKind, names: tuple[str, str], left: Any, right: Any) -> str:
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
