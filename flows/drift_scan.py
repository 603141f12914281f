"""The drift-scan flow: desired vs live for every environment, parity of neighbours, alerts, self-healing.

Runbook:
1. Read the catalog; pick the environments (all by default) and the neighbouring pairs among them. With
   healing on, take the heal lease (:mod:`envsteward.scan.heal_lease`; the deployment has no concurrency
   limit, because a paused run loses its slot and is killed): when another live run holds it, this run
   detects and alerts only. Then run the ``repair-rollbacks`` sweep as a subflow: a promotion rollback
   that its run could not finish is finished now, and an environment that still has a rollback journal
   (a rollback still pending, or a promotion in flight) is not healed by this scan (its heals are
   reported skipped).
2. Read every live source and resolve every secret reference, all at once (transient errors retried with
   exponential backoff and jitter, each read under a timeout). An unreachable source makes its
   environment ``unknown``; the rest goes on.
3. Compare each environment with its catalog (redacted report + heal plan); check parity of neighbours
   (keys, types, a secret reused across environments).
4. With healing on (default: the catalog's heal policy), heal the items at or below the heal threshold in
   writable sources: re-read, skip what changed since the scan, write, verify, audit.
5. Alert on what changed since the last scan (de-duplicated by item fingerprint): Slack for any drift,
   email for high and above, PagerDuty for critical (resolved when it clears).
6. Publish the artifacts: ``drift-<env>``, ``drift-items`` and the fixed-key ``drift-summary``; record each
   environment's open drift and each pair's parity findings for the status view, emit
   ``envsteward.drift.detected`` / ``.cleared`` and refresh the ``platform-status`` artifact.
7. Items above the threshold: wait for a reviewer on a RunInput form (approve all, some or none; reviewer
   and comment required, audited), then heal the approved ones the same careful way.
8. Return the redacted result; with ``fail_on``, fail the run when open drift is at or above it.

Read-only unless healing is on. Scheduled every 5 minutes by ``prefect.yaml`` (deployment ``drift-scan``).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from envsteward.flows.repair_rollbacks import repair_rollbacks
from envsteward.tasks.common import flow_run_link
from envsteward.tasks.drift import (
    check_environment_parity,
    compare_environment,
    declined_heals,
    fingerprint_environment_secrets,
    heal_live_source,
    read_live_source,
    record_drift_alerts,
    record_heal_approval,
    write_drift_artifacts,
    write_heal_artifact,
)
from envsteward.tasks.heal_lease import release_heal_lease, take_heal_lease
from envsteward.tasks.health import send_alert
from envsteward.tasks.status import publish_changes, record_drift_status
from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.futures import PrefectFuture, wait
from prefect.input import RunInput
from prefect.runtime import flow_run

from envsteward.errors import ConfigurationError, EnvstewardError, PermanentError
from envsteward.ports import Severity
from envsteward.scan.alerts import alert_item
from envsteward.scan.fingerprints import SecretFingerprints
from envsteward.scan.heal import (
    ApprovalDecision,
    HealAction,
    decide_approval,
    not_approved_outcomes,
    unexecuted_outcomes,
)
from envsteward.scan.live import describe_failure
from envsteward.scan.model import EnvironmentScan, HealOutcome, HealResult, ParityScan, ScanStatus
from envsteward.scan.report import exceeds, open_items, scan_result
from envsteward.scan.runner import group_by_source, plan_scan
from envsteward.services import get_services

APPROVAL_TIMEOUT_SECONDS = 240
"""How long a run waits for a reviewer: under the 5-minute schedule, so runs do not pile up."""
APPROVAL_POLL_SECONDS = 10
HEAL_LEASE_SECONDS = APPROVAL_TIMEOUT_SECONDS + 600
"""The heal lease outlives the approval wait and the heals after it; a killed run's lease frees then."""


class DriftThresholdError(PermanentError):
    """Open drift at or above the run's ``fail_on`` severity (the run fails after publishing everything)."""


