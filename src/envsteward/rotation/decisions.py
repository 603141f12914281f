"""What to rotate, with which rotator, and whether it waits for approval. Pure (the catalog is data)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from envsteward.catalog.models import ApprovalPolicy, EnvironmentSpec, RotationSpec
from envsteward.rotation.generate import describe_policy
from envsteward.rotation.model import RotationPlan, RotationRefusedError, Step
from envsteward.secret_refs import SecretRef, SecretRefError

if TYPE_CHECKING:
    from envsteward.inventory.model import ReferenceUsage

STORE_ROTATORS = {"vault": "vault_kv", "aws-sm": "secrets_manager", "ssm": "ssm"}
"""The rotator of a reference's store, by scheme (``env://`` cannot be rotated: envsteward does not own
the process environment)."""
POSTGRES_ROLE = "postgres_role"
APPROVAL_TIERS = ("production",)
"""Tiers whose rotations wait for approval; development and staging rotate automatically."""


def parse_reference(text: str) -> SecretRef:
    """``text`` with or without ``secret+``. Raises RotationRefusedError naming the accepted forms."""
    try:
        return SecretRef.parse(text)
    except SecretRefError as exc:
        raise RotationRefusedError(str(exc), system="rotation") from None


def rotator_kind(ref: SecretRef, spec: RotationSpec | None) -> str:
    """The registry kind that rotates ``ref``. Raises RotationRefusedError for ``env://``."""
    if spec is not None and spec.postgres is not None:
        return POSTGRES_ROLE
    try:
        return STORE_ROTATORS[ref.scheme]
    except KeyError:
        raise RotationRefusedError(
            f"{ref.uri()} cannot be rotated: envsteward rotates vault://, aws-sm:// and ssm:// references "
            "(an env:// value belongs to the process environment)",
            system="rotation",
        ) from None


def check_used(
    environment: str, ref: SecretRef, usages: Iterable[ReferenceUsage], spec: RotationSpec | None
) -> tuple[str, ...]:
    """Where the environment uses ``ref``. Raises RotationRefusedError when it is neither used by the
    environment nor listed in its ``secrets.rotation`` (a typo must not rotate someone else's secret)."""
    found = [usage for usage in usages if usage.reference == ref.uri()]
    if found:
        return found[0].used_at
    if spec is not None:
        return ("secrets.rotation",)
    known = sorted(usage.reference for usage in usages)
    raise RotationRefusedError(
        f"environment {environment!r} does not use {ref.uri()} "
        f"(its references: {', '.join(known) or 'none'})",
        system="rotation",
    )


def approval_for(spec: EnvironmentSpec) -> tuple[ApprovalPolicy | None, str]:
    """The approval a rotation in this environment needs (None: none), and why."""
    if spec.tier in APPROVAL_TIERS and spec.approval.approvals_needed > 0:
        return spec.approval, (
            f"{spec.name} is a {spec.tier} environment: {spec.approval.approvals_needed} distinct "
            "approver(s) from its approver list, not the requester"
        )
    if spec.tier in APPROVAL_TIERS:
        return None, f"{spec.name} needs no approval (approvals_needed is 0)"
    return None, f"{spec.name} is a {spec.tier} environment: rotated without approval"


def plan_rotation(
    spec: EnvironmentSpec,
    reference: str,
    usages: Iterable[ReferenceUsage],
    steps: tuple[tuple[Step, str], ...],
) -> RotationPlan:
    """The plan for rotating ``reference`` in the environment ``spec``. ``steps`` says what each step does
    (from the rotator). Raises RotationRefusedError."""
    ref = parse_reference(reference)
    rotation = spec.secrets.rotation_for(ref.uri())
    kind = rotator_kind(ref, rotation)
    used_at = check_used(spec.name, ref, usages, rotation)
    approval, why = approval_for(spec)
    return RotationPlan(
        environment=spec.name,
        tier=spec.tier,
        reference=ref.uri(),
        kind=kind,
        steps=steps,
        used_at=used_at,
        generated=describe_policy(spec.secrets.generation_for(ref.uri())),
        approval=approval,
        approval_reason=why,
    )
