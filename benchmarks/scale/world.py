"""The scale benchmark's world: a catalog of N environments x 1,000 configuration keys, its live values in
OpenBao (Vault KV v2) and moto (SSM Parameter Store), and the deliberate drift.

Layout of one environment ``env-NN`` (``KEYS`` leaves in all, half in each store):

- ``app.svc-SS.<10 keys>`` (Vault KV, source ``vault-app``): 50 secrets ``secret/scale/env-NN/svc-SS``, each
  holding 10 keys; ``app.svc-00..04.password`` are secret references
  (``secret+vault://secret/scale-secrets/env-NN#svc-SS``), so every scan also resolves 5 secrets per
  environment.
- ``services.svc-SS.<10 keys>`` (SSM, source ``ssm-services``): 500 String parameters
  ``/scale/env-NN/services/svc-SS/<key>``.
- 10 HTTP health checks ``http://127.0.0.1:<port>/env-NN/check-C`` (served by ``endpoints.py``).

Environments form one promotion path (development -> staging -> production tiers, 40/30/30 %). The base
layer holds the shared values; each environment's overlay sets its ``host`` and ``replicas`` values (declared
environment-specific). Deterministic: the same N gives the same catalog and values.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

SERVICES_PER_STORE = 50
KEYS_PER_SERVICE = 10
KEYS = 2 * SERVICES_PER_STORE * KEYS_PER_SERVICE
CHECKS_PER_ENV = 10
SECRET_REFS_PER_ENV = 5


def env_name(index: int) -> str:
    return f"env-{index:02d}"


def tier_of(index: int, count: int) -> str:
    if index < round(count * 0.4):
        return "development"
    if index < round(count * 0.7):
        return "staging"
    return "production"


def _service(svc: int) -> str:
    return f"svc-{svc:02d}"


def app_values(svc: int) -> dict[str, Any]:
    """The desired Vault secret of one service (10 keys; ``host`` is set per environment)."""
    return {
        "host": "placeholder",
        "port": 8000 + svc,
        "timeout_ms": 2500,
        "pool_size": 10 + svc % 7,
        "log_level": "info",
        "retries": 3,
        "tls": True,
        "region": "eu-west-1",
        "owner": f"team-{svc % 8}",
        "api_version": f"v{1 + svc % 3}",
    }


def services_values(svc: int) -> dict[str, Any]:
    """The desired SSM parameters of one service (10 keys; ``replicas`` is set per environment)."""
    return {
        "image": f"ghcr.io/scale/{_service(svc)}:2.{svc % 10}.1",
        "replicas": 1,
        "cpu": "500m",
        "memory": "512Mi",
        "enabled": True,
        "health_path": "/healthz",
        "min_ready_seconds": 10,
        "max_surge": "25%",
        "cpu_target": 60 + svc % 20,
        "debug": False,
    }


def overlay(index: int, count: int) -> dict[str, Any]:
    """What ``env-NN`` sets over the base layer: its hosts, replicas and password references."""
    name = env_name(index)
    replicas = {"development": 1, "staging": 2, "production": 3}[tier_of(index, count)]
    app: dict[str, Any] = {}
    for svc in range(SERVICES_PER_STORE):
        app[_service(svc)] = {"host": f"{_service(svc)}.{name}.internal"}
        if svc < SECRET_REFS_PER_ENV:
            app[_service(svc)]["password"] = f"secret+vault://secret/scale-secrets/{name}#{_service(svc)}"
    services = {_service(svc): {"replicas": replicas} for svc in range(SERVICES_PER_STORE)}
    return {"app": app, "services": services}


def base_layer() -> dict[str, Any]:
    return {
        "app": {_service(svc): app_values(svc) for svc in range(SERVICES_PER_STORE)},
        "services": {_service(svc): services_values(svc) for svc in range(SERVICES_PER_STORE)},
    }


def write_catalog(root: Path, count: int, endpoint_port: int) -> None:
    """Write the catalog of ``count`` environments to ``root`` (a new folder)."""
    (root / "config").mkdir(parents=True)
    (root / "catalog.yaml").write_text(
        yaml.safe_dump(
            {
                "platform": "scale",
                "description": f"scale benchmark: {count} environments x {KEYS} keys",
                "base": ["config/base.yaml"],
                "channels": [
                    {"name": "ops-slack", "kind": "slack", "channel": "#scale", "min_severity": "low"}
                ],
            },
            sort_keys=False,
        )
    )
    (root / "config" / "base.yaml").write_text(yaml.safe_dump(base_layer(), sort_keys=False))
    environments = []
    for index in range(count):
        name = env_name(index)
        (root / "config" / f"{name}.yaml").write_text(yaml.safe_dump(overlay(index, count), sort_keys=False))
        spec: dict[str, Any] = {
            "name": name,
            "tier": tier_of(index, count),
            "overlays": [f"config/{name}.yaml"],
            "sources": [
                {
                    "name": "vault-app",
                    "kind": "vault_kv",
                    "path": f"secret/scale/{name}",
                    "mount_at": "app",
                    "writable": True,
                },
                {
                    "name": "ssm-services",
                    "kind": "ssm",
                    "prefix": f"/scale/{name}/services/",
                    "mount_at": "services",
                    "writable": True,
                },
            ],
            "health_checks": [
                {
                    "name": f"check-{c}",
                    "kind": "http",
                    "url": f"http://127.0.0.1:{endpoint_port}/{name}/check-{c}",
                }
                for c in range(CHECKS_PER_ENV)
            ],
            "notify": ["ops-slack"],
            "environment_specific": ["app.*.host", "app.*.password", "services.*.replicas"],
            "approval": {"approvers": ["alice", "bob", "carol"]},
        }
        if index + 1 < count:
            spec["promotes_to"] = env_name(index + 1)
        environments.append(spec)
    (root / "environments.yaml").write_text(yaml.safe_dump({"environments": environments}, sort_keys=False))
    (root / "policies.yaml").write_text(
        yaml.safe_dump(
            {
                "drift": {
                    "default_severity": "medium",
                    "severity": [
                        {"path": "services.*.image", "severity": "high"},
                        {"path": "app.*.password", "severity": "critical"},
                    ],
                    # read-only scans: healing would ask a reviewer (the run pauses up to 240 s) or write
                    "heal": {"enabled": False},
                }
            },
            sort_keys=False,
        )
    )


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix, tree


def seed(services: Any, count: int, *, threads: int = 8) -> dict[str, int]:
    """Write every environment's desired values (secret references resolved to generated secrets) straight
    into OpenBao and moto: one KV write per secret, one PutParameter per leaf. Returns write counts."""
    from envsteward.adapters.aws_ssm import encode_scalar

    catalog = services.catalog()
    vault = services.vault_client()
    ssm = services.aws_clients().ssm()
    rng = random.Random(7)
    writes: list[tuple[str, Any]] = []
    for name in catalog.promotion_path:
        rendered = catalog.render(name).data
        secrets: dict[str, str] = {}
        for svc, data in rendered["app"].items():
            plain = dict(data)
            if "password" in plain:
                value = f"pw-{rng.getrandbits(96):024x}"
                secrets[svc] = value
                plain["password"] = value
            writes.append(("vault", (f"scale/{name}/{svc}", plain)))
        writes.append(("vault", (f"scale-secrets/{name}", secrets)))
        for key_path, value in _leaves(rendered["services"]):
            writes.append(("ssm", (f"/scale/{name}/services/" + "/".join(key_path), encode_scalar(value))))

    def write(item: tuple[str, Any]) -> None:
        kind, (path, value) = item
        if kind == "vault":
            vault.kv_write("secret", path, value)
        else:
            ssm.put_parameter(Name=path, Value=value, Type="String", Overwrite=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, writes))
    return {
        "vault_secrets": sum(1 for kind, _ in writes if kind == "vault"),
        "ssm_parameters": sum(1 for kind, _ in writes if kind == "ssm"),
    }


def inject_drift(services: Any, count: int, rng: random.Random, *, envs: int, per_env: int) -> list[str]:
    """Change ``per_env`` live values in each of ``envs`` environments chosen by ``rng`` (half in Vault, half
    in SSM, through the sources' own write paths); returns the changed paths (``env-NN:app.svc-SS.key``)."""
    changed = []
    for index in rng.sample(range(count), min(envs, count)):
        name = env_name(index)
        for n in range(per_env):
            svc = _service(rng.randrange(SERVICES_PER_STORE))
            if n % 2 == 0:
                key = rng.choice(["timeout_ms", "pool_size", "retries"])
                value: Any = rng.randrange(10_000, 99_999)
                services.config_source(name, "vault-app").write((svc, key), value)
                changed.append(f"{name}:app.{svc}.{key}")
            else:
                key = rng.choice(["min_ready_seconds", "cpu_target"])
                value = rng.randrange(10_000, 99_999)
                services.config_source(name, "ssm-services").write((svc, key), value)
                changed.append(f"{name}:services.{svc}.{key}")
    return changed


def endpoint_plan(count: int) -> dict[str, dict[str, Any]]:
    """How each health endpoint answers: mostly 200 in a few ms; 4 % slow (1.2 s, above the checks'
    1,000 ms latency limit: degraded), 2 % HTTP 503 (down), 2 per 500 hang past the 5 s check timeout."""
    plan: dict[str, dict[str, Any]] = {}
    number = 0
    for index in range(count):
        for c in range(CHECKS_PER_ENV):
            path = f"/{env_name(index)}/check-{c}"
            if number % 250 == 111:
                plan[path] = {"status": 200, "delay": 8.0}
            elif number % 50 == 7:
                plan[path] = {"status": 503, "delay": 0.005}
            elif number % 25 == 3:
                plan[path] = {"status": 200, "delay": 1.2}
            else:
                plan[path] = {"status": 200, "delay": 0.002 + (number % 13) / 1000}
            number += 1
    return plan


if __name__ == "__main__":  # print the counts of a world, no servers needed
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    plan = endpoint_plan(size)
    print(json.dumps({"environments": size, "keys_per_env": KEYS, "endpoints": len(plan)}))
