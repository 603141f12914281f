"""Deterministic inputs for the drift benchmark: a desired configuration of N leaves and a live copy with
a given fraction of drifted leaves.

Shape (20 leaves per service, 100 services per team)::

    {"teams": {"team-0000": {"owner": null, "services": {"svc-000000": {
        "image": "registry/app-0:1.2.3", "replicas": 3, "cpu": 0.5, "enabled": true, "owner": null,
        "ports": [8000, 8001, 8002], "limits": {"memory": "512Mi", "timeout": 30.0},
        "env": {"VAR_0": "value-0", ... "VAR_7": "value-7"}, "tags": ["tier-1", "team-0"]}}}}}

Drift, spread uniformly over services: 60 % value changes of the same type, 15 % type changes that
Python's ``==`` calls equal (``3`` -> ``3.0``, ``true`` -> ``1``), 10 % removed keys, 15 % added keys.
The live copy is a pickle round trip, so it shares no objects with the desired side.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

LEAVES_PER_SERVICE = 20
SERVICES_PER_TEAM = 100
_DICT_LEAVES = ("image", "replicas", "cpu", "enabled", "owner")


def _service(i: int) -> dict[str, Any]:
    return {
        "image": f"registry.example.com/app-{i}:1.{i % 7}.{i % 13}",
        "replicas": 1 + i % 5,
        "cpu": 0.25 * (1 + i % 4),
        "enabled": i % 3 != 0,
        "owner": None,
        "ports": [8000 + i % 100, 9000 + i % 100, 10000 + i % 100],
        "limits": {"memory": f"{256 * (1 + i % 4)}Mi", "timeout": 30.0 + i % 3},
        "env": {f"VAR_{j}": f"value-{i}-{j}" for j in range(8)},
        "tags": [f"tier-{i % 3}", f"team-{i // SERVICES_PER_TEAM}"],
    }


def desired_config(leaves: int) -> dict[str, Any]:
    """A configuration with ``leaves`` leaves (rounded down to whole services)."""
    services = max(1, leaves // LEAVES_PER_SERVICE)
    teams: dict[str, Any] = {}
    for i in range(services):
        team = teams.setdefault(f"team-{i // SERVICES_PER_TEAM:04d}", {"services": {}})
        team["services"][f"svc-{i:06d}"] = _service(i)
    return {"version": 1, "teams": teams}


def _mutate(service: dict[str, Any], rng: random.Random, n: int) -> None:
    roll = rng.random()
    if roll < 0.60:  # value change, same type
        what = rng.choice(("image", "replicas", "cpu", "enabled", "port", "env", "limit"))
        if what in ("image", "replicas", "cpu", "enabled") and what not in service:
            service[f"extra_{n}"] = n
        elif what == "image":
            service["image"] += "-hotfix"
        elif what == "replicas":
            service["replicas"] += 1
        elif what == "cpu":
            service["cpu"] += 0.125
        elif what == "enabled":
            service["enabled"] = not service["enabled"]
        elif what == "port":
            service["ports"][rng.randrange(3)] += 1
        elif what == "env":
            service["env"][f"VAR_{rng.randrange(8)}"] = f"changed-{n}"
        else:
            service["limits"]["memory"] = "4Gi"
    elif roll < 0.75:  # type change that == calls equal
        key, cast = ("replicas", float) if rng.random() < 0.5 else ("enabled", int)
        if key in service:
            service[key] = cast(service[key])
        else:
            service[f"extra_{n}"] = n
    elif roll < 0.85:
        service.pop(rng.choice(_DICT_LEAVES), None)
    else:
        service[f"extra_{n}"] = n


def live_config(desired: dict[str, Any], drift: float, seed: int = 7) -> tuple[dict[str, Any], int]:
    """A deep copy of ``desired`` with about ``drift`` of its leaves drifted; returns it and the number of
    mutations applied."""
    live: dict[str, Any] = pickle.loads(pickle.dumps(desired, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
    services = [svc for team in live["teams"].values() for svc in team["services"].values()]
    rng = random.Random(seed)
    count = max(1, round(len(services) * LEAVES_PER_SERVICE * drift))
    for n in range(count):
        _mutate(rng.choice(services), rng, n)
    return live, count


def count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(count_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_leaves(v) for v in value)
    return 1
