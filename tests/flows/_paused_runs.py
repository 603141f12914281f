"""A flow run in a background thread that pauses in place for approval, and answering it (the promote and
rotate-secret flow tests share these)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any


class PausedFlowRun:
    """Runs ``flow`` with ``parameters`` in a daemon thread under a unique run name; appended to ``runs``
    (the test world's list, so teardown can answer a run left waiting)."""

    def __init__(self, flow: Any, name_prefix: str, runs: list[Any], **parameters: Any) -> None:
        self.name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        named = flow.with_options(flow_run_name=self.name)

        def target() -> None:
            try:
                self.result = named(**parameters)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        runs.append(self)
        self.thread.start()

    def flow_run(self) -> Any:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[self.name]))
            )
        return runs[0] if runs else None

    def wait_paused(self, gate: int, timeout: float = 60) -> uuid.UUID:
        """Wait until the run waits at approval gate ``gate``; its id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.flow_run()
            state = run.state if run is not None else None
            if (
                state is not None
                and state.is_paused()
                and state.state_details.pause_key == f"approval-{gate}"
            ):
                return run.id
            if not self.thread.is_alive():
                raise AssertionError(f"the flow ended before gate {gate}: {self.error!r} {self.result!r}")
            time.sleep(0.2)
        raise AssertionError(f"the flow did not pause at gate {gate} in {timeout} s")

    def finish(self, timeout: float = 120) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the flow did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def answer(run_id: uuid.UUID, decision: str, reviewer: str, comment: str = "") -> None:
    """Resume a paused run with an approval form answer (as the UI's Resume button does)."""
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run_id, run_input={"decision": decision, "reviewer": reviewer, "comment": comment})
