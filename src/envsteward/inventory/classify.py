"""The inventory's decisions (pure): a status per reference, and the findings an environment has.

Each function takes facts already read (metadata, certificate facts, stored names, plaintext hits), the
policy and ``now``, and returns the decision with its reason. Severities:

=======================  ===========================================================
finding                  severity
=======================  ===========================================================
plaintext                critical
certificate expired      critical
missing                  high
overdue                  high
certificate expiring     by threshold: the smallest (7 days) high, the next (14)
                         medium, the others (30) low
orphan                   medium
due                      low
age unknown              low (a maximum age applies but the store keeps no date)
=======================  ===========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from envsteward.inventory.metadata import SecretMetadata, StoredSecret
from envsteward.inventory.model import (
    CertificateFacts,
    EnvironmentInventory,
    Finding,
    FindingKind,
    ReferenceState,
    ReferenceUsage,
    SecretStatus,
    finding_id,
)
from envsteward.ports import Severity

if TYPE_CHECKING:
    from envsteward.catalog.models import SecretsPolicy
    from envsteward.inventory.plaintext import PlaintextHit

DAY = timedelta(days=1)
NO_KEY_YET = "no local key yet (the first backup creates it)"
"""The ``detail`` of a backup key that does not exist yet (see :mod:`envsteward.inventory.backup_keys`)."""
SEVERITY = {
    FindingKind.PLAINTEXT: Severity.CRITICAL,
    FindingKind.CERTIFICATE_EXPIRED: Severity.CRITICAL,
    FindingKind.MISSING: Severity.HIGH,
    FindingKind.OVERDUE: Severity.HIGH,
    FindingKind.ORPHAN: Severity.MEDIUM,
    FindingKind.DUE: Severity.LOW,
    FindingKind.AGE_UNKNOWN: Severity.LOW,
    FindingKind.CERTIFICATE_EXPIRING: Severity.LOW,  # raised by threshold in certificate_finding
}


@dataclass(frozen=True)
class ReferenceFacts:
    """What reading one reference's store gave: its metadata (and certificate facts when the value is a
    PEM certificate), or the safe reason it could not be read."""

    metadata: SecretMetadata | None = None
    certificate: CertificateFacts | None = None
    error: str | None = None


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def classify_reference(
    usage: ReferenceUsage, facts: ReferenceFacts, policy: SecretsPolicy, now: datetime
) -> SecretStatus:
    """The status of one reference: unknown (store unreadable), missing, overdue, due or ok, with the age
    against the policy's maximum (the reference's override, else the environment's)."""
    base = {
        "environment": usage.environment,
        "reference": usage.reference,
        "scheme": usage.reference.partition("://")[0],
        "used_at": usage.used_at,
        "origin": usage.origin,
    }
    max_age = policy.max_age_for(usage.reference)
    if facts.metadata is None:
        return SecretStatus(
            **base,
            state=ReferenceState.UNKNOWN,
            max_age_days=max_age,
            reason=f"could not be read: {facts.error or 'not read'}",
        )
    meta = facts.metadata
    dated = {
        "version": meta.version,
        "changed_at": meta.changed_at,
        "rotated_at": meta.rotated_at,
        "max_age_days": max_age,
        "certificate": facts.certificate,
    }
    if not meta.exists:
        return SecretStatus(
            **base, **dated, state=ReferenceState.MISSING, exists=False, reason=meta.detail or "missing"
        )
    if meta.changed_at is None:
        reason = "no change date (the store keeps none)"
        return SecretStatus(**base, **dated, state=ReferenceState.OK, exists=True, reason=reason)
    age_days = max(0, math.floor((now - meta.changed_at) / DAY))
    if max_age is None:
        reason = f"last changed {_day(meta.changed_at)}; no maximum age"
        return SecretStatus(
            **base, **dated, state=ReferenceState.OK, exists=True, age_days=age_days, reason=reason
        )
    due_at = meta.changed_at + timedelta(days=max_age)
    days_left = int((due_at - now) / DAY)  # whole days, toward zero: -16 is "overdue by 16 days"
    if now >= due_at:
        state = ReferenceState.OVERDUE
        reason = (
            f"last changed {_day(meta.changed_at)} ({age_days} days ago), maximum age {max_age} days: "
            f"overdue since {_day(due_at)}"
        )
    elif days_left <= policy.due_within_days:
        state = ReferenceState.DUE
        reason = f"due for rotation by {_day(due_at)} ({days_left} day(s) left of {max_age})"
    else:
        state = ReferenceState.OK
        reason = f"{age_days} of {max_age} days old"
    return SecretStatus(
        **base,
        **dated,
        state=state,
        exists=True,
        age_days=age_days,
        due_at=due_at,
        days_left=days_left,
        reason=reason,
    )


