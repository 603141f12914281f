"""The approval gate shared by the flows that wait for a person (promote, rotate-secret).

One Resume form and one wait. From a deployment the run *suspends* (no worker is held; it re-runs from the
start when resumed and reads its cached steps); run locally it *pauses* in place and asks the API every
``poll_interval`` seconds. What an answer means is the core's decision
(:class:`envsteward.promotion.approval.ApprovalSession`); this module only waits for it.
"""

from __future__ import annotations

import math
from typing import Literal

from envsteward.tasks.promotion import resume_after_local_timeout
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from envsteward.promotion.approval import Answer


class ApprovalForm(RunInput):
    """The Resume form: approve or reject the request described above."""

    decision: Literal["approve", "reject"] = Field(description="approve or reject the promotion")
    reviewer: str = Field(description="your name, as on the target's approver list")
    comment: str = Field(default="", description="why (recorded in the audit log)")


def wait_for_answer(description: str, key: str, seconds_left: float, *, poll_interval: int) -> Answer | None:
    """Wait at one gate (``key``: ``approval-N``) with ``description`` above the form; None when the deadline
    passes. A local pause that ran out is put back to Running, so the flow can record the timeout and end
    in its own named state instead of Prefect's "never resumed". Calls the Prefect API."""
    from prefect.runtime import deployment

    form = ApprovalForm.with_initial_data(description=description)
    timeout = max(1, math.ceil(seconds_left))
    try:
        if deployment.id:
            response = suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
        else:
            response = pause_flow_run(
                wait_for_input=form, timeout=timeout, poll_interval=poll_interval, key=key
            )
    except FlowPauseTimeout:
        if not deployment.id:
            resume_after_local_timeout()
        return None
    return Answer(decision=response.decision, reviewer=response.reviewer, comment=response.comment)
