"""One environment's desired-vs-live result, and parity between two neighbouring environments.

Only the subtrees of the sources that could be read are compared (the desired configuration is cut to the
same mount points), so an unreachable source neither hides drift elsewhere nor shows its whole subtree as
"removed"; the environment's status is then ``unknown`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from envsteward.drift import DriftReport, DriftRules, compare, parity
from envsteward.ports import Severity
from envsteward.scan.heal import plan_heals
from envsteward.scan.live import assemble_live
from envsteward.scan.model import EnvironmentScan, ParityScan, ScanStatus
from envsteward.sources import mount

if TYPE_CHECKING:
    from envsteward.catalog.models import EnvironmentSpec
    from envsteward.catalog.rendered import RenderedConfig
    from envsteward.scan.fingerprints import SecretFingerprints

Fingerprint = Callable[[Any], str]


def desired_view(rendered: RenderedConfig, mounts: tuple[str, ...]) -> dict[str, Any]:
    """The desired configuration cut to the subtrees the given source mount points hold."""
    view: dict[str, Any] = {}
    for mount_at in mounts:
        subtree = rendered.subtree(mount_at)
        if not mount_at and not isinstance(subtree, dict):
            continue
        mount(view, mount_at, subtree)
    return view


def scan_environment(
    env: EnvironmentSpec,
    rendered: RenderedConfig,
    *,
    rules: DriftRules,
    outcomes: Mapping[str, Any],
    secrets: SecretFingerprints | None,
    fingerprint: Fingerprint,
    heal_threshold: Severity | None = None,
    today: date | None = None,
) -> EnvironmentScan:
    """Compare ``env``'s desired configuration with what its sources returned and plan heals.

    ``outcomes``: source name -> the mapping it returned, or the exception reading it raised. ``secrets``:
    keyed fingerprints of the resolved secret references (None: the secret stores could not be asked, the
    environment is then ``unknown``). ``heal_threshold`` defaults to the rules' heal policy.

    Pure apart from calling ``fingerprint``. Raises ConfigurationError for malformed rules.
    """
    live = assemble_live(env.sources, outcomes)
    desired = desired_view(rendered, live.readable_mounts)
    report = compare(
        desired,
        live.data,
        rules,
        environment=env.name,
        origins=rendered.origins,
        secret_paths=rendered.secret_refs.keys(),
        secret_fingerprints=secrets.by_path if secrets is not None else None,
        fingerprint=fingerprint,
        today=today,
    )
    heal = plan_heals(
        env.name,
        report.items,
        desired=desired,
        live=live.data,
        sources=live.sources,
        threshold=heal_threshold or rules.heal.max_severity,
        fingerprint=fingerprint,
    )
    reasons = [
        f"source {state.name} ({state.kind}) could not be read: {state.error}" for state in live.unreachable
    ]
    notes: list[str] = []
    if secrets is None:
        reasons.append("the secret references could not be resolved (secret store unreachable)")
    else:
        notes.extend(secrets.problems[path] for path in sorted(secrets.problems))
    if not env.sources:
        notes.append("the environment has no live sources: nothing to compare")
    status = ScanStatus.UNKNOWN if reasons else ScanStatus.DRIFT if report.items else ScanStatus.OK
    return EnvironmentScan(
        environment=env.name,
        status=status,
        reason="; ".join(reasons) or None,
        sources=live.sources,
        report=report,
        heal=heal,
        notes=tuple(notes),
    )


def check_parity(
    left: EnvironmentSpec,
    left_rendered: RenderedConfig,
    right: EnvironmentSpec,
    right_rendered: RenderedConfig,
    *,
    left_secrets: SecretFingerprints | None,
    right_secrets: SecretFingerprints | None,
    rules: DriftRules,
    fingerprint: Fingerprint,
) -> ParityScan:
    """Parity of two neighbouring environments: their desired configurations (keys missing on one side,
    type mismatches; environment-specific globs of either side excluded) and secret reuse (equal keyed
    fingerprints of resolved secrets: critical). Unknown when either side's secrets could not be resolved
    (a reuse could then hide). Pure apart from calling ``fingerprint``."""
    environment_specific = list(dict.fromkeys([*left.environment_specific, *right.environment_specific]))
    report: DriftReport = parity(
        left.name,
        left_rendered.data,
        right.name,
        right_rendered.data,
        environment_specific=environment_specific,
        secret_fingerprints_left=left_secrets.by_path if left_secrets else None,
        secret_fingerprints_right=right_secrets.by_path if right_secrets else None,
        rules=rules,
        origins=left_rendered.origins,
        fingerprint=fingerprint,
    )
    missing = [
        name for name, secrets in ((left.name, left_secrets), (right.name, right_secrets)) if secrets is None
    ]
    if missing:
        return ParityScan(
            left=left.name,
            right=right.name,
            status=ScanStatus.UNKNOWN,
            reason=f"secrets of {', '.join(missing)} could not be resolved: secret reuse not checked",
            report=report,
        )
    return ParityScan(
        left=left.name,
        right=right.name,
        status=ScanStatus.DRIFT if report.items else ScanStatus.OK,
        report=report,
    )