class AlertDeliveryError(EnvstewardError):
    """A drift notification could not be sent (the change is recorded; the run fails to show the loss)."""


@flow(
    name="drift-scan",
    description="Desired vs live drift and environment parity; alerts, artifacts and approved self-healing.",
)
def drift_scan(
    environments: list[str] | None = None, heal: bool | None = None, fail_on: str | None = None
) -> dict[str, Any]:
    """Scan ``environments`` (all when None); heal when ``heal`` (None: the catalog's heal policy); fail the
    run when open drift is at or above ``fail_on``. Returns the redacted result (see
    :func:`envsteward.scan.report.scan_result`).

    Raises ConfigurationError for an unknown environment or severity name, DriftThresholdError,
    AlertDeliveryError.
    """
    if fail_on is not None and fail_on.lower() not in {s.value for s in Severity}:
        raise ConfigurationError(
            f"fail_on {fail_on!r} is not a severity: use critical, high, medium, low or info"
        )
    services = get_services()
    catalog = services.catalog()
    plan = plan_scan(catalog, environments)
    heal_enabled = catalog.drift_rules.heal.enabled if heal is None else heal
    link = flow_run_link()
    run_id = str(flow_run.id)
    if heal_enabled and (healer := take_heal_lease(run_id, HEAL_LEASE_SECONDS)) is not None:
        get_run_logger().warning(
            "flow run %s is healing (it may be waiting for approval): this run detects and alerts only",
            healer,
        )
        heal_enabled = False
    try:
        return _scan(plan, catalog, services, heal_enabled, fail_on, link)
    finally:
        if heal_enabled:
            release_heal_lease(run_id)


def _scan(  # noqa: PLR0917 - the flow's resolved inputs
    plan: Any, catalog: Any, services: Any, heal_enabled: bool, fail_on: str | None, link: str | None
) -> dict[str, Any]:
    """Steps 1-7 of the runbook (see the module docstring)."""
    held: set[str] | None = _finish_rollbacks() if heal_enabled else set()

    # 2. read everything at once
    reads = {
        (env, source): read_live_source.submit(env, source)
        for env in plan.environments
        for source in plan.sources[env]
    }
    secret_runs = {env: fingerprint_environment_secrets.submit(env) for env in plan.environments}
    secrets: dict[str, SecretFingerprints | None] = {}
    for env, run in secret_runs.items():
        found = run.result(raise_on_failure=False)
        secrets[env] = found if isinstance(found, SecretFingerprints) else None

    # 3. compare and check parity
    compare_runs = [
        compare_environment.submit(
            env,
            {source: reads[(env, source)].result(raise_on_failure=False) for source in plan.sources[env]},
            secrets[env],
        )
        for env in plan.environments
    ]
    parity_runs = [
        check_environment_parity.submit(left, right, secrets[left], secrets[right])
        for left, right in plan.parity_pairs
    ]
    scans = [run.result() for run in compare_runs]
    parities = [run.result() for run in parity_runs]

    # 4. heal what needs no approval
    outcomes: list[HealOutcome] = []
    if heal_enabled:
        outcomes += _heal_unless_held(
            [action for scan in scans for action in scan.heal.automatic], held, approvals=None
        )

    # 5. alerts (items healed just now are not announced)
    deliveries = _alert(scans, parities, outcomes, catalog, link)

    # 6. artifacts, before waiting for a reviewer (who reads them)
    write_drift_artifacts(scans, parities, outcomes)
    publish_changes(record_drift_status(scans, outcomes, link, parities, return_state=True))

    # 7. approval for the rest
    if heal_enabled:
        outcomes += _approve_and_heal(
            [action for scan in scans for action in scan.heal.needs_approval],
            catalog,
            services.settings.current_actor(),
            list(plan.environments),
            link,
            held,
        )
        write_heal_artifact(outcomes)

    result = scan_result(scans, parities, outcomes, heal_enabled=heal_enabled, fail_on=fail_on)
    failed = [run for run in deliveries if not run.state.is_completed()]
    if failed:
        reasons = "; ".join(describe_failure(_exception(run)) for run in failed)
        raise AlertDeliveryError(f"{len(failed)} drift notification(s) failed: {reasons}", system="drift")
    if fail_on is not None:
        over = exceeds(scans, parities, outcomes, fail_on)
        if over:
            raise DriftThresholdError(
                f"open drift at or above {fail_on.lower()}: {'; '.join(over)}", system="drift"
            )
    return result


