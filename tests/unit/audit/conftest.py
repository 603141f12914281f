"""Shared helpers for the audit unit tests: an in-memory sink (a fake of the AuditSink port) and a clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from envsteward.audit import AuditLog


class MemorySink:
    """Implements the AuditSink port in memory with the same compare-and-append rule as the real sinks."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.append_calls = 0

    def append_line(self, expected_sequence: int, line: str) -> bool:
        self.append_calls += 1
        last = json.loads(self.lines[-1])["seq"] if self.lines else 0
        if last != expected_sequence - 1:
            return False
        self.lines.append(line)
        return True

    def read_lines(self) -> Iterator[str]:
        return iter(list(self.lines))


class StepClock:
    """A clock that starts at ``start`` and moves one minute per call."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        current = self.now
        self.now += timedelta(minutes=1)
        return current


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def log(sink: MemorySink, clock: StepClock) -> AuditLog:
    return AuditLog(sink, "alice", clock=clock)


def fill(log: AuditLog, count: int, environment: str = "staging") -> None:
    for index in range(count):
        log.append("drift.healed", target=f"app/key{index}", environment=environment, details={"n": index})


ChainFactory = Callable[[int], list[str]]


@pytest.fixture
def chain(sink: MemorySink, log: AuditLog) -> ChainFactory:
    """``chain(n)`` returns the stored lines of a valid n-record chain."""

    def make(count: int) -> list[str]:
        fill(log, count)
        return list(sink.lines)

    return make
