"""The rotate-due-secrets flow: every overdue secret (per the secret inventory) rotated, one run each.

Runbook:
1. ``find-overdue-secrets``: the inventory's overdue references of the chosen environments (all by default).
2. Development and staging: a ``rotate-secret`` subflow per secret, run now; a failed one is reported and
   the others go on.
3. Production: a ``rotate-secret`` run per secret started from its deployment (``run_deployment``, not
   awaited): each waits, suspended, for its own approvals.
4. Return what was rotated, started and failed; the run fails at the end when any rotation failed.

Scheduled daily by ``prefect.yaml`` (deployment ``rotate-due-secrets``).
"""

from __future__ import annotations

from typing import Any

from envsteward.flows.rotate_secret import rotate_secret
from envsteward.tasks.common import RETRY_TRANSIENT
from envsteward.tasks.secret_rotation import find_overdue_secrets
from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment

from envsteward.errors import PermanentError
from envsteward.scan.live import describe_failure

ROTATE_DEPLOYMENT = "rotate-secret/rotate-secret"


class DueRotationsFailedError(PermanentError):
    """At least one overdue secret could not be rotated (each is named; the others went on)."""


@task(
    name="start-approval-rotation",
    task_run_name="start-{environment}-{reference}",
    **RETRY_TRANSIENT,
    persist_result=False,
)
def start_rotation_run(deployment: str, environment: str, reference: str) -> str:
    """Start a ``rotate-secret`` run of ``deployment`` for one production secret (it waits for approval
    there); returns its flow run id. Calls the Prefect API."""
    run = run_deployment(
        deployment,
        parameters={
            "environment": environment,
            "reference": reference,
            "requested_by": "rotate-due-secrets",
            "reason": "overdue per the secrets policy",
        },
        timeout=0,
        as_subflow=False,
    )
    return str(run.id)


@flow(name="rotate-due-secrets", description="Rotate every overdue secret; production through approval.")
def rotate_due_secrets(
    environments: list[str] | None = None, deployment: str = ROTATE_DEPLOYMENT
) -> dict[str, Any]:
    """Rotate the overdue secrets of ``environments`` (all when None).

    Returns ``{"rotated": [...], "awaiting_approval": [...], "failed": [...]}`` (references and reasons; no
    values). Raises DueRotationsFailedError after every secret was tried when any failed.
    """
    logger = get_run_logger()
    rotated: list[str] = []
    waiting: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    for item in find_overdue_secrets(environments):
        env, ref = item["environment"], item["reference"]
        label = f"{env}: {ref}"
        if item["approval"]:
            started = start_rotation_run(deployment, env, ref, return_state=True)
            if started.is_completed():
                waiting.append({"secret": label, "flow_run_id": started.result()})
            else:
                failed.append(
                    {"secret": label, "error": describe_failure(started.result(raise_on_failure=False))}
                )
            continue
        state = rotate_secret.with_options(flow_run_name=f"rotate-{env}-{ref}")(
            env,
            ref,
            requested_by="rotate-due-secrets",
            reason="overdue per the secrets policy",
            return_state=True,
        )
        if state.is_completed():
            rotated.append(label)
        else:
            failed.append({"secret": label, "error": describe_failure(state.result(raise_on_failure=False))})
    for failure in failed:
        logger.error("rotation of %s failed: %s", failure["secret"], failure["error"])
    summary = {"rotated": rotated, "awaiting_approval": waiting, "failed": failed}
    if failed:
        raise DueRotationsFailedError(
            f"{len(failed)} of {len(rotated) + len(waiting) + len(failed)} overdue secret(s) not rotated: "
            + "; ".join(f"{f['secret']} ({f['error']})" for f in failed),
            system="rotation",
        )
    return summary
