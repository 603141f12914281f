"""The drill's phase bookkeeping: a retried phase keeps its first start and replaces its earlier outcome
(the flow retries phases on transient errors); the first failed phase, in runbook order, is the drill's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from envsteward.drill import Drill, PhaseName
from envsteward.drill.model import StepResult
from envsteward.errors import TransientError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def drill() -> Drill:
    fake: Any = None
    return Drill(
        drill_id="drill-x",
        short_id="x",
        env_spec=fake,
        stores=fake,
        region="dr",
        requested="latest",
        target=None,
        started=T0,
        clock=Ticks(),
    )


def test_a_retried_phase_replaces_its_failed_attempt_and_keeps_its_first_start() -> None:
    subject = drill()
    with pytest.raises(TransientError), subject.phase(PhaseName.CHOOSE):
        raise TransientError("store unreachable", system="s3")
    assert subject.failed is not None
    assert subject.failed.name is PhaseName.CHOOSE
    first_start = subject.phases[0].started_at

    with subject.phase(PhaseName.CHOOSE):
        pass

    [timing] = subject.phases
    assert timing.result is StepResult.OK
    assert timing.started_at == first_start
    assert subject.failed is None


def test_the_first_failed_phase_in_runbook_order_is_the_drills_and_messages_are_safe() -> None:
    subject = drill()
    with pytest.raises(ValueError, match="secret"), subject.phase(PhaseName.RESTORE):
        raise ValueError("vendor text quoting a secret")
    with pytest.raises(RuntimeError), subject.phase(PhaseName.TEARDOWN):
        raise RuntimeError("later")
    assert [p.name for p in subject.phases] == [PhaseName.RESTORE, PhaseName.TEARDOWN]
    assert subject.failed is not None
    assert subject.failed.name is PhaseName.RESTORE
    assert "secret" not in subject.failed.detail
