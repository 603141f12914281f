"""Emit envsteward's events to Prefect (``prefect.events.emit_event``), the environment a related resource.

The names and the payload rules live in :mod:`envsteward.status.events` (no value, no secret, no free
text). Emitting never fails a flow: an event that cannot be sent is logged and dropped (the state change
itself is recorded, alerted and audited elsewhere).

Promotion events, one line each where the promote flow reaches the state (``flows/promote.py``)::

    awaiting_approval(source, target, run_id, requested_by)   # a task cached per run: once per run
    emit_promotion_applied(source, target, run_id, changes=len(plan.changes))
    emit_promotion_rolled_back(source, target, run_id, keys_left=len(keys_left))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.events import emit_event

from envsteward.status import events as ev
from envsteward.status.events import StatusEvent

_log = logging.getLogger("envsteward.events")


def emit(event: StatusEvent) -> str | None:
    """Send one event; return its id (None when Prefect has no events client, or sending failed).
    Calls the Prefect API (events)."""
    try:
        emitted = emit_event(
            event=event.name,
            resource=event.resource(),
            related=event.related(),  # type: ignore[arg-type]
            payload=event.full_payload(),
        )
    except Exception as exc:  # noqa: BLE001 - an event must never fail the run that changed the state
        _log.warning("event %s for %s not emitted: %s", event.name, event.environment, type(exc).__name__)
        return None
    return str(emitted.id) if emitted is not None else None


@task(name="emit-events", persist_result=False)
def emit_events(events: Sequence[StatusEvent]) -> int:
    """Emit every event of a flow run's state changes; return how many were sent. Calls the Prefect API."""
    return sum(1 for event in events if emit(event) is not None)


def _once_per_run(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return f"envsteward-promote-{context.task_run.flow_run_id}-event-awaiting-approval"


@task(name="emit-awaiting-approval", persist_result=True, cache_key_fn=_once_per_run)
def awaiting_approval(source: str, target: str, run_id: str, requested_by: str) -> str | None:
    """``envsteward.promotion.awaiting-approval``, once per run: a suspended run re-runs from the start
    when it is resumed and reads this task's cached result instead of emitting again. Calls the Prefect
    API (events)."""
    return emit_promotion_awaiting_approval(source, target, run_id, requested_by)


def _link(run_id: str) -> str | None:
    from envsteward.tasks.status_view import run_link

    return run_link(run_id)


def emit_promotion_awaiting_approval(source: str, target: str, run_id: str, requested_by: str) -> str | None:
    """``envsteward.promotion.awaiting-approval``: the run waits at its approval gate (link: its page)."""
    return emit(
        StatusEvent(
            name=ev.PROMOTION_AWAITING_APPROVAL,
            environment=target,
            subject=run_id,
            payload={
                "source": source,
                "target": target,
                "run_id": run_id,
                "requested_by": requested_by,
                "link": _link(run_id),
            },
        )
    )


def emit_promotion_applied(source: str, target: str, run_id: str, changes: int) -> str | None:
    """``envsteward.promotion.applied``: the plan was applied and verified (``changes``: how many keys)."""
    return emit(
        StatusEvent(
            name=ev.PROMOTION_APPLIED,
            environment=target,
            subject=run_id,
            payload={
                "source": source,
                "target": target,
                "run_id": run_id,
                "changes": changes,
                "link": _link(run_id),
            },
        )
    )


def emit_promotion_rolled_back(source: str, target: str, run_id: str, keys_left: int = 0) -> str | None:
    """``envsteward.promotion.rolled-back``: the target was restored from the journal (``keys_left`` > 0:
    the rollback is still pending for that many keys)."""
    return emit(
        StatusEvent(
            name=ev.PROMOTION_ROLLED_BACK,
            environment=target,
            subject=run_id,
            severity="critical" if keys_left else "high",
            payload={
                "source": source,
                "target": target,
                "run_id": run_id,
                "keys_left": keys_left,
                "link": _link(run_id),
            },
        )
    )
