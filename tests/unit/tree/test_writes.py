"""Writing into trees (envsteward.tree.values) and how the config-source adapters word a conflict."""

from __future__ import annotations

from typing import Any

import pytest

from envsteward.adapters._tree import set_leaf, set_nested
from envsteward.errors import ConfigurationError, PermanentError
from envsteward.sources import mount, subtree_at
from envsteward.tree import MISSING, PathConflictError, delete_at, merge_at, set_at, value_at
from envsteward.tree import mount as tree_mount
from envsteward.tree.values import BLOCKED, NOT_A_MAPPING, OCCUPIED


def test_value_at_reads_keys_and_positions_and_says_missing() -> None:
    tree = {"a": {"b": [{"c": None}]}}
    assert value_at(tree, ("a", "b", 0, "c")) is None
    assert value_at(tree, ("a", "b", 1)) is MISSING
    assert value_at(tree, ("a", 0)) is MISSING
    assert value_at(tree, ()) is tree


def test_set_at_creates_mappings_and_refuses_a_value_on_the_way() -> None:
    tree: dict[str, Any] = {"a": {"x": 1}, "s": "scalar", "n": None}
    set_at(tree, ("a", "b", "c"), 2)
    assert tree["a"] == {"x": 1, "b": {"c": 2}}
    for blocked in (("s", "k"), ("n", "k")):
        with pytest.raises(PathConflictError) as caught:
            set_at(tree, blocked, 3)
        assert caught.value.path == blocked[:1]
        assert caught.value.reason == BLOCKED
    set_at(tree, ("s", "k"), 3, make_room=True)
    assert tree["s"] == {"k": 3}


def test_delete_at_removes_and_returns_the_node() -> None:
    tree: dict[str, Any] = {"a": {"b": 1}, "l": [1, 2]}
    assert delete_at(tree, ("a", "b")) == 1
    assert delete_at(tree, ("a", "b")) is MISSING
    assert delete_at(tree, ("l", 0)) == 1
    assert tree == {"a": {}, "l": [2]}


def test_merge_at_merges_mappings_and_names_the_key_defined_twice() -> None:
    tree: dict[str, Any] = {}
    merge_at(tree, ("db",), {"host": "h", "opts": {"a": 1}})
    merge_at(tree, ("db",), {"opts": {"b": 2}})
    assert tree == {"db": {"host": "h", "opts": {"a": 1, "b": 2}}}
    with pytest.raises(PathConflictError) as caught:
        merge_at(tree, ("db",), {"opts": {"a": 3}})
    assert (caught.value.path, caught.value.reason) == (("db", "opts", "a"), OCCUPIED)
    with pytest.raises(PathConflictError) as caught:
        merge_at(tree, (), "x")
    assert caught.value.reason == NOT_A_MAPPING


def test_mount_replaces_below_and_merges_at_the_root() -> None:
    tree: dict[str, Any] = {"app": "old", "keep": 1}
    tree_mount(tree, ("app", "db"), {"host": "h"})
    tree_mount(tree, (), {"top": True})
    assert tree == {"app": {"db": {"host": "h"}}, "keep": 1, "top": True}


def test_sources_mount_and_subtree_at_speak_mount_paths() -> None:
    tree: dict[str, Any] = {}
    mount(tree, "app.db", {"host": "h"})
    assert subtree_at(tree, "app.db") == {"host": "h"}
    assert subtree_at(tree, "app.nothing") is None
    with pytest.raises(ConfigurationError, match="mounted at the root must hold a mapping"):
        mount(tree, "", ["not", "a", "mapping"])


def test_adapter_helpers_name_the_key_path_never_the_value() -> None:
    tree: dict[str, Any] = {}
    set_nested(tree, ("db", "host"), "h", system="vault", where="secret/app")
    with pytest.raises(PermanentError, match=r"^vault: secret/app: db/host is defined twice$"):
        set_nested(tree, ("db", "host"), "hunter2", system="vault", where="secret/app")
    with pytest.raises(PermanentError, match=r"^vault: secret/app: db/host is both a value and a folder$"):
        set_nested(tree, ("db", "host", "x"), "hunter2", system="vault", where="secret/app")
    with pytest.raises(PermanentError, match="a value cannot sit at the root of the subtree"):
        set_nested(tree, (), "hunter2", system="vault", where="secret/app")
    data: dict[str, Any] = {"a": "v"}
    with pytest.raises(PermanentError, match=r"^ssm: put: a/b: a holds a value, not a mapping$"):
        set_leaf(data, ("a", "b"), "hunter2", system="ssm", operation="put")
    set_leaf(data, ("c", "d"), 1, system="ssm", operation="put")
    assert data == {"a": "v", "c": {"d": 1}}
