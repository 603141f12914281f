"""Per-system concurrency slots (``envsteward.tasks.limits``) against a real Prefect API (test harness):
a limit of 1 serialises two tasks that call the same system; a limit that does not exist neither blocks
nor fails (the embedded default never creates them); disabled, no slot is asked for."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from envsteward.services import Services, set_services
from envsteward.settings import LimitsSettings, Settings

pytestmark = pytest.mark.usefixtures("prefect_harness")

HOLD_SECONDS = 1.0
MEET_DEADLINE_SECONDS = 30.0


class _Overlap:
    """Counts how many tasks are inside the slot at once.

    A task inside waits until the other one is inside too (``meet``), up to a deadline, instead of holding
    for a fixed time: on a loaded machine one task's slot request can take longer than any fixed hold, which
    made "both were inside at once" depend on timing. Serialised tasks never meet and give ``most == 1``."""

    def __init__(self, meet: bool) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.meet = meet

    def enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    async def hold(self) -> None:
        if not self.meet:
            await asyncio.sleep(HOLD_SECONDS)
            return
        deadline = time.monotonic() + MEET_DEADLINE_SECONDS
        while self.most < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1


def _run_two_vault_calls(overlap: _Overlap) -> tuple[float, Any]:
    from envsteward.tasks.limits import system_slots
    from prefect import flow, task

    @task
    async def call_vault() -> list[str]:
        async with system_slots(["vault", None]) as names:
            overlap.enter()
            await overlap.hold()
            overlap.leave()
            return names

    @flow
    async def two_calls() -> list[list[str]]:
        return list(await asyncio.gather(call_vault(), call_vault()))

    started = time.monotonic()
    names = asyncio.run(two_calls())
    return time.monotonic() - started, names


@pytest.fixture
def limits_prefix() -> Iterator[str]:
    yield f"es-test-{secrets.token_hex(4)}-"
    set_services(None)


def _use(limits: LimitsSettings) -> None:
    set_services(Services(Settings(limits=limits)))


def test_a_limit_of_one_lets_one_vault_call_in_at_a_time(limits_prefix: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    async def create() -> None:
        async with get_client() as client:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=f"{limits_prefix}vault", limit=1)
            )

    asyncio.run(create())
    _use(LimitsSettings(enabled=True, prefix=limits_prefix))
    overlap = _Overlap(meet=False)  # both would be inside at once if the limit let them
    elapsed, names = _run_two_vault_calls(overlap)
    assert names == [[f"{limits_prefix}vault"]] * 2
    assert overlap.most == 1, "both tasks were inside the vault limit at once"
    assert elapsed >= 2 * HOLD_SECONDS


def test_a_missing_limit_neither_blocks_nor_fails(limits_prefix: str) -> None:
    _use(LimitsSettings(enabled=True, prefix=limits_prefix))  # nobody created es-test-...-vault
    overlap = _Overlap(meet=True)
    _, names = _run_two_vault_calls(overlap)
    assert names == [[f"{limits_prefix}vault"]] * 2, "the slot was asked for"
    assert overlap.most == 2, "a missing limit must not serialise anything"


def test_disabled_limits_ask_for_no_slot(limits_prefix: str) -> None:
    _use(LimitsSettings(enabled=False, prefix=limits_prefix))
    overlap = _Overlap(meet=True)
    _, names = _run_two_vault_calls(overlap)
    assert names == [[], []]
    assert overlap.most == 2
