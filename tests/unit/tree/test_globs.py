"""Path rendering, glob parsing, and the incremental GlobSet against the plain recursive matcher."""

from __future__ import annotations

import random

import pytest

from envsteward.tree import GlobError, GlobSet, Keyed, Segment, parse_glob
from envsteward.tree import format_path as render


@pytest.mark.parametrize(
    ("segments", "text"),
    [
        ((), ""),
        (("a", "b", "c"), "a.b.c"),
        (("hosts", 2), "hosts[2]"),
        (("services", Keyed("name", "api"), "port"), "services[name=api].port"),
        (("ids", Keyed("id", 7)), "ids[id=7]"),
        (("ids", Keyed("id", "7")), 'ids[id="7"]'),
        (("flags", Keyed("on", True)), "flags[on=true]"),
        (("labels", "app.kubernetes.io/name"), 'labels["app.kubernetes.io/name"]'),
        (("a", "with space", "b"), 'a["with space"].b'),
        (("", "x"), '[""].x'),
        ((0, "a"), "[0].a"),
    ],
)
def test_render(segments: tuple[Segment, ...], text: str) -> None:
    assert render(segments) == text


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("a.b", ("a", "b"), True),
        ("a.b", ("a", "b", "c"), False),
        ("a.*", ("a", "b"), True),
        ("a.*", ("a", 0), False),
        ("a[*]", ("a", 0), True),
        ("a[*]", ("a", Keyed("name", "x")), True),
        ("a[*]", ("a", "b"), False),
        ("**", (), True),
        ("**", ("a", 1, "b"), True),
        ("**.password", ("db", "password"), True),
        ("**.password", ("password",), True),
        ("database.**", ("database",), True),
        ("database.**", ("database", "pool", "max"), True),
        ("database.**", ("databases",), False),
        ("env.*_PASSWORD", ("env", "DB_PASSWORD"), True),
        ("env.*_PASSWORD", ("env", "DB_USER"), False),
        ("a[2]", ("a", 2), True),
        ("a[2]", ("a", 3), False),
        ("s[name=api].port", ("s", Keyed("name", "api"), "port"), True),
        ("s[name=api].port", ("s", Keyed("name", "web"), "port"), False),
        ("s[name=*].port", ("s", Keyed("name", "web"), "port"), True),
        ("s[name=*].port", ("s", 0, "port"), False),
        ("ids[id=1]", ("ids", Keyed("id", 1)), True),
        ("ids[id=1]", ("ids", Keyed("id", True)), False),
        ('ids[id="1"]', ("ids", Keyed("id", "1")), True),
        ('ids[id="1"]', ("ids", Keyed("id", 1)), False),
        ('labels["app.kubernetes.io/name"]', ("labels", "app.kubernetes.io/name"), True),
        ("a.**.z", ("a", "z"), True),
        ("a.**.z", ("a", "b", 3, "z"), True),
        ("a.**.z", ("a", "b", "y"), False),
    ],
)
def test_glob_matching(glob: str, path: tuple[Segment, ...], matches: bool) -> None:
    parsed = parse_glob(glob)
    assert parsed.matches(path) is matches
    globset = GlobSet([parsed])
    states = globset.start
    for segment in path:
        states = globset.step(states, segment)
    assert (globset.accepting(states) == (0,)) is matches


@pytest.mark.parametrize(
    "bad", ["", "   ", "a..b", ".a", "a.", "a[", "a[x]", "a[=1]", 'a["unterminated]', "a b", "a]"]
)
def test_malformed_globs_are_rejected(bad: str) -> None:
    with pytest.raises(GlobError):
        parse_glob(bad)


def test_specificity_orders_literal_before_partial_before_wildcards() -> None:
    order = ["a.b.c", "a.b.c*", "a.b.*", "a.**.c", "**.c", "**"]
    specs = [parse_glob(g).specificity for g in order]
    assert specs == sorted(specs, reverse=True)


def _random_segment(rng: random.Random) -> Segment:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(["a", "b", "ab", "port", "x_PASSWORD"])
    if roll < 0.8:
        return rng.randint(0, 2)
    return Keyed("name", rng.choice(["api", "web", 1]))


GLOB_PARTS = ["a", "b", "*", "**", "[*]", "[1]", "[name=api]", "[name=*]", "*_PASSWORD", "a*"]


def _random_glob(rng: random.Random) -> str:
    text = ""
    for _ in range(rng.randint(1, 4)):
        part = rng.choice(GLOB_PARTS)
        if part.startswith("["):
            text += part if text else "a" + part
        else:
            text += ("." if text else "") + part
    return text


@pytest.mark.parametrize("seed", range(60))
def test_globset_agrees_with_the_recursive_matcher(seed: int) -> None:
    rng = random.Random(seed)
    globs = [parse_glob(_random_glob(rng)) for _ in range(6)]
    globset = GlobSet(globs)
    for _ in range(80):
        path = tuple(_random_segment(rng) for _ in range(rng.randint(0, 5)))
        states = globset.start
        for segment in path:
            states = globset.step(states, segment)
        expected = tuple(i for i, g in enumerate(globs) if g.matches(path))
        assert globset.accepting(states) == expected, (path, [g.text for g in globs])
