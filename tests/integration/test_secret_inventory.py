"""The secret inventory against real stores: the example catalog (examples/catalog) loaded into OpenBao
(Vault KV v2) and moto (SSM, Secrets Manager) with the demo's seeding helpers, then one seeded case of
each kind: a missing secret, an orphan, an overdue secret, plaintext in the desired configuration and in a
live source, and an expiring certificate. The inventory finds each and nothing else; the CLI shows them
with the documented exit codes, at 80 columns, and never prints a seeded value; nothing is written.

Also home of :class:`InventoryPlatform`, which the secret-inventory flow test uses too.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from envsteward.deployments.demo import leaves, write_secret_reference
from typer.testing import CliRunner

from envsteward.adapters.aws import SecretsManager
from envsteward.catalog.refs import SecretRef
from envsteward.inventory.model import FindingKind, InventoryStatus, ReferenceState
from envsteward.inventory.report import inventory_result
from envsteward.inventory.runner import run_inventory
from envsteward.services import Services
from envsteward.settings import (
    AWSSettings,
    PagerDutySettings,
    Settings,
    SlackSettings,
    SMTPSettings,
    VaultSettings,
)
from envsteward.sources import subtree_at

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "catalog"
SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_INVENTORY_SLACK_TOKEN"
SLACK_CHANNEL = "#envsteward-alerts"
PD_KEY_ENV = "PAGERDUTY_ROUTING_KEY"  # the example's oncall channel names this variable
LATER = timedelta(days=2)
"""The inventory runs this far in the future: the secret whose maximum age is 1 day is then overdue,
every other one (90, 180, 365 days or none) is not."""


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


@dataclass
class InventoryPlatform:
    root: Path
    token: str
    """Replaces ``envsteward`` in the example's store paths, so that runs never share stores."""
    services: Services
    seeded: list[str] = field(default_factory=list)
    """Every secret value written (the leak checks look for each)."""

    def new_secret(self) -> str:
        value = f"{secrets.token_urlsafe(12)}-SEEDED"
        self.seeded.append(value)
        return value

    def vault(self, env: str, name: str) -> str:
        return f"secret/{self.token}/{env}/{name}"

    def load_example(self) -> None:
        """Every source of every environment gets its desired configuration and every reference a fresh
        value, as ``make demo`` loads the example (its helpers; no deliberate drift)."""
        catalog = self.services.catalog()
        generated: dict[str, str] = {}
        for env_name, env in catalog.environments.items():
            rendered = catalog.render(env_name)
            for spec in env.sources:
                source = self.services.config_source(env_name, spec.name)
                for key_path, desired in leaves(subtree_at(rendered.data, spec.mount_at) or {}):
                    value = desired
                    if isinstance(desired, SecretRef):
                        value = generated.setdefault(desired.uri(), self.new_secret())
                        write_secret_reference(self.services, desired, value)
                    if spec.writable:
                        source.write(key_path, value)
                    elif spec.kind == "secrets_manager" and len(key_path) == 2:
                        ref = SecretRef("aws-sm", f"{spec.prefix}{key_path[0]}", key_path[1])
                        write_secret_reference(self.services, ref, value)

    def create_backup_keys(self) -> None:
        """The example's backup KEKs: the transit key and the KMS alias (each made once per server)."""
        self.services.vault_client().transit_create_key("envsteward-backups")
        kms = self.services.aws_clients().kms()
        aliases = {alias["AliasName"] for alias in kms.list_aliases()["Aliases"]}
        if "alias/envsteward-backups" not in aliases:
            key = kms.create_key(Description="envsteward example backups")["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName="alias/envsteward-backups", TargetKeyId=key)

    def seed_cases(self) -> None:
        """One case of each kind (see the module docstring), on top of :meth:`load_example`."""
        environments = yaml.safe_load((self.root / "environments.yaml").read_text(encoding="utf-8"))
        production = next(e for e in environments["environments"] if e["name"] == "production")
        production["secrets"]["overrides"].append(
            {
                "reference": f"secret+vault://{self.vault('production', 'database')}#password",
                "max_age_days": 1,
            }
        )
        (self.root / "environments.yaml").write_text(yaml.safe_dump(environments), encoding="utf-8")
        plaintext = f"nl-{secrets.token_hex(4)}-SEEDED"
        self.seeded.append(plaintext)
        with (self.root / "config" / "production.yaml").open("a", encoding="utf-8") as layer:
            layer.write(
                "\n# seeded by the inventory test\n"
                f"partners:\n  newsletter:\n    api_key: {plaintext}\n"
                f"search:\n  api_key: secret+vault://{self.vault('production', 'search')}#api_key\n"
                f"tls:\n  certificate: secret+vault://{self.vault('production', 'tls')}#certificate\n"
            )
        self.services = Services(self.services.settings)  # reload the catalog
        vault = self.services.vault_client()
        vault.kv_write("secret", f"{self.token}/production/tls", {"certificate": _certificate(10)})
        vault.kv_write("secret", f"{self.token}/production/legacy-api", {"token": self.new_secret()})
        slack = f"xoxb-{secrets.randbelow(10**12):012d}-{self.new_secret()}"
        self.seeded.append(slack)
        self.services.aws_clients().ssm().put_parameter(
            Name=f"/{self.token}/staging/services/worker/slack_token", Value=slack, Type="String"
        )


def build_inventory_platform(
    tmp_path: Path,
    token: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
    *,
    slack_url: str = "http://127.0.0.1:9/api/",
    smtp_port: int = 9,
    pagerduty_url: str = "http://127.0.0.1:9/v2/enqueue",
) -> InventoryPlatform:
    """A copy of the example catalog in ``tmp_path`` whose store paths use ``token`` instead of
    ``envsteward``, and Services pointed at the servers."""
    root = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, root)
    for path in [root / "environments.yaml", *(root / "config").glob("*.yaml")]:
        path.write_text(
            path.read_text(encoding="utf-8").replace("envsteward/", f"{token}/"), encoding="utf-8"
        )
    catalog_file = root / "catalog.yaml"  # the Slack stand-in's channel
    catalog_file.write_text(
        catalog_file.read_text(encoding="utf-8").replace("#shopfront-ops", SLACK_CHANNEL), encoding="utf-8"
    )
    settings = Settings(
        catalog=root,
        home=tmp_path / "home",
        actor="inventory-test",
        vault=vault_settings,
        aws=aws_settings,
        slack=SlackSettings(base_url=slack_url, token_env=SLACK_TOKEN_ENV),
        smtp=SMTPSettings(host="127.0.0.1", port=smtp_port, timeout_seconds=5),
        pagerduty=PagerDutySettings(events_url=pagerduty_url),
    )
    return InventoryPlatform(root=root, token=token, services=Services(settings))


