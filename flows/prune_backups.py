"""The prune flow: apply every target's retention policy to its backups in both regions.

Runbook:
1. Plan (reads only): the complete backups of the primary and DR stores, grouped by target; restic's
   forget policy per target with the safety floor (the newest and the newest drill-verified backup are
   always kept; an empty policy removes nothing).
2. Publish the plan as the ``prune-plan`` artifact and log it: what goes, where, and why the rest stays,
   BEFORE anything is removed.
3. Unless ``dry_run``: remove the planned backups in each region that holds them; one ``backup.pruned``
   audit record per backup.
4. Return the JSON summary; the run ends Failed (same result) when a deletion failed.

Scheduled daily by ``prefect.yaml`` (deployment ``prune-backups``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.backup import execute_prune_task, plan_prune_task, write_prune_artifact
from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State

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
    if dry_run or not plan.to_remove:
        summary = prune_summary(plan, None, dry_run=dry_run)
        return Completed(message=f"{len(plan.to_remove)} backup(s) would be removed", data=summary)
    result = execute_prune_task(plan)
    summary = prune_summary(plan, result, dry_run=False)
    if not result.ok:
        return Failed(message=f"{len(result.failed)} backup(s) could not be removed", data=summary)
    return Completed(message=f"{len(result.removed)} backup(s) removed", data=summary)
