"""A small three-environment catalog for promotion tests, written into a temporary folder.

``write_catalog(folder, vault_base=..., ssm_base=...)`` builds development -> staging -> production with
three live sources per environment: Vault KV (``app``), SSM (``services``) and a JSON file
(``feature_flags``). Without ``vault_base``/``ssm_base`` every source is a JSON file (pure unit tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENVS = ("development", "staging", "production")

BASE = """\
services:
  api:
    image: shop/api:1.0.0
    instances: 1
    log_level: info
    timeout_seconds: 30
app:
  database:
    host: localhost
    port: 5432
    pool_size: 10
feature_flags:
  new_checkout: false
  countries: [DE, FR]
"""

POLICIES = """\
drift:
  secret_paths: ["**.api_key"]
tier_rules:
  development: {defaults: false}
  staging: {defaults: false}
  production:
    defaults: false
    rules:
      - id: no-debug-logs
        description: Production never logs at debug level.
        severity: high
        path: services.*.log_level
        not_one_of: [debug, trace]
"""


def _sources(env: str, vault_base: str | None, ssm_base: str | None) -> str:
    if vault_base is None or ssm_base is None:
        return f"""\
      - {{name: vault-app, kind: file, path: live/{env}/app.json, mount_at: app, writable: true}}
      - {{name: ssm-services, kind: file, path: live/{env}/services.json, mount_at: services, writable: true}}
      - {{name: flags, kind: file, path: live/{env}/flags.json, mount_at: feature_flags, writable: true}}
"""
    return f"""\
      - {{name: vault-app, kind: vault_kv, path: {vault_base}/{env}, mount_at: app, writable: true}}
      - {{name: ssm-services, kind: ssm, prefix: {ssm_base}/{env}/services/, mount_at: services,
         writable: true}}
      - {{name: flags, kind: file, path: live/{env}/flags.json, mount_at: feature_flags, writable: true}}
