"""Hostile or broken catalog files are refused fast, in one line each, under a budget named in the problem.

The refusals themselves (file, line, message) are golden cases under tests/data/catalogs/bad/ (hostile_*,
yaml_error_lines, backup_field_lines); these tests add what a golden case cannot show: time, memory,
a 50 MB file and the configurable limits.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from envsteward.catalog import CatalogError, YamlLimits, load_catalog

from .conftest import DATA, CatalogFactory


def _problems(root: Path, **kwargs: object) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(root, **kwargs)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def test_an_alias_bomb_is_refused_fast_and_small() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problems = _problems(DATA / "bad" / "hostile_alias_bomb")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == [
        "hostile_alias_bomb/config/base.yaml:22: alias *e expands past 500,000 nodes after alias expansion "
        "(max_nodes 500,000; raise it with ENVSTEWARD_CATALOG_MAX_NODES)"
    ]
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024


def test_deep_nesting_is_a_problem_not_a_recursion_error() -> None:
    problems = _problems(DATA / "bad" / "hostile_deep_nesting")
    assert len(problems) == 1
    assert "nesting deeper than 100 levels" in problems[0]


def test_a_recursive_alias_is_refused(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/base.yaml": "services: &loop\n  api:\n    again: *loop\n"})
    assert _problems(root) == [
        "catalog/config/base.yaml:3: alias *loop refers to a node that contains it",
    ]


def test_a_50_mb_file_is_refused_by_size_before_parsing(make_catalog: CatalogFactory) -> None:
    root = make_catalog()
    big = root / "config" / "base.yaml"
    line = b"key_000000: 1\n"
    with big.open("wb") as out:
        for _ in range(50 * 1024 * 1024 // (len(line) * 1000) + 1):
            out.write(line * 1000)
    assert big.stat().st_size > 50 * 1024 * 1024
    started = time.perf_counter()
    problems = _problems(root)
    assert time.perf_counter() - started < 1.0
    assert len(problems) == 1
    assert problems[0].startswith("catalog/config/base.yaml: the file is 52,")
    assert problems[0].endswith(
        "bytes, above the limit (max_file_bytes 8,388,608; raise it with ENVSTEWARD_CATALOG_MAX_FILE_BYTES)"
    )


def test_limits_are_configurable_by_argument_and_environment(
    make_catalog: CatalogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_catalog()
    load_catalog(root)
    assert any("max_nodes 10;" in problem for problem in _problems(root, limits=YamlLimits(max_nodes=10)))
    monkeypatch.setenv("ENVSTEWARD_CATALOG_MAX_DEPTH", "2")
    assert any("nesting deeper than 2 levels (max_depth 2;" in problem for problem in _problems(root))
    monkeypatch.setenv("ENVSTEWARD_CATALOG_MAX_DEPTH", "lots")
    with pytest.raises(
        CatalogError, match=r"^ENVSTEWARD_CATALOG_MAX_DEPTH must be a positive integer, not 'lots'$"
    ):
        load_catalog(root)


def test_a_problem_at_the_end_of_a_file_is_on_a_line_that_exists(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/base.yaml": "services:\n  api:\n    tags: {a: 1\n"})
    assert _problems(root) == [
        "catalog/config/base.yaml:3: YAML syntax error: while parsing a flow mapping: expected ',' or '}', "
        "but got '<stream end>'"
    ]


def test_a_problem_in_the_middle_of_a_file_keeps_its_own_line(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/base.yaml": "services:\n  api:\n    a: 1\n   b: 2\nother: 3\n"})
    problems = _problems(root)
    assert len(problems) == 1
    assert problems[0].startswith("catalog/config/base.yaml:4: YAML syntax error")
