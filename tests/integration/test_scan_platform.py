"""Drift scans against real stores: OpenBao (Vault KV v2), moto (SSM, Secrets Manager) and files.

Also home of :class:`ScanPlatform`, the two-environment platform the drift-scan flow tests use too: a
catalog in tmp_path whose staging and production live in a Vault KV path, SSM parameters, a Secrets
Manager secret and a JSON file, seeded with the desired configuration and known secret values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from envsteward.adapters.aws import AWSClients, SecretsManager
from envsteward.catalog.refs import SecretRef
from envsteward.drift import DriftKind
from envsteward.ports import ConfigSource, Severity
from envsteward.scan import HealResult, ScanStatus, run_scan
from envsteward.scan.heal import execute_heals
from envsteward.scan.report import environment_markdown, summary_markdown, table_rows
from envsteward.services import Services
from envsteward.settings import (
    AWSSettings,
    PagerDutySettings,
    Settings,
    SlackSettings,
    SMTPSettings,
    VaultSettings,
)
from tests.fixtures._proc import free_port

ENVIRONMENTS = ("staging", "production")
SECRETS = {
    "staging": {"db": "stg-Db-P4ss-7f3a1c-SEEDED", "pay": "stg-Pay-K3y-91be-SEEDED"},
    "production": {"db": "prd-Db-P4ss-2c8d4e-SEEDED", "pay": "prd-Pay-K3y-55aa-SEEDED"},
}
SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_SCAN_SLACK_TOKEN"
PD_KEY_ENV = "ENVSTEWARD_TEST_SCAN_PD_KEY"
CHANNEL = "#envsteward-alerts"

BASE = """\
services:
  api:
    image: ghcr.io/acme/api:1.4.0
    port: 8080
    debug: false
  worker:
    concurrency: 8
    timeout: 7.5
    queues: emails,orders
app:
  database:
    host: db.internal
    port: 5432
    pool_size: 10
    sslmode: require
feature_flags:
  new_checkout: false
  routes:
    - {name: blue, weight: 90}
    - {name: green, weight: 10}
"""

POLICIES = """\
drift:
  default_severity: medium
  severity:
    - {path: services.*.image, severity: high}
    - {path: app.database.**, severity: high}
    - {path: feature_flags.**, severity: low}
    - {path: services.worker.concurrency, severity: low}
  ignore:
    - {path: services.worker.timeout, reason: load test until spring, expires: 2020-01-31}
    - {path: services.api.debug, reason: debugging SHOP-9, expires: 2999-12-31, environments: [staging]}
  list_keys:
    - {path: feature_flags.routes, key: name}
  heal:
    enabled: false
    max_severity: medium
"""


def all_seeded_secrets() -> list[str]:
    return [value for env in SECRETS.values() for value in env.values()]


@dataclass
class ScanPlatform:
    root: Path
    vault_base: str
    prefix: str
    services: Services

    def source(self, env: str, name: str) -> ConfigSource:
        return self.services.config_source(env, name)

    def flags_file(self, env: str) -> Path:
        return self.root / "live" / env / "flags.json"

    def ssm_name(self, env: str, *keys: str) -> str:
        return f"/{self.prefix}/{env}/services/" + "/".join(keys)

    def vault_secret(self, env: str, name: str) -> str:
        return f"{self.vault_base.split('/', 1)[1]}/{env}/{name}"

    def seed(self, secrets: dict[str, dict[str, str]] | None = None) -> None:
        """Write every environment's desired configuration into its live sources (secrets: known values)."""
        secrets = secrets or SECRETS
        catalog = self.services.catalog()
        for env in ENVIRONMENTS:
            rendered = catalog.render(env)
            self.flags_file(env).parent.mkdir(parents=True, exist_ok=True)
            self.flags_file(env).write_text("{}", encoding="utf-8")
            for spec in catalog.environment(env).sources:
                if spec.kind == "http":
                    continue
                subtree = rendered.get(spec.mount_at, {})
                for key_path, desired in _leaves(subtree):
                    value = desired
                    if isinstance(desired, SecretRef):
                        value = secrets[env]["db" if "database" in key_path else "pay"]
                        if desired.scheme == "vault":
                            self.services.vault_client().kv_write(
                                desired.mount, desired.path, {desired.key: value}
                            )
                    if spec.writable:
                        self.source(env, spec.name).write(key_path, value)
                    else:  # the read-only Secrets Manager source: the administrator fills it
                        manager = SecretsManager(self.services.aws_clients())
                        name = f"{self.prefix}/{env}/{key_path[0]}"
                        try:
                            document = json.loads(manager.get_secret_string(name).get_secret_value())
                        except Exception:
                            document = {}
                        document[key_path[1]] = value
                        manager.put_secret_string(name, SecretStr(json.dumps(document)))


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, str(key)))
    elif prefix:
        yield prefix, tree


