"""The promotion's steps over real systems, for the Prefect tasks (and the CLI) to call.

Each function takes the narrow Protocol it needs (:class:`RunbookServices` and its parts, which
:class:`envsteward.services.Services` satisfies; nothing here imports it) and does one step: read an
environment's live state, plan, look up secret references, run health checks, write the audit log, build a
notification. Live trees stay inside these functions; what they return holds no secret value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.catalog.refs import SecretRef
from envsteward.health.runner import CheckServices
from envsteward.ports import AlertEvent, Notification, Severity
from envsteward.promotion.approval import ApprovalState, Ruling
from envsteward.promotion.model import ApplyReport, PromotionPlan
from envsteward.promotion.plan import plan_promotion
from envsteward.promotion.render import render_plan_text
from envsteward.scan.live import ConfigSources, LiveTree, assemble_live, call_with_retries, read_source

if TYPE_CHECKING:
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.ports import ConfigSource, SecretStore

NOTIFY_KINDS = ("slack", "email")
"""Channel kinds told about promotion requests and outcomes (PagerDuty only gets failed rollbacks)."""


class CatalogServices(Protocol):
    def catalog(self) -> Catalog: ...


class SecretStores(Protocol):
    def secret_store(self, scheme: str) -> SecretStore: ...


class AuditServices(Protocol):
    def audit_log(self) -> AuditLog: ...


class PlanServices(CatalogServices, ConfigSources, SecretStores, Protocol):
    """What reading environments and planning needs: the catalog, its config sources and the secret stores
    (existence checks only)."""


class HealthServices(CatalogServices, CheckServices, Protocol):
    """What running an environment's health checks needs: the catalog and the checks' clients."""


class RunbookServices(PlanServices, AuditServices, HealthServices, Protocol):
    """Everything the promotion's steps use."""


def read_environment(services: PlanServices, environment: str) -> LiveTree:
    """Read every source of ``environment`` (transient failures retried) and assemble the live tree; a
    source that still fails is recorded as unreadable, not raised. Calls each source's system."""
    catalog = services.catalog()
    specs = catalog.environment(environment).sources
    outcomes: dict[str, Any] = {}
    for spec in specs:

        def read(name: str = spec.name) -> Mapping[str, Any]:
            return read_source(services, environment, name)

        try:
            outcomes[spec.name] = call_with_retries(read)
        except Exception as exc:  # noqa: BLE001 - recorded as unreadable; the plan is then blocked
            outcomes[spec.name] = exc
    return assemble_live(specs, outcomes)


def secret_exists(services: SecretStores, ref: SecretRef) -> bool:
    """Whether the referenced secret exists (calls the reference's secret store; never reads the value out
    of the store's adapter). Transient errors are retried; other errors count as "does not exist"."""
    try:
        return bool(
            call_with_retries(lambda: services.secret_store(ref.scheme).secret_exists(ref.location, ref.key))
        )
    except Exception:  # noqa: BLE001 - fail safe: an unknown answer blocks the plan like a missing secret
        return False


def make_plan(
    services: PlanServices, source: str, target: str, select: Sequence[str] | None = None
) -> PromotionPlan:
    """Read both environments and plan the promotion. Raises PromotionRefusedError, CatalogError."""
    from envsteward.promotion.plan import check_route

    catalog = services.catalog()
    check_route(catalog, source, target)
    source_live = read_environment(services, source)
    target_live = read_environment(services, target)
    return plan_promotion(
        catalog,
        source,
        target,
        source_live,
        target_live,
        select=select,
        secret_exists=lambda ref: secret_exists(services, ref),
    )


def target_sources(services: ConfigSources, plan: PromotionPlan) -> dict[str, ConfigSource]:
    """The target's ConfigSources the plan writes to, by name."""
    names = dict.fromkeys(change.target_source for change in plan.changes)
    return {name: services.config_source(plan.target, name) for name in names}


