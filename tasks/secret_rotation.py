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

from datetime import UTC, datetime, timedelta
from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, TRANSIENT_RETRIES, artifact_key
from envsteward.tasks.limits import system_slots_sync
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from envsteward.inventory.references import collect_references
from envsteward.inventory.runner import run_inventory
from envsteward.limits import system_for_scheme
from envsteward.ports import Notification, Severity
from envsteward.rotation import journal as rotation_journal
from envsteward.rotation import sessions
from envsteward.rotation.decisions import approval_for, parse_reference, plan_rotation
from envsteward.rotation.model import RotationPlan, Step, StepReport
from envsteward.rotation.render import plan_markdown
from envsteward.services import get_services

STEP_TIMEOUT_SECONDS = 120.0
"""Above the adapters' own timeouts (Vault 10 s, AWS 30 s read, PostgreSQL connect 5 s)."""
LONGEST_ROTATION = timedelta(seconds=STEP_TIMEOUT_SECONDS * (4 * (1 + TRANSIENT_RETRIES) + 1) + 300)
"""Every step's attempts at their timeout, the restore, and a margin for retry waits: a run whose journal
is older than this is dead whatever the API says (a killed worker's run can stay Running)."""


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
    # a slot of the store's limit (envsteward-vault, -ssm, -secretsmanager) when limits are on
    with system_slots_sync([system_for_scheme(parse_reference(reference).scheme)]):
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


@task(name="claim-rotation", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def claim_rotation(plan: RotationPlan, run_id: str) -> str | None:
    """Record this run's rotation in the shared journal before any step (the secret's lease, and what a
    sweep needs if this process dies). A dead run's journal of the same secret is taken over and repaired
    first: the consumer is set to what the store holds as current. Returns a line describing that repair,
    or None. Raises RotationInProgressError (a live run rotates it), RestoreError (the repair failed: the
    journal stays for the sweep). Calls the state store, the Prefect API, and for a repair the store and
    the consumer."""
    from envsteward.tasks.promotion import run_is_active

    services = get_services()
    store = services.state_store()
    mine = rotation_journal.new_journal(
        environment=plan.environment,
        reference=plan.reference,
        kind=plan.kind,
        run_id=run_id,
        has_consumer=plan.kind == "postgres_role",
        now=datetime.now(UTC),
        longest_run=LONGEST_ROTATION,
    )
    stale = rotation_journal.claim(store, mine, now=datetime.now(UTC), is_active=run_is_active)
    if stale is None or not stale.needs_resync:
        return None if stale is None else f"took over {stale.describe()} (nothing to repair)"
    detail = services.rotator(plan.environment, plan.reference).resync()
    rotation_journal.mark_resynced(store, plan.environment, plan.reference, run_id)
    return f"repaired {stale.describe()}: {detail}"


@task(name="journal-set-step", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def journal_set_step(plan: RotationPlan, run_id: str) -> None:
    """Before the set step: record that the consumer may receive a value only this process knows. Calls
    the state store."""
    rotation_journal.mark_consumer_touched(
        get_services().state_store(), plan.environment, plan.reference, run_id
    )


@task(name="close-rotation", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def close_rotation(plan: RotationPlan, run_id: str) -> bool:
    """The rotation ended with the consumer and the store agreeing (finished, or restored): remove its
    journal. Calls the state store."""
    return rotation_journal.close(get_services().state_store(), plan.environment, plan.reference, run_id)


@task(name="sweep-rotations", persist_result=False, cache_policy=NO_CACHE)
def sweep_rotations(link: str | None = None) -> list[dict[str, Any]]:
    """Repair every abandoned rotation (its run finished, or is past its deadline): set the consumer to the
    store's current value, audit ``rotation.repaired`` and remove the journal; or, when that fails, audit
    ``rotation.repair_failed`` and keep the journal for the next sweep. The environment's channels are
    told of a repair, and of the first failed one. Returns ``[{environment, reference, run_id, outcome,
    detail}]`` (no values). Calls the state store, the Prefect API, the secret stores and consumers, the
    audit log and the notifiers."""
    from envsteward.tasks.promotion import run_is_active

    from envsteward.scan.live import describe_failure

    services = get_services()
    store = services.state_store()
    now = datetime.now(UTC)
    found: list[dict[str, Any]] = []
    for stale in rotation_journal.open_journals(store):
        if not rotation_journal.is_abandoned(stale, now, run_is_active):
            continue
        try:
            detail = (
                services.rotator(stale.environment, stale.reference).resync()
                if stale.needs_resync
                else "nothing to repair: the consumer was never touched"
            )
            repaired = True
        except Exception as exc:  # noqa: BLE001 - reported and audited; the journal stays for the next sweep
            detail, repaired = describe_failure(exc), False
        if repaired:
            rotation_journal.close(store, stale.environment, stale.reference, stale.run_id)
            first = True
        else:
            first = rotation_journal.note_repair_failure(store, stale) == 1
        services.audit_log().append(
            "rotation.repaired" if repaired else "rotation.repair_failed",
            target=f"secret/{stale.reference}",
            environment=stale.environment,
            details={"run_id": stale.run_id, "reference": stale.reference, "detail": detail},
        )
        if first and stale.needs_resync:
            _tell(
                stale.environment,
                rotation_journal.repair_notification(stale, repaired=repaired, detail=detail, link=link),
            )
        found.append(
            {
                "environment": stale.environment,
                "reference": stale.reference,
                "run_id": stale.run_id,
                "outcome": "repaired" if repaired else "failed",
                "detail": detail,
            }
        )
    return found


def _tell(environment: str, notification: Notification) -> None:
    """Send ``notification`` to each of the environment's channels; a failing one does not stop the rest
    (logged). Calls the notifiers."""
    from envsteward.promotion import runbook
    from envsteward.scan.live import describe_failure

    services = get_services()
    paging = notification.severity is Severity.CRITICAL
    try:
        notifiers = services.notifiers(runbook.notify_channels(services, environment, include_paging=paging))
    except Exception as exc:  # noqa: BLE001 - an environment no longer in the catalog: the audit log has it
        get_run_logger().warning("cannot tell %s's channels: %s", environment, describe_failure(exc))
        return
    for notifier in notifiers:
        try:
            notifier.send(notification)
        except Exception as exc:  # noqa: BLE001 - the audit log has the repair; the next channel still hears
            get_run_logger().warning("notification to %s failed: %s", notifier.name, describe_failure(exc))


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