def write_catalog(
    root: Path, vault_base: str, prefix: str, *, unreachable_url: str | None = None, heal: bool = False
) -> None:
    (root / "config").mkdir(parents=True, exist_ok=True)
    channels = [
        {"name": "ops-slack", "kind": "slack", "channel": CHANNEL, "min_severity": "low"},
        {"name": "ops-email", "kind": "email", "to": ["ops@acme.example"], "min_severity": "high"},
        {
            "name": "oncall",
            "kind": "pagerduty",
            "routing_key": f"secret+env://{PD_KEY_ENV}",
            "min_severity": "critical",
        },
    ]
    catalog = {"platform": "scantest", "base": ["config/base.yaml"], "channels": channels}
    (root / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
    (root / "config" / "base.yaml").write_text(BASE, encoding="utf-8")
    (root / "policies.yaml").write_text(POLICIES.replace("enabled: false", f"enabled: {str(heal).lower()}"))
    environments = []
    for index, env in enumerate(ENVIRONMENTS):
        overlay: dict[str, Any] = {
            "app": {
                "database": {
                    "host": f"db.{env}.internal",
                    # the canonical secret lives outside the live source: the live copy can drift from it
                    "password": f"secret+vault://{vault_base}/canonical/{env}/db#password",
                }
            },
            "integrations": {
                "payments": {
                    "provider": "stripe",
                    "api_key": f"secret+aws-sm://{prefix}/{env}/payments#api_key",
                }
            },
        }
        if env == "staging":
            overlay["services"] = {"worker": {"tracing": True}}  # only in staging: a parity finding
        if unreachable_url and env == "production":
            overlay["status"] = {"ready": True}
        (root / "config" / f"{env}.yaml").write_text(json.dumps(overlay), encoding="utf-8")
        sources: list[dict[str, Any]] = [
            {
                "name": "vault-app",
                "kind": "vault_kv",
                "path": f"{vault_base}/{env}",
                "mount_at": "app",
                "writable": True,
            },
            {
                "name": "ssm-services",
                "kind": "ssm",
                "prefix": f"/{prefix}/{env}/services/",
                "mount_at": "services",
                "writable": True,
            },
            {
                "name": "integrations",
                "kind": "secrets_manager",
                "prefix": f"{prefix}/{env}/",
                "mount_at": "integrations",
            },
            {
                "name": "flags",
                "kind": "file",
                "path": f"live/{env}/flags.json",
                "mount_at": "feature_flags",
                "writable": True,
            },
        ]
        if unreachable_url and env == "production":
            sources.append(
                {"name": "status-api", "kind": "http", "url": unreachable_url, "mount_at": "status"}
            )
        spec: dict[str, Any] = {
            "name": env,
            "tier": env,
            "overlays": [f"config/{env}.yaml"],
            "sources": sources,
            "notify": ["ops-slack", "ops-email", "oncall"],
            "environment_specific": ["app.database.host"],
            "approval": {"approvers": ["alice", "bob", "carol"], "approvals_needed": 2 if index else 1},
        }
        if index == 0:
            spec["promotes_to"] = "production"
        environments.append(spec)
    (root / "environments.yaml").write_text(json.dumps({"environments": environments}), encoding="utf-8")


def build_platform(
    tmp_path: Path,
    vault_kv_path: str,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
    *,
    slack_url: str = "http://127.0.0.1:9/api/",
    smtp_port: int = 9,
    pagerduty_url: str = "http://127.0.0.1:9/v2/enqueue",
    unreachable: bool = False,
    heal: bool = False,
) -> ScanPlatform:
    root = tmp_path / "catalog"
    unreachable_url = f"http://127.0.0.1:{free_port()}/status" if unreachable else None
    write_catalog(root, vault_kv_path, aws_name_prefix, unreachable_url=unreachable_url, heal=heal)
    settings = Settings(
        catalog=root,
        home=tmp_path / "home",
        actor="scan-test",
        vault=vault_settings,
        aws=aws_settings,
        slack=SlackSettings(base_url=slack_url, token_env=SLACK_TOKEN_ENV),
        smtp=SMTPSettings(host="127.0.0.1", port=smtp_port, timeout_seconds=5),
        pagerduty=PagerDutySettings(events_url=pagerduty_url),
    )
    return ScanPlatform(
        root=root, vault_base=vault_kv_path, prefix=aws_name_prefix, services=Services(settings)
    )


# ---------------------------------------------------------------------------------------------------------
# Read-only proof: everything that could change when something writes
# ---------------------------------------------------------------------------------------------------------


def store_versions(platform: ScanPlatform, aws_clients: AWSClients) -> dict[str, Any]:
    """Vault KV metadata versions, SSM parameter versions, Secrets Manager versions, file mtimes and bytes."""
    versions: dict[str, Any] = {}
    vault = platform.services.vault_client()
    mount = platform.vault_base.split("/", 1)[0]
    for env in ENVIRONMENTS:
        for name in ("database",):
            meta = vault.kv_metadata(mount, platform.vault_secret(env, name))
            versions[f"vault:{env}/{name}"] = (meta.current_version, str(meta.updated_time))
        pages = (
            aws_clients.ssm()
            .get_paginator("describe_parameters")
            .paginate(
                ParameterFilters=[
                    {"Key": "Path", "Option": "Recursive", "Values": [f"/{platform.prefix}/{env}"]}
                ]
            )
        )
        for page in pages:
            for parameter in page["Parameters"]:
                versions[f"ssm:{parameter['Name']}"] = (
                    parameter["Version"],
                    str(parameter["LastModifiedDate"]),
                )
        secret = aws_clients.secretsmanager().describe_secret(SecretId=f"{platform.prefix}/{env}/payments")
        versions[f"sm:{env}"] = sorted(secret.get("VersionIdsToStages", {}))
        path = platform.flags_file(env)
        versions[f"file:{env}"] = (path.stat().st_mtime_ns, path.read_bytes())
    return versions


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def platform(
    tmp_path: Path,
    vault_kv_path: str,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
) -> ScanPlatform:
    built = build_platform(tmp_path, vault_kv_path, aws_name_prefix, vault_settings, aws_settings)
    built.seed()
    return built


def _items(run: Any, env: str) -> dict[str, Any]:
    scan = next(s for s in run.scans if s.environment == env)
    return {item.path: item for item in scan.report.items}


def test_a_seeded_platform_has_no_drift_and_a_scan_writes_nothing(
    platform: ScanPlatform, aws_clients: AWSClients
) -> None:
    before = store_versions(platform, aws_clients)
    assert len([k for k in before if k.startswith("ssm:")]) == 13  # 6 per environment, staging: tracing
    run = run_scan(platform.services)
    assert [(s.environment, s.status) for s in run.scans] == [
        ("staging", ScanStatus.OK),
        ("production", ScanStatus.OK),
    ], [(s.environment, s.reason, [i.path for i in s.report.items]) for s in run.scans]
    # the expired ignore is reported even though nothing drifted under it
    assert [rule.path for rule in run.scans[0].report.expired_ignores] == ["services.worker.timeout"]
    (parity,) = run.parities
    assert [(i.path, i.kind) for i in parity.report.items] == [("services.worker.tracing", DriftKind.REMOVED)]
    assert parity.report.items[0].detail == "present in staging, missing in production"
    assert store_versions(platform, aws_clients) == before, "a scan without heal wrote to a source"


def test_each_kind_of_drift_with_type_traps_severity_ignores_and_keyed_lists(
    platform: ScanPlatform, aws_clients: AWSClients
) -> None:
    ssm = aws_clients.ssm()
    # SSM: changed (severity rule: low), a type trap (7.5 -> 7 is number -> integer), an added parameter,
    # a removed one, an image change (high), the ignored-but-expired timeout
    ssm.put_parameter(Name=platform.ssm_name("staging", "worker", "concurrency"), Value="16", Overwrite=True)
    ssm.put_parameter(Name=platform.ssm_name("staging", "worker", "timeout"), Value="7", Overwrite=True)
    ssm.put_parameter(Name=platform.ssm_name("staging", "worker", "extra"), Value="x", Type="String")
    ssm.put_parameter(Name=platform.ssm_name("staging", "api", "port"), Value="8080.0", Overwrite=True)
    ssm.delete_parameter(Name=platform.ssm_name("staging", "worker", "queues"))
    ssm.put_parameter(
        Name=platform.ssm_name("staging", "api", "image"), Value="ghcr.io/acme/api:1.5.0-rc1", Overwrite=True
    )
    ssm.put_parameter(Name=platform.ssm_name("staging", "api", "debug"), Value="true", Overwrite=True)
    # Vault (which stores 10.0 as 10: its own JSON numbers): 10 -> "10", and the secret changed by hand
    platform.source("staging", "vault-app").write(("database", "pool_size"), "10")
    platform.source("staging", "vault-app").write(("database", "password"), "hand-edited-Secret-SEEDED")
    # file: false -> 0 (== says equal), the keyed list reordered (no drift) with one weight changed
    platform.flags_file("staging").write_text(
        json.dumps(
            {"new_checkout": 0, "routes": [{"name": "green", "weight": 10}, {"name": "blue", "weight": 80}]}
        )
    )
    run = run_scan(platform.services, ["staging"])
    items = _items(run, "staging")
    got = {path: (item.kind.value, item.severity.value) for path, item in items.items()}
    assert got == {
        "services.worker.concurrency": ("changed", "low"),
        "services.worker.timeout": ("type_changed", "medium"),
        "services.worker.extra": ("added", "medium"),
        "services.api.port": ("type_changed", "medium"),
        "services.worker.queues": ("removed", "medium"),
        "services.api.image": ("changed", "high"),
        "app.database.pool_size": ("type_changed", "high"),
        "app.database.password": ("changed", "high"),
        "feature_flags.new_checkout": ("type_changed", "low"),
        "feature_flags.routes[name=blue].weight": ("changed", "low"),
    }
    scan = run.scans[0]
    assert scan.status is ScanStatus.DRIFT
    assert scan.report.ignored == 1  # services.api.debug: ignored in staging until 2999
    assert items["services.worker.timeout"].ignored_by == "services.worker.timeout"
    assert not items["services.worker.timeout"].healable
    assert items["app.database.pool_size"].desired_type == "integer"
    assert items["app.database.pool_size"].live_type == "string"
    assert (items["services.api.port"].desired, items["services.api.port"].live) == (8080, 8080.0)
    assert items["services.api.image"].origin == "config/base.yaml:3"
    assert items["feature_flags.routes[name=blue].weight"].origin is not None
    secret = items["app.database.password"]
    assert secret.secret
    assert not secret.healable
    assert str(secret.desired).startswith("hmac-sha256:")
    assert secret.desired != secret.live
    # production is untouched and not in this scan; staging alone means no parity pair
    assert [s.environment for s in run.scans] == ["staging"]
    assert run.parities == []
    _assert_no_secret(
        run.to_dict(), environment_markdown(scan), summary_markdown(run.scans), table_rows(run.scans)
    )


def test_a_secret_reused_across_environments_is_critical(
    tmp_path: Path,
    vault_kv_path: str,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
) -> None:
    platform = build_platform(tmp_path, vault_kv_path, aws_name_prefix, vault_settings, aws_settings)
    shared = {**SECRETS, "production": {**SECRETS["production"], "db": SECRETS["staging"]["db"]}}
    platform.seed(shared)
    run = run_scan(platform.services)
    assert {s.status for s in run.scans} == {ScanStatus.OK}
    (parity,) = run.parities
    reused = [i for i in parity.report.items if i.kind == DriftKind.SECRET_REUSED]
    assert len(reused) == 1
    assert reused[0].severity is Severity.CRITICAL
    assert reused[0].path == "app.database.password"
    assert "staging:app.database.password and production:app.database.password" in (reused[0].detail or "")
    assert parity.status is ScanStatus.DRIFT
    _assert_no_secret(run.to_dict())


def test_an_unreachable_source_makes_only_its_environment_unknown(
    tmp_path: Path,
    vault_kv_path: str,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
) -> None:
    platform = build_platform(
        tmp_path, vault_kv_path, aws_name_prefix, vault_settings, aws_settings, unreachable=True
    )
    platform.seed()
    platform.source("production", "vault-app").write(("database", "pool_size"), 11)
    run = run_scan(platform.services)
    staging, production = run.scans
    assert staging.status is ScanStatus.OK
    assert production.status is ScanStatus.UNKNOWN
    assert "status-api" in (production.reason or "")
    assert "http" in (production.reason or "")
    failed = [s for s in production.sources if not s.ok]
    assert [s.name for s in failed] == ["status-api"]
    # the readable sources were still compared, and nothing of the unread one shows as removed
    assert [i.path for i in production.report.items] == ["app.database.pool_size"]
    assert run.to_dict()["status"] == "unknown"


def test_heal_writes_back_low_and_medium_items_and_leaves_high_ones_for_approval(
    platform: ScanPlatform, aws_clients: AWSClients
) -> None:
    ssm = aws_clients.ssm()
    ssm.put_parameter(Name=platform.ssm_name("staging", "worker", "concurrency"), Value="16", Overwrite=True)
    ssm.delete_parameter(Name=platform.ssm_name("staging", "api", "port"))
    platform.source("staging", "flags").write(("new_checkout",), True)
    platform.source("staging", "vault-app").write(("database", "pool_size"), 12)
    run = run_scan(platform.services, ["staging"], heal=True)
    results = {o.path: o.result for o in run.outcomes}
    assert results == {
        "services.worker.concurrency": HealResult.HEALED,
        "services.api.port": HealResult.HEALED,
        "feature_flags.new_checkout": HealResult.HEALED,
        "app.database.pool_size": HealResult.NOT_APPROVED,
    }
    after = run_scan(platform.services, ["staging"])
    assert [i.path for i in after.scans[0].report.items] == ["app.database.pool_size"]
    port = platform.ssm_name("staging", "api", "port")
    value = ssm.get_parameter(Name=port, WithDecryption=True)["Parameter"]["Value"]
    assert value == "8080"
    healed = [r for r in platform.services.audit_log().records() if r.action == "drift.healed"]
    assert sorted(r.details["path"] for r in healed) == [
        "feature_flags.new_checkout",
        "services.api.port",
        "services.worker.concurrency",
    ]
    assert {r.environment for r in healed} == {"staging"}


def test_heal_skips_a_value_that_changed_since_the_scan(
    platform: ScanPlatform, aws_clients: AWSClients
) -> None:
    ssm = aws_clients.ssm()
    name = platform.ssm_name("staging", "worker", "concurrency")
    ssm.put_parameter(Name=name, Value="16", Overwrite=True)
    run = run_scan(platform.services, ["staging"])
    (action,) = run.scans[0].heal.automatic
    ssm.put_parameter(Name=name, Value="24", Overwrite=True)  # someone else, after the scan
    fingerprinter = platform.services.fingerprinter()
    (outcome,) = execute_heals(
        [action],
        platform.source("staging", "ssm-services"),
        fingerprinter.fingerprint,
        platform.services.audit_log(),
    )
    assert outcome.result is HealResult.SKIPPED
    assert "changed since the scan" in outcome.reason
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "24"
    (record,) = list(platform.services.audit_log().records(action="drift.heal_skipped"))
    assert record.details["path"] == "services.worker.concurrency"
    # the desired value written meanwhile by someone else: nothing to do, said so
    ssm.put_parameter(Name=name, Value="8", Overwrite=True)
    (again,) = execute_heals(
        [action], platform.source("staging", "ssm-services"), fingerprinter.fingerprint, None
    )
    assert again.result is HealResult.ALREADY_DESIRED


def _assert_no_secret(*outputs: Any) -> None:
    text = json.dumps(outputs, default=str)
    for value in [*all_seeded_secrets(), "hand-edited-Secret-SEEDED"]:
        assert value not in text
    assert "SEEDED" not in text


def test_seeded_secrets_resolve(platform: ScanPlatform) -> None:
    """The seeded values are real (the no-leak assertions elsewhere would otherwise prove nothing)."""
    services = platform.services
    rendered = services.catalog().render("production")
    ref = rendered.secret_refs["app.database.password"]
    assert services.resolve_secret(ref).get_secret_value() == SECRETS["production"]["db"]
    assert os.environ.get(PD_KEY_ENV) is None or True