@pytest.fixture
def platform(
    tmp_path: Path, aws_name_prefix: str, vault_settings: VaultSettings, aws_settings: AWSSettings
) -> InventoryPlatform:
    built = build_inventory_platform(tmp_path, aws_name_prefix, vault_settings, aws_settings)
    built.load_example()
    built.create_backup_keys()
    return built


def findings_by_env(platform: InventoryPlatform, now: datetime) -> dict[str, list[tuple[str, str, str]]]:
    return {
        inv.environment: [(f.kind.value, f.severity.value, f.subject) for f in inv.findings]
        for inv in run_inventory(platform.services, now=now)
    }


def test_the_example_catalog_is_clean(platform: InventoryPlatform) -> None:
    for now in (datetime.now(UTC), datetime.now(UTC) + LATER):
        inventories = run_inventory(platform.services, now=now)
        assert [inv.environment for inv in inventories] == ["development", "staging", "production"]
        for inv in inventories:
            assert inv.errors == ()
            assert inv.findings == (), inv.findings
            assert inv.status is InventoryStatus.CLEAN
            secrets_only = [s for s in inv.statuses if s.scheme != "backup-key"]
            assert all(s.state is ReferenceState.OK and s.exists for s in secrets_only)
            assert all(
                s.version and s.changed_at and s.age_days == (now - s.changed_at).days for s in secrets_only
            )
            keys = {s.reference: s for s in inv.statuses if s.scheme == "backup-key"}
            assert all(s.state is ReferenceState.OK and s.max_age_days == 90 for s in keys.values())
    production = next(inv for inv in inventories if inv.environment == "production")
    assert len([s for s in production.statuses if s.scheme != "backup-key"]) == 6
    by_key = {s.reference: s for s in production.statuses if s.scheme == "backup-key"}
    assert sorted(by_key) == [
        "backup-key://aws_kms:alias/envsteward-backups",
        "backup-key://vault_transit:envsteward-backups",
    ]
    assert all(s.exists and s.changed_at and s.age_days is not None for s in by_key.values())
    by_ref = {s.reference.split("/")[-1]: s for s in production.statuses}
    assert by_ref["database#password"].max_age_days == 90
    assert by_ref["payments#api_key"].max_age_days == 365
    assert by_ref["payments#api_key"].scheme == "aws-sm"


def test_each_seeded_case_is_found_and_nothing_else(platform: InventoryPlatform) -> None:
    platform.seed_cases()
    token = platform.token
    found = findings_by_env(platform, datetime.now(UTC) + LATER)
    assert found == {
        "development": [],
        "staging": [("plaintext", "critical", "services.worker.slack_token")],
        "production": [
            ("plaintext", "critical", "partners.newsletter.api_key"),
            ("missing", "high", f"vault://secret/{token}/production/search#api_key"),
            ("overdue", "high", f"vault://secret/{token}/production/database#password"),
            ("orphan", "medium", f"secret/{token}/production/legacy-api"),
            ("certificate-expiring", "medium", f"vault://secret/{token}/production/tls#certificate"),
        ],
    }
    (production,) = run_inventory(platform.services, ["production"], now=datetime.now(UTC) + LATER)
    by_kind = {f.kind: f for f in production.findings}
    assert by_kind[FindingKind.PLAINTEXT].origin is not None
    assert by_kind[FindingKind.PLAINTEXT].origin.startswith("config/production.yaml:")
    assert by_kind[FindingKind.ORPHAN].origin == f"vault secret/{token}/production"
    tls = next(s for s in production.statuses if s.reference.endswith("tls#certificate"))
    assert tls.certificate is not None
    assert tls.certificate.subject == "CN=shop.example"
    overdue = production.overdue()
    assert [s.reference for s in overdue] == [f"vault://secret/{token}/production/database#password"]
    assert overdue[0].used_at == ("app.database.password", "backups.postgres-main.password")
    text = json.dumps(inventory_result([production]), default=str)
    for value in platform.seeded:
        assert value not in text


