"""A second oracle: on documents where DeepDiff and the engine mean the same thing (mappings, and lists that
keep their length and hold no numbers), the engine's findings are exactly DeepDiff's full comparison.

Inside lists DeepDiff (9.x, default options) matches items by hash, and ``hash(1) == hash(True) ==
hash(1.0)``: it misses ``1`` -> ``true`` and ``1`` -> ``1.0`` there. The engine does not (last test).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from deepdiff import DeepDiff

from envsteward.drift import compare
from envsteward.tree import format_path as render

SCALARS: list[Any] = [0, 1, 2, True, False, 0.0, 1.0, 2.5, "1", "x", "", None]
LIST_ITEMS: list[Any] = ["a", "b", "", None]
_KINDS = {
    "values_changed": "changed",
    "type_changes": "type_changed",
    "dictionary_item_added": "added",
    "dictionary_item_removed": "removed",
}


def _doc(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.4:
        return rng.choice(SCALARS)
    if roll < 0.85:
        return {f"k{i}": _doc(rng, depth - 1) for i in rng.sample(range(8), rng.randint(1, 5))}
    return [rng.choice(LIST_ITEMS) for _ in range(rng.randint(1, 4))]


def _mutate(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        out = {k: _mutate(v, rng) for k, v in value.items() if rng.random() > 0.07}
        if rng.random() < 0.1:
            out[f"new{rng.randint(0, 9)}"] = _doc(rng, 2)
        return out
    if isinstance(value, list):
        return [rng.choice(LIST_ITEMS) if rng.random() < 0.15 else v for v in value]
    return rng.choice(SCALARS) if rng.random() < 0.15 else value


def _deepdiff_findings(desired: Any, live: Any) -> set[tuple[str, str]]:
    # threshold_to_diff_deeper=0: always compare mappings key by key (by default DeepDiff reports a
    # mapping with few keys in common as one changed value)
    tree = DeepDiff(desired, live, view="tree", threshold_to_diff_deeper=0)
    found = set()
    for report_type, levels in tree.items():
        assert report_type in _KINDS, f"unexpected DeepDiff report {report_type}"
        for level in levels:
            found.add((render(level.path(output_format="list")), _KINDS[report_type]))
    return found


@pytest.mark.parametrize("seed", range(200))
def test_findings_equal_deepdiff(seed: int) -> None:
    rng = random.Random(seed)
    desired = {f"top{i}": _doc(rng, 4) for i in range(6)}
    live = _mutate(desired, rng)
    ours = {(item.path, item.kind.value) for item in compare(desired, live).items}
    assert ours == _deepdiff_findings(desired, live)


@pytest.mark.parametrize(("desired", "live"), [(["a", 1], ["a", True]), ({"a": [0, 1]}, {"a": [0, 1.0]})])
def test_engine_finds_list_type_traps_deepdiff_misses(desired: Any, live: Any) -> None:
    assert DeepDiff(desired, live) == {}
    assert [item.kind.value for item in compare(desired, live).items] == ["type_changed"]
