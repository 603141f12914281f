"""The promotion path: environments linked by ``promotes_to`` form one line, from lower to higher tier."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from envsteward.catalog.cross_checks import EnvEntry
from envsteward.catalog.models import TIER_RANK
from envsteward.catalog.problems import ProblemSink
from envsteward.catalog.yamlio import YamlFile
from envsteward.tree import format_path


def check_promotion_path(
    sink: ProblemSink, doc: YamlFile, entries: Sequence[EnvEntry]
) -> tuple[str, ...] | None:
    """The environments in promotion order, or None (with problems reported to ``sink``) when the path is
    broken."""
    nodes: dict[str, EnvEntry] = {}
    for entry in entries:
        if entry.name is not None and entry.name not in nodes:
            nodes[entry.name] = entry
    if not nodes:
        return None
    targets: dict[str, str | None] = {}
    broken = False
    for name, entry in nodes.items():
        target = entry.raw.get("promotes_to")
        where = ("environments", entry.index, "promotes_to")
        if target is not None and not isinstance(target, str):
            broken = True  # a type error, reported by validation
            continue
        if target is not None and target not in nodes:
            sink.add(
                doc.display,
                doc.line_of(where),
                format_path(where),
                f"unknown environment {target!r}; known: {', '.join(nodes)}",
            )
            broken = True
            continue
        targets[name] = target
    if broken:
        return None
    return _walk_promotion_path(sink, doc, nodes, targets)


def _walk_promotion_path(
    sink: ProblemSink, doc: YamlFile, nodes: Mapping[str, EnvEntry], targets: Mapping[str, str | None]
) -> tuple[str, ...] | None:
    def where(name: str) -> tuple[int, str]:
        path = ("environments", nodes[name].index, "promotes_to")
        return doc.line_of(path), format_path(path)

    ok = True
    incoming: dict[str, list[str]] = {}
    for name, target in targets.items():
        if target is not None:
            incoming.setdefault(target, []).append(name)
    for target, sources in incoming.items():
        for extra in sources[1:]:
            line, field_name = where(extra)
            sink.add(
                doc.display,
                line,
                field_name,
                f"{sources[0]!r} already promotes to {target!r}: the promotion path is a single line, "
                "each environment has at most one predecessor",
            )
            ok = False
    reported: set[frozenset[str]] = set()
    for start in targets:
        walk: list[str] = []
        current: str | None = start
        while current is not None and current not in walk:
            walk.append(current)
            current = targets[current]
        if current is None:
            continue
        cycle = walk[walk.index(current) :]
        if frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        closing = max(cycle, key=lambda name: nodes[name].index)
        line, field_name = where(closing)
        loop = " -> ".join([*cycle, cycle[0]])
        sink.add(
            doc.display,
            line,
            field_name,
            f"the promotion path has a cycle: {loop}; "
            "the last environment on the path must not set promotes_to",
        )
        ok = False
    if not ok:
        return None
    starts = [name for name in targets if name not in incoming]
    chains: list[list[str]] = []
    for start in starts:
        chain: list[str] = []
        current = start
        while current is not None:
            chain.append(current)
            current = targets[current]
        chains.append(chain)
    if len(chains) > 1:
        first_end = chains[0][-1]
        described = " and ".join(repr(" -> ".join(chain)) for chain in chains)
        line = doc.line_of(("environments", nodes[first_end].index))
        sink.add(
            doc.display,
            line,
            format_path(("environments", nodes[first_end].index)),
            f"the promotion path has a gap: {described} are not connected; "
            f"set promotes_to on {first_end!r} (to {chains[1][0]!r}) "
            "so that every environment is on one path",
        )
        return None
    path = tuple(chains[0])
    for name, target in itertools.pairwise(path):
        here, there = nodes[name].spec, nodes[target].spec
        if here is not None and there is not None and TIER_RANK[here.tier] > TIER_RANK[there.tier]:
            line, field_name = where(name)
            sink.add(
                doc.display,
                line,
                field_name,
                f"{name!r} ({here.tier}) promotes to {target!r} ({there.tier}): changes must flow "
                "from lower to higher tiers (development -> staging -> production)",
            )
            ok = False
    return path if ok else None
