"""Prefect tasks for the ``rotate-secret`` and ``rotate-due-secrets`` flows: thin wrappers over
:mod:`envsteward.rotation`.

The steps touch secret values, so none of them persists a result or computes a cache key
(``persist_result=False``, ``NO_CACHE``); they take a *handle* to the rotation held in this process
(:mod:`envsteward.rotation.sessions`) and return value-free :class:`~envsteward.rotation.model.StepReport`
objects. ``create-pending`` and ``test-pending`` only read and stage, so they retry transient errors;
``set-pending`` (ALTER ROLE is idempotent) too; ``finish-rotation`` does not (a retried check-and-set
would conflict with its own first write) and ``restore-previous`` tries every part once and says what is
left.
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from envsteward.inventory.references import collect_references
from envsteward.inventory.runner import run_inventory
from envsteward.rotation import sessions
from envsteward.rotation.decisions import approval_for, plan_rotation
from envsteward.rotation.model import RotationPlan, Step, StepReport
from envsteward.rotation.render import plan_markdown
from envsteward.services import get_services

STEP_TIMEOUT_SECONDS = 120.0
"""Above the adapters' own timeouts (Vault 10 s, AWS 30 s read, PostgreSQL connect 5 s)."""


@task(
    name="plan-rotation",
    task_run_name="plan-{environment}-{reference}",
    persist_result=False,
    cache_policy=NO_CACHE,
)
def plan_secret_rotation(environment: str, reference: str) -> RotationPlan:
    """The rotation plan (no call but the catalog; the rotator is built to describe its steps, which builds
    clients only). Raises RotationRefusedError, CatalogError, ConfigurationError."""
    services = get_services()
    catalog = services.catalog()
    spec = catalog.environment(environment)
    usages = collect_references(spec, catalog.render(environment))
    rotation = services.rotator(environment, reference)
    return plan_rotation(spec, reference, usages, rotation.plan())


@task(name="publish-rotation-plan", persist_result=False, cache_policy=NO_CACHE)
def publish_rotation_plan(plan: RotationPlan, dry_run: bool) -> None:
    """The plan as a Markdown artifact (``rotation-<env>``)."""
    create_markdown_artifact(
        key=artifact_key("rotation", plan.environment),
        markdown=plan_markdown(plan, dry_run=dry_run),
        description=f"envsteward rotation plan: {plan.reference} in {plan.environment}",
    )


@task(name="audit-rotation", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def audit_rotation(
    plan: RotationPlan, run_id: str, action: str, details: dict[str, Any], actor: str | None = None
) -> int:
    """Append one ``rotation.*`` record (reference, kind, run id and ``details``; never a value)."""
    record = (
        get_services()
        .audit_log()
        .append(
            action,
            target=f"secret/{plan.reference}",
            environment=plan.environment,
            actor=actor,
            details={"run_id": run_id, "reference": plan.reference, "kind": plan.kind, **details},
        )
    )
    return record.seq


def _step(environment: str, reference: str, handle: str, step: Step) -> StepReport:
    if step is Step.CREATE:
        sessions.hold(handle, get_services().rotator(environment, reference))
    return sessions.get(handle).run(step)


@task(
    name="create-pending",
    task_run_name="create-{environment}-{reference}",
    **RETRY_TRANSIENT,
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def create_pending(environment: str, reference: str, handle: str) -> StepReport:
    """Step 1: generate the new value (the policy's length and alphabet) and stage it (Secrets Manager:
    ``AWSPENDING``). Reads the store."""

    sessions.drop(handle)  # a retry starts over (nothing current was changed by a failed create)
    return _step(environment, reference, handle, Step.CREATE)


@task(
    name="set-pending",
    task_run_name="set-{environment}-{reference}",
    **RETRY_TRANSIENT,
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def set_pending(environment: str, reference: str, handle: str) -> StepReport:
    """Step 2: set the new value where it is used (a PostgreSQL role: ALTER ROLE; idempotent)."""
    return _step(environment, reference, handle, Step.SET)


@task(
    name="test-pending",
    task_run_name="test-{environment}-{reference}",
    **RETRY_TRANSIENT,
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def test_pending(environment: str, reference: str, handle: str) -> StepReport:
    """Step 3: prove the new value works where it is used and the store still holds what was read."""
    return _step(environment, reference, handle, Step.TEST)


@task(
    name="finish-rotation",
    task_run_name="finish-{environment}-{reference}",
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def finish_rotation(environment: str, reference: str, handle: str) -> StepReport:
    """Step 4: make the new value current in its store (check-and-set) and read it back. No retry."""
    return _step(environment, reference, handle, Step.FINISH)


@task(
    name="restore-previous",
    task_run_name="restore-{environment}-{reference}",
    timeout_seconds=STEP_TIMEOUT_SECONDS,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def restore_previous(environment: str, reference: str, handle: str) -> str:
    """After a failed step: put the previous value back wherever the rotation changed something, and check
    it. Raises RestoreError naming what is left changed."""
    rotation = sessions.find(handle)
    if rotation is None:
        return "nothing was changed"
    return rotation.restore()


@task(name="find-overdue-secrets", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def find_overdue_secrets(environments: list[str] | None) -> list[dict[str, Any]]:
    """Every overdue reference per the secret inventory, with whether its rotation waits for approval:
    ``[{environment, reference, approval}]``. Calls every referenced store (metadata)."""
    services = get_services()
    catalog = services.catalog()
    found: list[dict[str, Any]] = []
    for inventory in run_inventory(services, environments):
        policy, _ = approval_for(catalog.environment(inventory.environment))
        found.extend(
            {"environment": s.environment, "reference": s.reference, "approval": policy is not None}
            for s in inventory.overdue()
        )
    return found
