"""A heal stops writing at its deadline: the Prefect task's timeout cannot stop the worker thread, so the
write loop itself checks the deadline before each write (issue 9, honest timeouts)."""

from __future__ import annotations

from typing import Any

from envsteward.scan.heal import execute_heals
from envsteward.scan.live import Deadline
from envsteward.scan.model import HealResult
from tests.unit.scan.test_heal_and_live import FP, MemorySource, plan, state


class SlowSource(MemorySource):
    """Each write takes 10 s of the fake monotonic clock."""

    def __init__(self, data: dict[str, Any], clock: list[float]) -> None:
        super().__init__(data)
        self.clock = clock

    def write(self, key_path: tuple[str, ...], value: Any) -> None:
        super().write(key_path, value)
        self.clock[0] += 10


def test_no_write_is_made_after_the_deadline() -> None:
    now = [0.0]
    source = SlowSource({"size": 2, "mode": "a", "tier": "x"}, now)
    result = plan(
        {"app": {"size": 3, "mode": "b", "tier": "y"}},
        {"app": {"size": 2, "mode": "a", "tier": "x"}},
        [state("mem", "app")],
    )
    deadline = Deadline(15, clock=lambda: now[0])

    outcomes = execute_heals(list(result.automatic), source, FP, None, deadline=deadline)

    assert len(source.writes) == 2  # at 0 s and 10 s; at 20 s the deadline (15 s) has passed
    assert [o.result for o in outcomes].count(HealResult.HEALED) == 2
    [late] = [o for o in outcomes if o.result is HealResult.FAILED]
    assert "deadline passed" in late.reason
