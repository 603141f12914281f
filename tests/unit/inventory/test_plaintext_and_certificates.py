"""Plaintext detection (key names, credential formats, no false positive on the example catalog),
certificate facts, the catalog's secrets policy and the CLI's identifier rendering."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from envsteward.catalog import load_catalog
from envsteward.catalog.models import EnvironmentSpec, SecretsPolicy
from envsteward.cli.secrets import id_text
from envsteward.inventory.certificates import certificate_facts
from envsteward.inventory.plaintext import credential_format, desired_plaintext, looks_secret, secret_like_key
from envsteward.inventory.references import collect_references

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "catalog"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "smtpPassword",
        "api_key",
        "apiKey",
        "private_key",
        "auth_token",
        "client_secret",
        "webhook_secret",
        "credentials",
        "passphrase",
        "AWS_SECRET_ACCESS_KEY",
    ],
)
def test_secret_like_key_names(key: str) -> None:
    assert secret_like_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "key",
        "token_endpoint",
        "password_min_length",
        "user",
        "smtp_username",
        "primary_key",
        "secret_paths",
        "tokens_per_minute",
        "keyboard",
    ],
)
def test_ordinary_key_names(key: str) -> None:
    assert not secret_like_key(key)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "aws-access-key-id"),
        ("xoxb-123456789012-abcdefghijkl", "slack-token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----", "pem-private-key"),
        ("-----BEGIN PRIVATE KEY-----\nMIIE", "pem-private-key"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        ("ghp_" + "a1B2" * 9, "github-token"),
        ("Xk9mP2qR7vT4wZ8nB3cF6hJ1", "high-entropy-string"),
    ],
)
def test_credential_formats(value: str, rule: str) -> None:
    assert credential_format(value) == rule
    assert looks_secret("note", value) == rule


@pytest.mark.parametrize(
    "value",
    [
        "ghcr.io/shopfront/api:1.14.2",
        "d41d8cd98f00b204e9800998ecf8427e",  # md5 hex
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # sha1 hex
        "5f3c9d2e-8a1b-4c7d-9e0f-1a2b3c4d5e6f",  # uuid
        "arn:aws:iam::123456789012:role/ShopfrontDeployRole",
        "emails,orders,webhooks",
        "email-smtp.eu-west-1.amazonaws.com",
        "shopfront_staging_replica_2025",
        "ShopfrontCheckoutServiceV2",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ],
)
def test_ordinary_values_are_not_credentials(value: str) -> None:
    assert credential_format(value) is None
    assert looks_secret("image", value) is None


def test_key_rule_needs_a_non_empty_non_reference_string() -> None:
    assert looks_secret("password", "hunter2") == "secret-like-key"
    assert looks_secret("password", "secret+vault://secret/a/b#c") is None
    assert looks_secret("password", "") is None
    assert looks_secret("password_min_length", 12) is None
    assert looks_secret("token", True) is None


def test_random_tokens_are_found_by_entropy() -> None:
    found = sum(credential_format(secrets.token_urlsafe(24)) is not None for _ in range(200))
    assert found >= 170  # a heuristic: most random tokens, never ordinary values (above)


def test_the_example_catalog_has_no_plaintext_and_its_references() -> None:
    catalog = load_catalog(EXAMPLE)
    for name in catalog.environments:
        rendered = catalog.render(name)
        assert desired_plaintext(rendered.data, lambda value: "fp") == []
    production = collect_references(catalog.environment("production"), catalog.render("production"))
    database = next(u for u in production if u.reference.endswith("production/database#password"))
    assert database.used_at == ("app.database.password", "backups.postgres-main.password")
    assert database.origin == "config/production.yaml:12"


def _certificate(days: int) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_certificate_facts_from_pem_and_chains() -> None:
    pem = _certificate(10)
    facts = certificate_facts(pem + _certificate(300))
    assert facts is not None
    assert facts.subject == "CN=shop.example"
    assert timedelta(days=9) < facts.not_after - datetime.now(UTC) <= timedelta(days=10)
    assert certificate_facts("not a certificate") is None
    assert certificate_facts("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----") is None


def test_policy_defaults_by_tier_and_overrides() -> None:
    base = {"name": "p", "tier": "production", "approval": {"approvers": ["a", "b"]}}
    assert EnvironmentSpec.model_validate(base).secrets.max_age_days == 90
    assert (
        EnvironmentSpec.model_validate({**base, "secrets": {"due_within_days": 7}}).secrets.max_age_days == 90
    )
    assert (
        EnvironmentSpec.model_validate({**base, "secrets": {"max_age_days": None}}).secrets.max_age_days
        is None
    )
    assert EnvironmentSpec.model_validate({"name": "s", "tier": "development"}).secrets.max_age_days is None
    policy = SecretsPolicy.model_validate(
        {
            "max_age_days": 90,
            "certificate_alert_days": [7, 30, 14, 14],
            "overrides": [{"reference": "secret+ssm:///a/b", "max_age_days": 10}],
        }
    )
    assert policy.certificate_alert_days == [30, 14, 7]
    assert policy.max_age_for("ssm:///a/b") == 10
    assert policy.max_age_for("ssm:///a/c") == 90


@pytest.mark.parametrize(
    "bad",
    [
        {"max_age_days": 0},
        {"overrides": [{"reference": "vault://nokey", "max_age_days": 5}]},
        {
            "overrides": [
                {"reference": "ssm:///a", "max_age_days": 5},
                {"reference": "secret+ssm:///a", "max_age_days": 6},
            ]
        },
        {"managed": {"vault": ["no-path"]}},
        {"managed": {"ssm": ["relative/path"]}},
        {"unknown": 1},
    ],
)
def test_policy_rejects_bad_input(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SecretsPolicy.model_validate(bad)


def test_id_text_breaks_only_at_segment_boundaries() -> None:
    ref = "vault://secret/envsteward/production/email#smtp_password"
    assert id_text(ref, 80).plain == ref
    lines = id_text(ref, 30).plain.split("\n")
    assert "".join(lines) == ref
    assert all(line[-1] in "/#." for line in lines[:-1])
    assert (
        id_text("averyveryverylongsegmentwithoutboundaries", 10).plain
        == "averyveryverylongsegmentwithoutboundaries"
    )