def health_problems(services: HealthServices, environment: str) -> list[str]:
    """Run the environment's health checks; one line per check that is not ``up`` (empty: healthy).
    Calls every checked system."""
    from envsteward.health.result import CheckStatus
    from envsteward.health.runner import plan_checks, run_planned

    results = run_planned(services, plan_checks(services.catalog(), [environment]))
    return [
        f"health check {result.check} ({result.kind}) is {result.status.value}: {result.detail}"
        for result in results
        if result.status is not CheckStatus.UP
    ]


# ---------------------------------------------------------------------------------------------------------
# Audit and notifications
# ---------------------------------------------------------------------------------------------------------


def audit_target(plan: PromotionPlan) -> str:
    return f"promotion/{plan.source}->{plan.target}"


def audit(
    services: AuditServices,
    action: str,
    plan: PromotionPlan,
    *,
    run_id: str,
    actor: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one ``promotion.*`` record (plan summary, run id and ``details``); return its sequence number.
    Calls the audit log's store."""
    record = services.audit_log().append(
        action,
        target=audit_target(plan),
        environment=plan.target,
        actor=actor,
        details={
            "run_id": run_id,
            "plan_hash": plan.plan_hash,
            "changes": [change.path for change in plan.changes],
            **dict(details or {}),
        },
    )
    return record.seq


def ruling_details(ruling: Ruling, state: ApprovalState, gate: int) -> dict[str, Any]:
    return {
        "gate": gate,
        "decision": ruling.answer.decision,
        "reviewer": ruling.answer.reviewer,
        "comment": ruling.answer.comment,
        "accepted": ruling.accepted,
        "reason": ruling.reason,
        "approved_by": list(state.approved_by),
        "needed": state.needed,
    }


def request_notification(plan: PromotionPlan, requester: str, reason: str, link: str | None) -> Notification:
    """The approval request: the plan's changes and a link to the run (its Resume form)."""
    needs = (
        f"Needs {plan.approvals_needed} approval(s) from {', '.join(plan.approvers)} "
        "(Resume form in the Prefect UI, or `envsteward approve RUN_ID --reviewer NAME`)."
        if plan.approvals_needed
        else "No approval needed."
    )
    return Notification(
        title=f"Promotion {plan.source} → {plan.target} requested by {requester}",
        text=f"{render_plan_text(plan)}\n{needs}" + (f"\nReason: {reason}" if reason else ""),
        severity=Severity.MEDIUM,
        event=AlertEvent.INFO,
        environment=plan.target,
        dedup_key=f"promotion-{plan.target}-{plan.plan_hash[:16]}",
        link=link,
        fields={"plan hash": plan.plan_hash[:16], "changes": str(len(plan.changes))},
    )


def outcome_notification(
    plan: PromotionPlan, outcome: str, text: str, link: str | None, *, severity: Severity = Severity.MEDIUM
) -> Notification:
    """The end of a promotion: applied, rejected, timed out, stale, rolled back..."""
    return Notification(
        title=f"Promotion {plan.source} → {plan.target}: {outcome}",
        text=text,
        severity=severity,
        event=AlertEvent.TRIGGER if severity.rank >= Severity.HIGH.rank else AlertEvent.INFO,
        environment=plan.target,
        dedup_key=f"promotion-{plan.target}-{plan.plan_hash[:16]}",
        link=link,
    )


def notify_channels(
    services: CatalogServices, environment: str, *, include_paging: bool = False
) -> list[str]:
    """The environment's channels that hear about promotions (Slack, email; PagerDuty when paging)."""
    catalog = services.catalog()
    kinds = (*NOTIFY_KINDS, "pagerduty") if include_paging else NOTIFY_KINDS
    return [
        name
        for name in catalog.environment(environment).notify
        if name in catalog.channels and catalog.channels[name].kind in kinds
    ]


def apply_summary(report: ApplyReport) -> dict[str, Any]:
    return {
        "written": report.written,
        "no_ops": report.no_ops,
        "outcomes": [outcome.model_dump(mode="json") for outcome in report.outcomes],
    }