def test_an_unreachable_store_makes_the_environment_unknown(
    tmp_path: Path, aws_name_prefix: str, vault_settings: VaultSettings, aws_settings: AWSSettings
) -> None:
    from tests.fixtures._proc import free_port

    dead = vault_settings.model_copy(
        update={"addr": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 1.0}
    )
    built = build_inventory_platform(tmp_path, aws_name_prefix, dead, aws_settings)
    inventories = run_inventory(built.services, ["staging"], retry=False)
    assert inventories[0].status is InventoryStatus.UNKNOWN
    assert inventories[0].findings == ()
    assert {s.state for s in inventories[0].statuses if s.scheme != "backup-key"} == {ReferenceState.UNKNOWN}
    assert "connection refused" in inventories[0].errors[0]


def _store_state(platform: InventoryPlatform) -> dict[str, Any]:
    """Vault KV versions, SSM versions and Secrets Manager versions under the platform's paths."""
    state: dict[str, Any] = {}
    vault = platform.services.vault_client()
    for env in ("development", "staging", "production"):
        for name in vault.kv_walk("secret", f"{platform.token}/{env}"):
            state[f"vault:{env}/{name}"] = vault.kv_metadata(
                "secret", f"{platform.token}/{env}/{name}"
            ).current_version
    pages = (
        platform.services.aws_clients()
        .ssm()
        .get_paginator("describe_parameters")
        .paginate(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [f"/{platform.token}"]}])
    )
    for page in pages:
        for parameter in page["Parameters"]:
            state[f"ssm:{parameter['Name']}"] = parameter["Version"]
    for summary in SecretsManager(platform.services.aws_clients()).list_secrets(
        f"production/{platform.token}/"
    ):
        state[f"sm:{summary.name}"] = summary.current_version_id
    return state


def test_cli_list_and_check_exit_codes_80_columns_and_no_value(
    platform: InventoryPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.cli import _common
    from envsteward.cli.main import app

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(_common, "load_settings", lambda: platform.services.settings)
    _common.console.cache_clear()
    _common.err_console.cache_clear()
    runner = CliRunner()
    clean = runner.invoke(app, ["secrets", "check"])
    assert clean.exit_code == 0, clean.output
    platform.seed_cases()
    before = _store_state(platform)
    home_before = (
        sorted(p.name for p in (platform.services.settings.home).rglob("*"))
        if platform.services.settings.home.exists()
        else []
    )
    monkeypatch.setattr("envsteward.inventory.runner.utcnow", lambda: datetime.now(UTC) + LATER)
    outputs = []
    for args, code in [
        (["secrets", "check"], 2),
        (["secrets", "check", "--json"], 2),
        (["secrets", "check", "--env", "development"], 0),
        (["secrets", "list"], 0),
        (["secrets", "list", "--json", "--env", "production"], 0),
        (["secrets", "check", "--env", "nowhere"], 1),
        (["secrets", "check", "--bogus"], 1),
    ]:
        _common.console.cache_clear()
        result = runner.invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        outputs.append(result.output)
    table = outputs[0]
    token = platform.token
    assert f"vault://secret/{token}/production/search#api_key" in table
    assert "partners.newsletter.api_key" in table
    assert "services.worker.slack_token" in table
    assert all(len(line) <= 80 for line in table.splitlines()), "wider than 80 columns"
    listing = outputs[3]
    assert f"vault://secret/{token}/production/database#password" in listing
    assert "overdue" in listing
    document = json.loads(outputs[4])
    states = {
        s["reference"].split("/")[-1]: s["state"] for s in document["environments"]["production"]["secrets"]
    }
    assert states["database#password"] == "overdue"
    assert states["search#api_key"] == "missing"
    text = "\n".join(outputs)
    for value in platform.seeded:
        assert value not in text
    assert "SEEDED" not in text
    assert _store_state(platform) == before, "the inventory wrote to a store"
    home_after = (
        sorted(p.name for p in (platform.services.settings.home).rglob("*"))
        if platform.services.settings.home.exists()
        else []
    )
    assert home_after == home_before or set(home_after) - set(home_before) <= {"keys", "fingerprint.key"}
