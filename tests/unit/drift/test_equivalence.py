"""The engine's findings are identical to a plain recursive walk (``_reference.py``) on random documents
full of type traps (``true``/``1``/``1.0``, ``0``/``false``/``0.0``, ``"1"``, ``null`` vs missing, NaN,
reordered keys, nested containers that Python's ``==`` calls equal), and the fast path really skips."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from envsteward.drift import DriftRules, compare, walk
from tests.unit.drift._reference import reference_diff

TRAPS: list[Any] = [0, 1, 2, True, False, 0.0, 1.0, -0.0, 2.5, "1", "0", "", "x", None, float("nan")]
KEYS = ["a", "b", "c", "d", "e", "f"]


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.45:
        return rng.choice(TRAPS)
    if roll < 0.75:
        return {k: _random_value(rng, depth - 1) for k in rng.sample(KEYS, rng.randint(0, 4))}
    if roll < 0.9:
        return [_random_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    # keyed-list candidates: mappings with a "name" field (sometimes duplicated or missing)
    names = rng.sample(["api", "web", "db", 1, True, "1"], rng.randint(0, 4))
    items = [{"name": n, "v": _random_value(rng, depth - 2)} for n in names]
    if items and rng.random() < 0.1:
        items.append(copy.deepcopy(items[0]))
    if items and rng.random() < 0.1:
        items.append({"v": 1})
    return items


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """A copy of ``value`` with a few random changes: traps swapped in, keys dropped/added/reordered."""
    if isinstance(value, dict):
        out = {}
        keys = list(value)
        if rng.random() < 0.2:
            rng.shuffle(keys)
        for key in keys:
            if rng.random() < 0.08:
                continue
            out[key] = _mutate(value[key], rng, depth + 1)
        if rng.random() < 0.08:
            out[rng.choice(KEYS) + "x"] = _random_value(rng, 2)
        return out
    if isinstance(value, list):
        items = [_mutate(v, rng, depth + 1) for v in value]
        if rng.random() < 0.1:
            rng.shuffle(items)
        if rng.random() < 0.08 and items:
            items.pop()
        if rng.random() < 0.08:
            items.append(_random_value(rng, 1))
        return items
    if rng.random() < 0.12:
        return rng.choice(TRAPS)
    return copy.copy(value)


def _normal(value: Any) -> Any:
    """Comparable form: bool/int/float stay distinct; NaN is shown as the text "nan" in reports (JSON has
    no NaN), so the reference's NaN is turned into that."""
    if isinstance(value, float) and math.isnan(value):
        return ("str", "nan")
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return (type(value).__name__, value)


def _engine_findings(desired: Any, live: Any, rules: DriftRules | None) -> list[tuple[Any, ...]]:
    report = compare(desired, live, rules)
    return [(i.path, i.kind.value, _normal(i.desired), _normal(i.live)) for i in report.items]


def _reference_findings(desired: Any, live: Any, list_keys: dict[str, str]) -> list[tuple[Any, ...]]:
    found = reference_diff(desired, live, list_keys)
    return [(path, kind, _normal(want), _normal(have)) for path, kind, want, have in found]


@pytest.mark.parametrize("seed", range(400))
def test_engine_matches_reference_walk(seed: int) -> None:
    rng = random.Random(seed)
    desired = {k: _random_value(rng, 4) for k in KEYS}
    live = _mutate(desired, rng) if rng.random() < 0.85 else {k: _random_value(rng, 4) for k in KEYS}
    got = _engine_findings(desired, live, None)
    want = _reference_findings(desired, live, {})
    assert got == want


@pytest.mark.parametrize("seed", range(150))
def test_engine_matches_reference_walk_with_keyed_lists(seed: int) -> None:
    rng = random.Random(10_000 + seed)
    desired = {k: _random_value(rng, 4) for k in KEYS}
    live = _mutate(desired, rng)
    rules = DriftRules.model_validate({"list_keys": [{"path": k, "key": "name"} for k in KEYS]})
    got = _engine_findings(desired, live, rules)
    want = _reference_findings(desired, live, dict.fromkeys(KEYS, "name"))
    assert got == want


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        ({"a": [1, 2, {"b": True}]}, {"a": [1, 2, {"b": 1}]}),
        ({"a": {"b": {"c": 7}}}, {"a": {"b": {"c": 7.0}}}),
        ([0, 0.0, False], [False, 0, 0.0]),
        ({"x": float("nan")}, {"x": float("nan")}),
        ({"x": 0.0}, {"x": -0.0}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ],
)
def test_traps_that_python_equality_misses(desired: Any, live: Any) -> None:
    assert desired == live or desired != live  # (NaN aside, == calls most of these equal)
    assert _engine_findings(desired, live, None) == _reference_findings(desired, live, {})


def test_equal_subtrees_are_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk visits only the way to each difference: 1 000 equal services cost no recursive calls."""
    services = {f"svc{i}": {"port": i, "env": {"A": "x", "B": [1, 2.0, True]}} for i in range(1000)}
    desired = {"services": services}
    live = copy.deepcopy(desired)
    live["services"]["svc500"]["env"]["B"][2] = 1  # one type trap deep inside
    calls = 0
    original = walk.Walker.diff

    def counting(self: Any, a: Any, b: Any, node: Any) -> None:
        nonlocal calls
        calls += 1
        original(self, a, b, node)

    monkeypatch.setattr(walk.Walker, "diff", counting)
    report = compare(desired, live)
    assert [(i.path, i.kind.value) for i in report.items] == [("services.svc500.env.B[2]", "type_changed")]
    assert calls <= 6, f"the walk recursed {calls} times for one difference"


def test_subclass_and_foreign_types_take_the_exact_path() -> None:
    """marshal refuses subclasses; the walk then compares them by their base type."""

    class Text(str):
        pass

    class Number(int):
        pass

    desired = {"a": [Text("x"), Number(3)], "b": {"c": Number(1)}}
    assert compare(desired, {"a": ["x", 3], "b": {"c": 1}}).items == ()
    report = compare(desired, {"a": ["x", 3], "b": {"c": True}})
    assert [(i.path, i.kind.value) for i in report.items] == [("b.c", "type_changed")]