def _finding(
    environment: str, kind: FindingKind, subject: str, reason: str, origin: str | None, *detail: str
) -> Finding:
    return Finding(
        environment=environment,
        kind=kind,
        severity=SEVERITY[kind],
        subject=subject,
        reason=reason,
        origin=origin,
        id=finding_id(environment, kind, subject, *detail),
    )


def reference_findings(status: SecretStatus, policy: SecretsPolicy, now: datetime) -> list[Finding]:
    """The findings of one reference's status (none for ``ok`` and ``unknown``), plus its certificate's."""
    env, subject, origin = status.environment, status.reference, status.origin
    used = ", ".join(status.used_at)
    found: list[Finding] = []
    if status.state is ReferenceState.MISSING:
        found.append(_finding(env, FindingKind.MISSING, subject, f"{status.reason} (used at {used})", origin))
    elif status.state is ReferenceState.OVERDUE:
        found.append(_finding(env, FindingKind.OVERDUE, subject, status.reason, origin))
    elif status.state is ReferenceState.DUE:
        found.append(_finding(env, FindingKind.DUE, subject, status.reason, origin))
    elif status.state is ReferenceState.OK and status.changed_at is None and status.max_age_days is not None:
        reason = f"maximum age {status.max_age_days} days, but the store keeps no change date"
        found.append(_finding(env, FindingKind.AGE_UNKNOWN, subject, reason, origin))
    if status.certificate is not None and status.state is not ReferenceState.MISSING:
        cert = certificate_finding(
            env, subject, status.certificate, policy.certificate_alert_days, now, origin
        )
        if cert is not None:
            found.append(cert)
    return found


def certificate_finding(  # noqa: PLR0917 - the facts of one decision
    environment: str,
    subject: str,
    certificate: CertificateFacts,
    alert_days: Sequence[int],
    now: datetime,
    origin: str | None = None,
) -> Finding | None:
    """A finding when the certificate has expired or expires within one of ``alert_days`` (e.g. 30, 14,
    7): one per threshold crossed, so each crossing alerts again; None while it is further out."""
    left = certificate.not_after - now
    expires = _day(certificate.not_after)
    if left <= timedelta(0):
        reason = f"certificate {certificate.subject} expired on {expires}"
        return _finding(environment, FindingKind.CERTIFICATE_EXPIRED, subject, reason, origin, expires)
    thresholds = sorted(set(alert_days))
    crossed = next((days for days in thresholds if left <= timedelta(days=days)), None)
    if crossed is None:
        return None
    rank = thresholds.index(crossed)
    severity = Severity.HIGH if rank == 0 else Severity.MEDIUM if rank == 1 else Severity.LOW
    days_left = math.ceil(left / DAY)
    reason = (
        f"certificate {certificate.subject} expires on {expires} (in {days_left} day(s); "
        f"alert threshold {crossed} days)"
    )
    found = _finding(
        environment, FindingKind.CERTIFICATE_EXPIRING, subject, reason, origin, expires, str(crossed)
    )
    return found.model_copy(update={"severity": severity})


def find_orphans(
    environment: str,
    stored: Mapping[tuple[str, str], Sequence[StoredSecret]],
    named: Mapping[str, set[str]],
) -> list[Finding]:
    """Secrets found under a managed prefix (``stored``: ``(scheme, prefix)`` -> what is there) whose
    location no reference of the catalog names (``named``: scheme -> locations)."""
    found: dict[str, Finding] = {}
    for (scheme, prefix), secrets in stored.items():
        known = named.get(scheme, set())
        for secret in secrets:
            if secret.location in known or secret.location in found:
                continue
            reason = f"stored under the managed prefix {prefix} ({scheme}), but no secret reference names it"
            found[secret.location] = _finding(
                environment, FindingKind.ORPHAN, secret.location, reason, f"{scheme} {prefix}"
            )
    return [found[location] for location in sorted(found)]


def plaintext_findings(
    environment: str, hits: Sequence[PlaintextHit], where: str, origins: Mapping[str, str] | None = None
) -> list[Finding]:
    """Critical findings for plaintext hits found in ``where`` (``desired configuration`` or ``live source
    <name>``); ``origins`` gives a path's ``file:line``."""
    found = []
    for hit in hits:
        origin = (origins or {}).get(hit.path) or where
        reason = f"looks like a secret ({hit.rule}) in the {where}: store it as a secret and use a reference"
        found.append(
            _finding(
                environment, FindingKind.PLAINTEXT, hit.path, reason, origin, where, hit.rule, hit.fingerprint
            )
        )
    return found