"""


def write_catalog(
    folder: Path,
    *,
    vault_base: str | None = None,
    ssm_base: str | None = None,
    staging_timeout_hours: float = 8,
    production_timeout_hours: float = 24,
    health_url: str | None = None,
    slack_channel: str | None = None,
) -> Path:
    """Write the catalog into ``folder`` and return it. ``vault_base`` is ``<kv-mount>/<path>`` (each
    environment lives under ``<vault_base>/<env>``), ``ssm_base`` a parameter path prefix."""
    (folder / "config").mkdir(parents=True, exist_ok=True)
    for env in ENVS:
        (folder / "live" / env).mkdir(parents=True, exist_ok=True)
    channels = (
        f"channels:\n  - {{name: ops-slack, kind: slack, channel: '{slack_channel}'}}\n"
        if slack_channel
        else ""
    )
    (folder / "catalog.yaml").write_text(f"platform: shop\nbase: [config/base.yaml]\n{channels}")
    (folder / "config" / "base.yaml").write_text(BASE)
    (folder / "policies.yaml").write_text(POLICIES)
    vault_ref = vault_base or "secret/shop"
    for env in ENVS:
        (folder / "config" / f"{env}.yaml").write_text(
            "app:\n  database:\n"
            f"    host: db.{env}.internal\n"
            f"    password: secret+vault://{vault_ref}/{env}/database#password\n"
            f"    api_key: secret+vault://{vault_ref}/{env}/database#api_key\n"
        )
    notify = "    notify: [ops-slack]\n" if slack_channel else ""
    health = (
        f"    health_checks:\n      - {{name: api, kind: http, url: '{health_url}', timeout_seconds: 5}}\n"
        if health_url
        else ""
    )
    specific = "    environment_specific: [app.database.host, '**.password', services.*.instances]\n"
    envs = ["environments:"]
    for env, nxt in zip(ENVS, (*ENVS[1:], None), strict=True):
        block = f"  - name: {env}\n    tier: {env}\n    overlays: [config/{env}.yaml]\n"
        if nxt:
            block += f"    promotes_to: {nxt}\n"
        block += "    sources:\n" + _sources(env, vault_base, ssm_base) + specific + notify
        if env != "development":
            block += health
        if env == "staging":
            block += f"    approval: {{approvers: [alice, bob], timeout_hours: {staging_timeout_hours}}}\n"
        if env == "production":
            block += (
                "    approval: {approvers: [alice, bob, carol], approvals_needed: 2, "
                f"timeout_hours: {production_timeout_hours}}}\n"
            )
        envs.append(block.rstrip("\n"))
    (folder / "environments.yaml").write_text("\n".join(envs) + "\n")
    for env in ENVS:
        flags = folder / "live" / env / "flags.json"
        if not flags.exists():
            flags.write_text(json.dumps({"new_checkout": False, "countries": ["DE", "FR"]}))
        for name in ("app", "services"):
            path = folder / "live" / env / f"{name}.json"
            if not path.exists():
                path.write_text("{}")
    return folder


def live_tree(app: dict[str, Any], services: dict[str, Any], flags: dict[str, Any]) -> Any:
    """A LiveTree for the three sources (every source readable)."""
    from envsteward.catalog import load_catalog  # noqa: F401 - import order: catalog before scan
    from envsteward.scan.live import LiveTree
    from envsteward.scan.model import SourceState

    states = tuple(
        SourceState(name=name, kind="file", mount_at=mount, writable=True, ok=True)
        for name, mount in (("vault-app", "app"), ("ssm-services", "services"), ("flags", "feature_flags"))
    )
    return LiveTree(data={"app": app, "services": services, "feature_flags": flags}, sources=states)


# ---------------------------------------------------------------------------------------------------------
# Live environments on OpenBao and moto (integration, flow and e2e tests)
# ---------------------------------------------------------------------------------------------------------

SEEDED = {
    "development": {"password": "s33d-dev-db-pa55-91f0", "api_key": "s33d-dev-apikey-77c2"},
    "staging": {"password": "s33d-stg-db-pa55-4be1", "api_key": "s33d-stg-apikey-0d9a"},
    "production": {"password": "s33d-prd-db-pa55-c3a7", "api_key": "s33d-prd-apikey-58e4"},
}
"""Secret values seeded in Vault: none of them may appear in any output of a promotion."""

ALL_SEEDED = tuple(value for values in SEEDED.values() for value in values.values())

LIVE_APP = {
    "development": {
        "database": {"host": "db.development.internal", "port": 5432, "pool_size": 20},
        "cache": {"ttl": 60},
    },
    "staging": {"database": {"host": "db.staging.internal", "port": 5432, "pool_size": 10}},
    "production": {"database": {"host": "db.production.internal", "port": 5432, "pool_size": 10}},
}
LIVE_SERVICES = {
    "development": {
        "api/image": "shop/api:1.1.0",
        "api/instances": "1",
        "api/log_level": "info",
        "api/timeout_seconds": "45",
        "worker/image": "shop/worker:2.0.0",
    },
    "staging": {
        "api/image": "shop/api:1.0.0",
        "api/instances": "2",
        "api/log_level": "info",
        "api/timeout_seconds": "30",
    },
    "production": {
        "api/image": "shop/api:1.0.0",
        "api/instances": "4",
        "api/log_level": "info",
        "api/timeout_seconds": "30",
    },
}
LIVE_FLAGS = {
    "development": {"new_checkout": True, "countries": ["DE", "FR", "NL"]},
    "staging": {"new_checkout": False, "countries": ["DE", "FR"]},
    "production": {"new_checkout": False, "countries": ["DE", "FR"]},
}
DEV_TO_STAGING = (
    "app.cache.ttl",
    "app.database.pool_size",
    "feature_flags.countries",
    "feature_flags.new_checkout",
    "services.api.image",
    "services.api.timeout_seconds",
    "services.worker.image",
)


def seed_environments(folder: Path, vault: Any, ssm: Any, vault_base: str, ssm_base: str) -> None:
    """Write the live state of all three environments (``vault``: a VaultClient, ``ssm``: a boto3 client)."""
    mount, base = vault_base.split("/", 1)
    for env in ENVS:
        for name, data in LIVE_APP[env].items():
            payload = dict(data)
            if name == "database":
                payload.update(SEEDED[env])
            vault.kv_write(mount, f"{base}/{env}/{name}", payload)
        for key, value in LIVE_SERVICES[env].items():
            ssm.put_parameter(
                Name=f"{ssm_base}/{env}/services/{key}", Value=value, Type="SecureString", Overwrite=True
            )
        (folder / "live" / env / "flags.json").write_text(json.dumps(LIVE_FLAGS[env], indent=2))


def read_everything(services: Any, env: str) -> dict[str, Any]:
    """Every source of ``env`` as read now (for "exactly as it was" comparisons)."""
    catalog = services.catalog()
    return {
        spec.name: json.loads(json.dumps(services.config_source(env, spec.name).read()))
        for spec in catalog.environment(env).sources
    }
