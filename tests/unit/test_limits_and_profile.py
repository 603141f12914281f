"""Which system's concurrency limit a step takes, and what the production helper passes to the pool."""

from __future__ import annotations

import pytest
from envsteward.deployments.production import pool_environment, redact_url

from envsteward.limits import limit_names, system_for_scheme, system_for_source, systems_for_backup


def test_each_source_kind_and_secret_scheme_names_its_system() -> None:
    assert [system_for_source(k) for k in ("vault_kv", "ssm", "secrets_manager", "file", "http")] == [
        "vault",
        "ssm",
        "secretsmanager",
        None,
        None,
    ]
    assert [system_for_scheme(s) for s in ("vault", "ssm", "aws-sm", "env")] == [
        "vault",
        "ssm",
        "secretsmanager",
        None,
    ]


def test_a_backup_takes_its_source_system_and_s3_only_when_stored_there() -> None:
    assert systems_for_backup("postgres", "s3") == ["postgres", "s3"]
    assert systems_for_backup("postgres", "filesystem") == ["postgres"]
    assert systems_for_backup("sqlite", "s3") == ["s3"]


def test_limit_names_are_unique_ordered_and_refuse_an_unknown_system() -> None:
    assert limit_names("envsteward-", ["s3", None, "vault", "s3"]) == ["envsteward-vault", "envsteward-s3"]
    with pytest.raises(ValueError, match="no concurrency limit for system"):
        limit_names("envsteward-", ["kafka"])


def test_the_pool_gets_settings_but_never_a_variable_that_holds_a_credential() -> None:
    environ = {
        "ENVSTEWARD_STATE__KIND": "redis",
        "ENVSTEWARD_CATALOG": "/opt/catalog",
        "ENVSTEWARD_REPO_DIR": "/opt/envsteward",
        "ENVSTEWARD_VAULT__TOKEN_ENV": "VAULT_TOKEN",
        "ENVSTEWARD_FINGERPRINT_KEY": "hmac-key-value",
        "ENVSTEWARD_SMTP_PASSWORD": "smtp-password",
        "ENVSTEWARD_TEST_VAULT_TOKEN": "root-token",
        "VAULT_TOKEN": "root-token",
        "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:pw@db/prefect",
    }
    assert pool_environment(environ) == {
        "ENVSTEWARD_CATALOG": "/opt/catalog",
        "ENVSTEWARD_REPO_DIR": "/opt/envsteward",
        "ENVSTEWARD_STATE__KIND": "redis",
        "ENVSTEWARD_VAULT__TOKEN_ENV": "VAULT_TOKEN",
    }


def test_printed_urls_hide_the_password() -> None:
    assert redact_url("postgresql+asyncpg://prefect:s3cret@db:5432/prefect") == (
        "postgresql+asyncpg://prefect:***@db:5432/prefect"
    )
    assert redact_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"