def classify_backup_key(
    usage: ReferenceUsage, facts: ReferenceFacts, policy: SecretsPolicy, now: datetime
) -> tuple[SecretStatus, list[Finding]]:
    """A backup key-encryption key's status and findings: its newest version's age against
    ``policy.backup_key_max_age_days`` (per-reference overrides do not apply). A local key that does not
    exist yet (no local backup was made) is ``ok`` with no finding."""
    meta = facts.metadata
    if meta is not None and meta.detail == NO_KEY_YET and meta.changed_at is None:
        status = SecretStatus(
            environment=usage.environment,
            reference=usage.reference,
            scheme=usage.reference.partition("://")[0],
            used_at=usage.used_at,
            state=ReferenceState.OK,
            max_age_days=policy.backup_key_max_age_days,
            reason=NO_KEY_YET,
        )
        return status, []
    key_policy = policy.model_copy(update={"max_age_days": policy.backup_key_max_age_days, "overrides": []})
    status = classify_reference(usage, facts, key_policy, now)
    if status.state in (ReferenceState.OVERDUE, ReferenceState.DUE):
        hint = f"; run `envsteward backup rotate-key --env {usage.environment}`"
        status = status.model_copy(update={"reason": status.reason + hint})
    return status, reference_findings(status, key_policy, now)


_ORDER = {kind: index for index, kind in enumerate(FindingKind)}


def evaluate_environment(
    environment: str,
    tier: str,
    *,
    usages: Sequence[ReferenceUsage],
    facts: Mapping[str, ReferenceFacts],
    policy: SecretsPolicy,
    now: datetime,
    desired_hits: Sequence[PlaintextHit] = (),
    desired_origins: Mapping[str, str] | None = None,
    live_hits: Mapping[str, Sequence[PlaintextHit] | str] | None = None,
    stored: Mapping[tuple[str, str], Sequence[StoredSecret] | str] | None = None,
    named: Mapping[str, set[str]] | None = None,
    backup_keys: Sequence[ReferenceUsage] = (),
) -> EnvironmentInventory:
    """One environment's inventory from what was read. ``live_hits``: per live source, its plaintext hits
    or the reason it could not be read; ``stored``: per managed ``(scheme, prefix)``, what is stored there
    or the reason it could not be listed; ``backup_keys``: the backup KEKs to report (their facts are in
    ``facts`` too, see :mod:`envsteward.inventory.backup_keys`). Anything unreadable is listed in
    ``errors`` (the inventory is then ``unknown``), and nothing is concluded from it: no orphan is
    reported from a partial listing."""
    errors: list[str] = []
    statuses = []
    findings: list[Finding] = []
    for usage in usages:
        status = classify_reference(usage, facts.get(usage.reference, ReferenceFacts()), policy, now)
        statuses.append(status)
        if status.state is ReferenceState.UNKNOWN:
            errors.append(f"{usage.reference}: {status.reason}")
        findings += reference_findings(status, policy, now)
    for usage in backup_keys:
        status, found = classify_backup_key(usage, facts.get(usage.reference, ReferenceFacts()), policy, now)
        statuses.append(status)
        if status.state is ReferenceState.UNKNOWN:
            errors.append(f"{usage.reference}: {status.reason}")
        findings += found
    listed: dict[tuple[str, str], Sequence[StoredSecret]] = {}
    for (scheme, prefix), outcome in (stored or {}).items():
        if isinstance(outcome, str):
            errors.append(f"managed prefix {prefix} ({scheme}) could not be listed: {outcome}")
        else:
            listed[(scheme, prefix)] = outcome
    if not any(isinstance(outcome, str) for outcome in (stored or {}).values()):
        findings += find_orphans(environment, listed, named or {})
    findings += plaintext_findings(environment, desired_hits, "desired configuration", desired_origins)
    for source, read in (live_hits or {}).items():
        if isinstance(read, str):
            errors.append(f"live source {source} could not be read: {read}")
        else:
            findings += plaintext_findings(environment, read, f"live source {source}")
    findings.sort(key=lambda f: (-f.severity.rank, _ORDER[f.kind], f.subject))
    return EnvironmentInventory(
        environment=environment,
        tier=tier,
        checked_at=now,
        statuses=tuple(statuses),
        findings=tuple(findings),
        errors=tuple(errors),
    )