def _alert(
    scans: list[EnvironmentScan],
    parities: list[ParityScan],
    outcomes: list[HealOutcome],
    catalog: Any,
    link: str | None,
) -> list[PrefectFuture[Any]]:
    """Record each scope's alert state and send what changed: one task per (change, channel)."""
    alert_runs = []
    for scan in scans:
        unknown = scan.status is ScanStatus.UNKNOWN
        alert_runs.append(
            record_drift_alerts.submit(
                scan.environment,
                None if unknown else [alert_item(item) for item in open_items(scan.report, outcomes)],
                list(catalog.environments[scan.environment].notify),
                scan.reason if unknown else None,
                link,
            )
        )
    for pair in parities:
        unknown = pair.status is ScanStatus.UNKNOWN
        channels = [*catalog.environments[pair.left].notify, *catalog.environments[pair.right].notify]
        alert_runs.append(
            record_drift_alerts.submit(
                pair.scope,
                None if unknown else [alert_item(item) for item in pair.report.items],
                list(dict.fromkeys(channels)),
                pair.reason if unknown else None,
                link,
            )
        )
    deliveries: list[PrefectFuture[Any]] = [
        send_alert.submit(delivery.channel, delivery.notification)
        for run in alert_runs
        for delivery in run.result()
    ]
    wait(deliveries)
    return deliveries


def _approve_and_heal(  # noqa: PLR0917
    candidates: list[HealAction],
    catalog: Any,
    requester: str,
    scanned: list[str],
    link: str | None,
    held: set[str] | None,
) -> list[HealOutcome]:
    """Ask a reviewer about the candidates not declined before; heal what they approve."""
    if not candidates:
        return []
    declined_before = declined_heals(candidates)
    ask = [a for a in candidates if a.item_fingerprint not in declined_before]
    outcomes = unexecuted_outcomes(
        [a for a in candidates if a.item_fingerprint in declined_before],
        HealResult.NOT_APPROVED,
        "declined by a reviewer before (asked again when the drift changes)",
    )
    if not ask:
        return outcomes
    decision = _ask_for_approval(ask, catalog, requester)
    record_heal_approval(decision, ask, scanned, APPROVAL_TIMEOUT_SECONDS, link)
    if decision is None:
        return outcomes + unexecuted_outcomes(
            ask, HealResult.NOT_APPROVED, f"no answer within {APPROVAL_TIMEOUT_SECONDS} s"
        )
    approvals = {a.id: (decision.reviewer, decision.comment) for a in decision.approved}
    return (
        outcomes
        + not_approved_outcomes(decision)
        + _heal_unless_held(list(decision.approved), held, approvals=approvals)
    )


def _finish_rollbacks() -> set[str] | None:
    """Run the rollback sweep (subflow); the environments that still have a rollback journal afterwards
    (a rollback still pending, a promotion in flight). None when the sweep failed: nobody can tell."""
    state = repair_rollbacks(return_state=True)
    if not state.is_completed():
        return None
    result = state.result()
    return {str(name) for key in ("pending", "skipped") for name in result.get(key, [])}


