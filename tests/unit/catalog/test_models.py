"""Field-level rules of the catalog models (frozen, no unknown fields, clear messages)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from envsteward.catalog import (
    ApprovalPolicy,
    BackupTarget,
    EnvironmentSpec,
    SecretRef,
    SourceSpec,
    SSMSource,
    VaultKVSource,
)

SOURCES: TypeAdapter[Any] = TypeAdapter(SourceSpec)
BACKUPS: TypeAdapter[Any] = TypeAdapter(BackupTarget)


def test_models_are_frozen() -> None:
    policy = ApprovalPolicy(approvers=["a"], approvals_needed=1)
    with pytest.raises(ValidationError):
        policy.approvals_needed = 0  # type: ignore[misc]


@pytest.mark.parametrize(("tier", "needed"), [("development", 0), ("staging", 1), ("production", 2)])
def test_tier_default_approvals(tier: str, needed: int) -> None:
    spec = EnvironmentSpec.model_validate(
        {"name": "e", "tier": tier, "approval": {"approvers": ["a", "b", "c"]}}
    )
    assert spec.approval.approvals_needed == needed
    assert spec.approval.timeout_hours == 24


def test_explicit_approvals_win_over_the_tier_default() -> None:
    spec = EnvironmentSpec.model_validate(
        {"name": "e", "tier": "production", "approval": {"approvals_needed": 0}}
    )
    assert spec.approval.approvals_needed == 0


def test_more_approvals_than_approvers_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"needs 2 approval\(s\) but lists 1 approver\(s\)"):
        EnvironmentSpec.model_validate({"name": "e", "tier": "production", "approval": {"approvers": ["a"]}})


def test_sources() -> None:
    kv = SOURCES.validate_python(
        {"name": "kv", "kind": "vault_kv", "path": "/secret/app/prod/", "mount_at": "app"}
    )
    assert isinstance(kv, VaultKVSource)
    assert (kv.path, kv.kv_mount, kv.kv_path, kv.writable) == ("secret/app/prod", "secret", "app/prod", False)
    ssm = SOURCES.validate_python({"name": "p", "kind": "ssm", "prefix": "/app/staging"})
    assert isinstance(ssm, SSMSource)
    assert (ssm.prefix, ssm.value_format, ssm.mount_at) == ("/app/staging/", "json", "")
    sm = SOURCES.validate_python({"name": "s", "kind": "secrets_manager", "prefix": "staging/app"})
    assert sm.prefix == "staging/app/"
    http = SOURCES.validate_python(
        {
            "name": "h",
            "kind": "http",
            "url": "https://cfg.example/x.json",
            "bearer_token": "secret+env://TOKEN",
        }
    )
    assert http.bearer_token == SecretRef("env", "TOKEN")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"name": "kv", "kind": "vault_kv", "path": "secret"}, "must be '<kv-mount>/<path>'"),
        (
            {"name": "p", "kind": "ssm", "prefix": "app/staging/"},
            "must be a parameter path starting with '/'",
        ),
        ({"name": "h", "kind": "http", "url": "https://u:pw@x/"}, "may not contain a password"),
        ({"name": "h", "kind": "http", "url": "https://x/", "writable": True}, "an http source is read-only"),
        ({"name": "f", "kind": "file", "path": "x.txt"}, "must be a .yaml, .yml or .json file"),
        ({"name": "bad name", "kind": "file", "path": "x.json"}, "invalid name 'bad name'"),
        ({"name": "f", "kind": "file", "path": "x.json", "mount_at": "a..b"}, "must be keys"),
    ],
)
def test_bad_sources(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SOURCES.validate_python(source)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"name": "b", "kind": "vault_kv", "path": "secret/x", "key_provider": "aws_kms"}, "needs key_id"),
        (
            {"name": "b", "kind": "config", "region": "eu-west-1", "replica_region": "eu-west-1"},
            "must differ from region",
        ),
        ({"name": "b", "kind": "config", "schedule": "* * *"}, "5-field cron"),
        ({"name": "b", "kind": "postgres", "dsn": "mysql://x/y"}, "must look like postgresql://"),
        (
            {"name": "b", "kind": "postgres", "dsn": "postgresql://a@h/d", "password": "plain"},
            "malformed secret",
        ),
    ],
)
def test_bad_backup_targets(target: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BACKUPS.validate_python(target)


def test_backup_defaults() -> None:
    target = BACKUPS.validate_python(
        {"name": "b", "kind": "sqlite", "path": "state.db", "schedule": "@daily"}
    )
    assert (target.encrypted, target.key_provider, target.replica_region, target.schedule) == (
        True,
        "local",
        None,
        "@daily",
    )
