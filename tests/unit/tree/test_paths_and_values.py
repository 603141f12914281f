"""Paths, globs and values at paths (envsteward.tree) as the catalog and the tier rules use them."""

from __future__ import annotations

import pytest

from envsteward.tree import (
    MISSING,
    compile_glob,
    format_path,
    glob_matches,
    iter_leaves,
    parse_path,
    value_at,
)


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ((), ""),
        (("services", "api", "instances"), "services.api.instances"),
        (("services", 0, "name"), "services[0].name"),
        (("matrix", 1, 2), "matrix[1][2]"),
        (("labels", "a.b/c"), 'labels["a.b/c"]'),
    ],
)
def test_format_and_parse_round_trip(parts: tuple[str | int, ...], text: str) -> None:
    assert format_path(parts) == text
    assert parse_path(text) == parts


@pytest.mark.parametrize("bad", ["a..b", "a.", "a[", "a.*", "**.b", "a[*]"])
def test_parse_path_rejects_malformed_paths_and_wildcards(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked by the catalog tests
        parse_path(bad)


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("services.*.instances", ("services", "api", "instances"), True),
        ("services.*.instances", ("services", "worker", "instances"), True),
        ("services.*.instances", ("services", "api", "autoscaling", "instances"), False),
        ("services.*.instances", ("services", 0, "instances"), False),  # * is a key, not a list item
        ("services[*].instances", ("services", 0, "instances"), True),
        ("**.debug", ("debug",), True),
        ("**.debug", ("services", "api", "debug"), True),
        ("**.debug", ("services", "api", "debugger"), False),
        ("db.**", ("db",), True),
        ("db.**", ("db", "replicas", 1, "host"), True),
        ("*_PASSWORD", ("DB_PASSWORD",), True),
        ("services[1].name", ("services", 1, "name"), True),
        ("services[1].name", ("services", 0, "name"), False),
    ],
)
def test_glob_matching(glob: str, path: tuple[str | int, ...], matches: bool) -> None:
    assert glob_matches(glob, path) is matches
    assert compile_glob(glob).matches(format_path(path)) is matches


def test_glob_parts() -> None:
    glob = compile_glob("services.*.autoscaling.min")
    assert glob.last_key == "min"
    assert glob.parent().text == "services.*.autoscaling"
    assert glob.literal_prefix() == ("services",)
    assert not glob.is_literal
    assert compile_glob("a.b[2]").literal_path() == ("a", "b", 2)
    assert compile_glob("**.x").parent().has_double_star
    assert compile_glob("a.*").last_key is None
    with pytest.raises(ValueError, match="has wildcards"):
        glob.literal_path()


def test_tree_helpers() -> None:
    tree = {"a": {"b": [1, {"c": None}], "empty": {}}}
    assert value_at(tree, ("a", "b", 1, "c")) is None
    assert value_at(tree, ("a", "x")) is MISSING
    assert value_at(tree, ("a", "b", 5)) is MISSING
    assert value_at(tree, ("a", "b", "x")) is MISSING
    assert [format_path(path) for path, _ in iter_leaves(tree)] == ["a.b[0]", "a.b[1].c", "a.empty"]
