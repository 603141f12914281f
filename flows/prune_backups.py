"""The prune flow: apply every target's retention policy to its backups in both regions.

Runbook:
1. Plan (reads only): the complete backups of the primary and DR stores, grouped by target; restic's
   forget policy per target with the safety floor (the newest and the newest drill-verified backup are
   always kept; an empty policy removes nothing).
2. Publish the plan as the ``prune-plan`` artifact and log it: what goes, where, and why the rest stays,
   BEFORE anything is removed.
3. Unless ``dry_run``: remove the planned backups in each region that holds them; one ``backup.pruned``
   audit record per backup.
4. Clean up what interrupted backups left behind (temp files, unfinished multipart uploads, data without a
   manifest) once older than the backup timeout plus an hour, as ``envsteward backup prune`` does.
5. Return the JSON summary; the run ends Failed (same result) when a deletion failed.

Scheduled daily by ``prefect.yaml`` (deployment ``prune-backups``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.backup import (
    clean_leftovers_task,
    execute_prune_task,
    plan_prune_task,
    write_prune_artifact,
)
from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State

from envsteward.backup.leftovers import LeftoverReport
from envsteward.backup.prune import prune_summary


@flow(name="prune-backups", description="Apply retention to backups in both regions (plan, print, delete).")
def prune_backups(dry_run: bool = False) -> State[Any]:
    """Prune backups by each target's retention policy; with ``dry_run`` only plan and publish the plan.

    Returns a Completed state whose result is the JSON summary, or a Failed one when a deletion failed.
    Raises IntegrityError (a damaged manifest stops the plan before anything is removed) and the stores'
    errors.
    """
    logger = get_run_logger()
    plan = plan_prune_task()
    for line in plan.render_text():
        logger.info("%s", line)
    write_prune_artifact(plan, dry_run)
    result = execute_prune_task(plan) if not dry_run and plan.to_remove else None
    leftovers = clean_leftovers_task(dry_run)
    for line in leftovers.render_text():
        logger.info("%s", line)
    summary = prune_summary(plan, result, dry_run=dry_run)
    summary["leftovers"] = leftovers.as_json()
    summary["ok"] = summary["ok"] and leftovers.ok
    if result is None:
        return _leftover_state(leftovers, f"{len(plan.to_remove)} backup(s) would be removed", summary)
    if not result.ok:
        return Failed(message=f"{len(result.failed)} backup(s) could not be removed", data=summary)
    return _leftover_state(leftovers, f"{len(result.removed)} backup(s) removed", summary)


def _leftover_state(leftovers: LeftoverReport, message: str, summary: dict[str, Any]) -> State[Any]:
    if leftovers.cleanup is not None and not leftovers.cleanup.ok:
        return Failed(
            message=f"{len(leftovers.cleanup.failed)} leftover(s) could not be removed", data=summary
        )
    removed = len(leftovers.cleanup.removed) if leftovers.cleanup is not None else 0
    return Completed(message=f"{message}; {removed} leftover(s) removed", data=summary)
