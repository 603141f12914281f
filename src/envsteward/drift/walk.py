"""The walk: compare two trees, visiting only nodes on the way to a difference.

The walk never looks inside subtrees that are the same (:func:`~envsteward.drift.values.is_same`); lists are
compared by position, or by the value of a key field where a ``list_keys`` rule says so. A secret expected
at a node is checked for presence, and its value only by keyed fingerprint.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from envsteward.drift.items import BY_REF, ItemMaker, Node
from envsteward.drift.model import DriftKind
from envsteward.drift.values import index_by_key, is_ref, is_same, kind_of, ref_text, scalar_equal
from envsteward.tree import MISSING, Keyed, key_text


class Walker(ItemMaker):
    """Records every difference between a desired and a live tree (or two environments, for parity)."""

    def diff(self, desired: Any, live: Any, node: Node) -> None:
        """Record the differences between two present values at ``node``."""
        if self.parity is not None:
            if self.rules.accept(node.states).env_specific:
                return
            ref_d, ref_l = is_ref(desired), is_ref(live)
            if ref_d or ref_l:
                if ref_d != ref_l:
                    self.emit(node, DriftKind.TYPE_CHANGED, desired, live)
                return
        elif is_ref(desired) or (node.path in self.secret_paths and kind_of(desired) not in (dict, list)):
            node.secret = BY_REF  # everything shown at or under this node is redacted
            self.secret_leaf(desired, live, node)
            return
        kind = kind_of(desired)
        if kind is not kind_of(live):
            self.emit(node, DriftKind.TYPE_CHANGED, desired, live)
        elif kind is dict:
            self.walk_dict(desired, live, node)
        elif kind is list:
            self.walk_list(desired, live, node)
        elif self.parity is None and not scalar_equal(desired, live):
            self.emit(node, DriftKind.CHANGED, desired, live)

    def walk_dict(self, desired: Mapping[Any, Any], live: Mapping[Any, Any], node: Node) -> None:
        removed = 0
        same = is_same
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

    def walk_list(self, desired: Any, live: Any, node: Node) -> None:
        field = self.rules.accept(node.states).list_key
        if field is not None:
            by_key_d = index_by_key(desired, field)
            by_key_l = index_by_key(live, field) if by_key_d is not None else None
            if by_key_d is not None and by_key_l is not None:
                self.walk_keyed(by_key_d, by_key_l, field, node)
                return
        same = is_same
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
        node: Node,
    ) -> None:
        for key, (index, want, value) in desired.items():
            entry = live.get(key)
            child = self.child(node, Keyed(field, value), index)
            if entry is None:
                self.emit(child, DriftKind.REMOVED, want, MISSING)
            elif not is_same(want, entry[1]):
                self.diff(want, entry[1], child)
        for key, (_, have, value) in live.items():
            if key not in desired:
                self.emit(self.child(node, Keyed(field, value), None), DriftKind.ADDED, MISSING, have)

    def secret_leaf(self, desired: Any, live: Any, node: Node) -> None:
        """A secret is expected at ``node``: check presence, and the value by fingerprint when both the
        expected fingerprint and the fingerprint function are known. Never resolves the reference."""
        ref = ref_text(desired)
        if kind_of(live) in (dict, list):
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
