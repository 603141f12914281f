"""Vault's unauthenticated health endpoint (``GET /v1/sys/health``) at an address of the check's own, for
health checks of a Vault other than the one in settings (no token, no client from settings needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from envsteward.errors import EnvstewardError, PermanentError, TransientError
from envsteward.health._http import translate_httpx

HEALTH_QUERY = "standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200"
"""Ask for 200 in every state so the body (not the status code) tells sealed/standby/uninitialised apart."""


@dataclass(frozen=True)
class VaultFlags:
    initialized: bool
    sealed: bool
    standby: bool


def vault_flags(addr: str, timeout_seconds: float, *, verify_tls: bool = True) -> tuple[VaultFlags, float]:
    """GET ``<addr>/v1/sys/health`` (no token needed) and return the health flags and latency in ms.

    Calls Vault over HTTP. Raises TransientError (refused, timeout, 5xx), PermanentError (unexpected
    answer, invalid address).
    """
    import httpx

    url = f"{addr.rstrip('/')}/v1/sys/health?{HEALTH_QUERY}"
    try:
        with httpx.Client(timeout=timeout_seconds, verify=verify_tls) as client:
            started = time.perf_counter()
            response = client.get(url)
            latency_ms = (time.perf_counter() - started) * 1000.0
    except httpx.HTTPError as exc:
        raise _as_vault(translate_httpx(exc, timeout_seconds)) from None
    if response.status_code >= 500:
        raise TransientError(f"HTTP {response.status_code}", system="vault", operation="sys/health")
    if response.status_code != 200:
        raise PermanentError(f"HTTP {response.status_code}", system="vault", operation="sys/health")
    try:
        body = response.json()
        health = VaultFlags(
            initialized=bool(body["initialized"]),
            sealed=bool(body["sealed"]),
            standby=bool(body.get("standby", False) or body.get("performance_standby", False)),
        )
    except (ValueError, KeyError, TypeError):
        raise PermanentError(
            "answer is not a Vault health document (is addr a Vault server?)",
            system="vault",
            operation="sys/health",
        ) from None
    return health, latency_ms


def _as_vault(exc: EnvstewardError) -> EnvstewardError:
    return type(exc)(str(exc), system="vault", operation="sys/health")