def _heal_unless_held(
    actions: list[HealAction], held: set[str] | None, approvals: dict[str, tuple[str, str]] | None
) -> list[HealOutcome]:
    """Heal the actions, except in environments a promotion rollback holds (all of them when ``held`` is
    None: the sweep could not tell). Fail safe: a heal must not write over a half-rolled-back target."""
    blocked = [a for a in actions if held is None or a.environment in held]
    outcomes = unexecuted_outcomes(
        blocked,
        HealResult.SKIPPED,
        "not healed: a promotion rollback journal is pending on this environment "
        "(`envsteward promote --status ENV`)"
        if held is not None
        else "not healed: the promotion rollback sweep failed, so a pending rollback cannot be ruled out",
    )
    blocked_ids = {a.id for a in blocked}
    return outcomes + _heal([a for a in actions if a.id not in blocked_ids], approvals=approvals)


def _heal(actions: list[HealAction], approvals: dict[str, tuple[str, str]] | None) -> list[HealOutcome]:
    """One heal task per source (one re-read each); a task that fails as a whole fails its actions."""
    runs = [
        (group, heal_live_source.submit(env, source, group, approvals))
        for (env, source), group in group_by_source(actions).items()
    ]
    outcomes: list[HealOutcome] = []
    for group, run in runs:
        found = run.result(raise_on_failure=False)
        if isinstance(found, list):
            outcomes += found
        else:
            reason = describe_failure(found) if isinstance(found, BaseException) else "heal task failed"
            outcomes += unexecuted_outcomes(group, HealResult.FAILED, f"not healed: {reason}")
    return outcomes


def approval_form(candidates: list[HealAction]) -> type[RunInput]:
    """The RunInput form a reviewer answers: the candidates as choices, approve-all, reviewer, comment."""
    ids = tuple(action.id for action in candidates)
    choice = Literal[ids]  # type: ignore[valid-type]
    form: type[RunInput] = pydantic.create_model(
        "DriftHealApproval",
        __base__=RunInput,
        approve_all=(bool, pydantic.Field(default=False, description="Heal every item listed below.")),
        approve=(
            list[choice],  # type: ignore[valid-type]
            pydantic.Field(default_factory=list, description="The items to heal (the rest are declined)."),
        ),
        reviewer=(str, pydantic.Field(min_length=1, description="Your name (must be an approver).")),
        comment=(str, pydantic.Field(min_length=1, description="Why (recorded in the audit log).")),
    )
    lines = [
        "## Drift heals waiting for approval",
        "",
        "These items are above the heal threshold. Approve all, some or none; the live value is re-read "
        "before writing and left alone if it changed since the scan.",
        "",
        "| item | severity | kind | desired value | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for action in candidates:
        desired = str(action.desired).replace("|", "\\|")
        lines.append(
            f"| `{action.id}` | {action.severity.value} | {action.kind.value} | `{desired}` "
            f"| {action.source} |"
        )
    return form.with_initial_data(description="\n".join(lines))


def _ask_for_approval(candidates: list[HealAction], catalog: Any, requester: str) -> ApprovalDecision | None:
    """Pause on the approval form; None when nobody answered in time."""
    from prefect.exceptions import FlowPauseTimeout

    try:
        answer: Any = pause_flow_run(
            wait_for_input=approval_form(candidates),
            timeout=APPROVAL_TIMEOUT_SECONDS,
            poll_interval=APPROVAL_POLL_SECONDS,
            key="drift-heal-approval",
        )
    except FlowPauseTimeout:
        return None
    approvers = {
        env: list(catalog.environments[env].approval.approvers) for env in {a.environment for a in candidates}
    }
    return decide_approval(
        candidates,
        approve_all=bool(answer.approve_all),
        approve_ids=list(answer.approve),
        reviewer=str(answer.reviewer),
        comment=str(answer.comment),
        approvers=approvers,
        requester=requester,
    )


def _exception(run: PrefectFuture[Any]) -> BaseException:
    found = run.result(raise_on_failure=False)
    return found if isinstance(found, BaseException) else RuntimeError("failed")
