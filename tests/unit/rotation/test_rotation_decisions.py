"""Rotation decisions and generation (pure): the policy's length and alphabet, which rotator, approval by
tier, a reference the environment does not use refused, catalog validation of the rotation policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from envsteward.catalog.models import EnvironmentSpec, GeneratedValuePolicy, SecretsPolicy
from envsteward.inventory.model import ReferenceUsage
from envsteward.rotation.decisions import approval_for, check_used, plan_rotation, rotator_kind
from envsteward.rotation.generate import conforms, generate_value
from envsteward.rotation.model import RotationRefusedError, Step
from envsteward.secret_refs import SecretRef

REF = "vault://secret/app/db#password"


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (GeneratedValuePolicy(length=40, alphabet="hex"), set("0123456789abcdef")),
        (GeneratedValuePolicy(length=16, characters="ABCDEFGHJK23456789"), set("ABCDEFGHJK23456789")),
        (GeneratedValuePolicy(), set(GeneratedValuePolicy().symbols())),
    ],
)
def test_generated_values_follow_the_policy(policy: GeneratedValuePolicy, allowed: set[str]) -> None:
    values = {generate_value(policy).get_secret_value() for _ in range(20)}
    assert len(values) == 20
    for value in values:
        assert len(value) == policy.length
        assert set(value) <= allowed
    assert conforms(generate_value(policy), policy)


def test_the_policy_rejects_weak_alphabets_and_short_lengths() -> None:
    with pytest.raises(ValidationError):
        GeneratedValuePolicy(characters="abc")
    with pytest.raises(ValidationError):
        GeneratedValuePolicy(length=8)
    with pytest.raises(ValidationError, match="twice"):
        SecretsPolicy.model_validate({"rotation": [{"reference": f"secret+{REF}"}, {"reference": REF}]})


def _env(tier: str, **extra: object) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate({"name": tier, "tier": tier, **extra})


def test_production_waits_for_approval_development_and_staging_do_not() -> None:
    prod = _env("production", approval={"approvers": ["a", "b"]})
    policy, why = approval_for(prod)
    assert policy is not None
    assert policy.approvals_needed == 2
    assert "2 distinct" in why
    assert approval_for(_env("staging", approval={"approvers": ["a"]}))[0] is None
    assert approval_for(_env("development"))[0] is None


def test_rotator_kinds_and_env_refs_refused() -> None:
    assert rotator_kind(SecretRef.parse(REF), None) == "vault_kv"
    assert rotator_kind(SecretRef.parse("aws-sm://prod/db#password"), None) == "secrets_manager"
    assert rotator_kind(SecretRef.parse("ssm:///app/key"), None) == "ssm"
    with pytest.raises(RotationRefusedError, match="env://"):
        rotator_kind(SecretRef.parse("env://TOKEN"), None)
    spec = SecretsPolicy.model_validate(
        {"rotation": [{"reference": REF, "postgres": {"role": "app", "admin_dsn": "host=db user=admin"}}]}
    ).rotation_for(REF)
    assert rotator_kind(SecretRef.parse(REF), spec) == "postgres_role"


def test_a_reference_the_environment_does_not_use_is_refused() -> None:
    usages = [ReferenceUsage(environment="development", reference=REF, used_at=("app.db.password",))]
    assert check_used("development", SecretRef.parse(REF), usages, None) == ("app.db.password",)
    with pytest.raises(RotationRefusedError, match="does not use"):
        check_used("development", SecretRef.parse("vault://secret/other#x"), usages, None)
    plan = plan_rotation(
        _env("development", secrets={"generate": {"length": 20}}),
        f"secret+{REF}",
        usages,
        ((Step.CREATE, "c"), (Step.SET, "s"), (Step.TEST, "t"), (Step.FINISH, "f")),
    )
    assert plan.kind == "vault_kv"
    assert plan.generated == "20 characters from alphanumeric"
    assert not plan.needs_approval
