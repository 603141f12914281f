"""Run one health check against the real system and describe the outcome.

A check never raises because the service is down: ``down`` *is* the result. A misconfigured check (an
unresolvable password reference, a malformed URL) is ``down`` too, with a detail that says what is wrong; a
probe that could not run at all (a bug, a ConfigurationError) is marked ``probe_failed``.
Details are short and never carry a secret value: vendor messages are replaced by our own words.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.errors import ConfigurationError, EnvstewardError, PermanentError, TransientError
from envsteward.health.result import CheckProbeError, CheckResult, CheckStatus, short_detail
from envsteward.health.specs import HTTPCheck, PostgresCheck, RedisCheck, S3Check, VaultCheck

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultHealth
    from envsteward.catalog.refs import SecretRef

AnyCheck = HTTPCheck | PostgresCheck | RedisCheck | VaultCheck | S3Check


@dataclass(frozen=True)
class CheckContext:
    """What a check needs besides its spec; built by the caller (flow task or CLI) from ``Services``.

    ``resolve_secret`` fetches a password reference's value (it raises envsteward errors).
    ``vault_health`` asks the settings' Vault for ``sys/health`` (a Vault check without ``addr``), given
    the check's timeout; it returns the Vault adapter's ``VaultHealth``.
    ``aws_clients`` builds the AWS client factory on first use (None: S3 checks report a misconfiguration).
    """

    environment: str
    resolve_secret: Callable[[SecretRef], SecretStr]
    vault_health: Callable[[float], VaultHealth] | None = None
    aws_clients: Callable[[], AWSClients] | None = None


def run_check(spec: AnyCheck, ctx: CheckContext) -> CheckResult:
    """Run ``spec`` once and return its result; never raises for a failing or misconfigured service.

    Calls the system the check names (HTTP server, PostgreSQL, Redis, Vault ``sys/health``, S3).
    """
    started = time.perf_counter()
    try:
        status, detail, latency_ms = _PROBES[spec.kind](spec, ctx)
    except EnvstewardError as exc:
        return result_from_error(ctx.environment, spec, exc, (time.perf_counter() - started) * 1000.0)
    except Exception as exc:  # noqa: BLE001 - a check must report, not crash; vendor text may hold secrets
        return result_from_error(ctx.environment, spec, exc, (time.perf_counter() - started) * 1000.0)
    return CheckResult(
        environment=ctx.environment,
        check=spec.name,
        kind=spec.kind,
        status=status,
        latency_ms=round(latency_ms, 1),
        detail=short_detail(detail),
    )


def result_from_error(
    environment: str, spec: AnyCheck, exc: BaseException, latency_ms: float | None = None
) -> CheckResult:
    """A ``down`` result for a check that failed with ``exc``.

    Envsteward errors carry safe messages and say whether they are transient; any other exception is
    described by its type only (its text may quote a connection string or a response body). A
    ConfigurationError or an unexpected exception means the probe could not run (``probe_failed``).
    """
    probe_failed = False
    if isinstance(exc, EnvstewardError):
        detail, transient = _strip_system(exc), exc.transient
        probe_failed = isinstance(exc, ConfigurationError)
    elif isinstance(exc, TimeoutError):
        detail, transient = "timed out", True
    else:
        detail, transient, probe_failed = f"check failed ({type(exc).__name__})", False, True
    return CheckResult(
        environment=environment,
        check=spec.name,
        kind=spec.kind,
        status=CheckStatus.DOWN,
        latency_ms=round(latency_ms, 1) if latency_ms is not None else None,
        detail=short_detail(detail),
        checked_at=datetime.now(UTC),
        transient=transient,
        probe_failed=probe_failed,
    )


def result_from_outcome(environment: str, spec: AnyCheck, outcome: object) -> CheckResult:
    """The result of a check run by an orchestrator: its returned :class:`CheckResult`, the result carried
    by a :class:`CheckProbeError`, or a ``down`` result for any other failure (a crash, a task timeout) — a
    check that could not report is not healthy."""
    if isinstance(outcome, CheckResult):
        return outcome
    if isinstance(outcome, CheckProbeError):
        return outcome.result
    if isinstance(outcome, BaseException):
        return result_from_error(environment, spec, outcome)
    return result_from_error(environment, spec, TypeError(type(outcome).__name__))


def _strip_system(exc: EnvstewardError) -> str:
    text = str(exc)
    if exc.system and text.startswith(f"{exc.system}: "):
        # "redis: ping: connection refused" reads better as "connection refused" in a redis row,
        # but keep the operation when it says which step failed (e.g. resolving the password).
        text = text.removeprefix(f"{exc.system}: ")
        if exc.operation in {"ping", "get", "connect", "head_bucket", "sys/health"}:
            text = text.removeprefix(f"{exc.operation}: ")
    return text


Probe = Callable[[Any, CheckContext], tuple[CheckStatus, str, float]]


# -- HTTP ----------------------------------------------------------------------------------------------------


def _probe_http(spec: HTTPCheck, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
    from envsteward.adapters._http import get_status

    status, latency_ms = get_status(
        spec.url,
        timeout_seconds=spec.timeout_seconds,
        system="http",
        operation="get",
        user_agent="envsteward-health",
    )
    if status not in spec.expect_status:
        expected = ", ".join(str(code) for code in spec.expect_status)
        detail = f"HTTP {status} (expected {expected})"
        if status >= 500:
            raise TransientError(detail)
        raise PermanentError(detail)
    if latency_ms > spec.max_latency_ms:
        return CheckStatus.DEGRADED, f"latency {latency_ms:.0f} ms > {spec.max_latency_ms} ms", latency_ms
    return CheckStatus.UP, f"HTTP {status}", latency_ms


# -- Redis ---------------------------------------------------------------------------------------------------


def _probe_redis(spec: RedisCheck, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
    from envsteward.health.redis_probe import redis_ping

    password = _resolve_password(spec.password, ctx)
    latency_ms = redis_ping(spec.url, password, spec.timeout_seconds)
    return CheckStatus.UP, "PONG", latency_ms


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def _probe_postgres(spec: PostgresCheck, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
    from envsteward.health.postgres_probe import postgres_query

    password = _resolve_password(spec.password, ctx)
    latency_ms = postgres_query(spec.dsn, password, spec.query, spec.timeout_seconds)
    return CheckStatus.UP, "query ok", latency_ms


# -- Vault ---------------------------------------------------------------------------------------------------


def _probe_vault(spec: VaultCheck, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
    from envsteward.health.vault_probe import vault_health_at

    started = time.perf_counter()
    if spec.addr is not None:
        health = vault_health_at(spec.addr, spec.timeout_seconds)
    elif ctx.vault_health is not None:
        health = ctx.vault_health(spec.timeout_seconds)
    else:
        raise ConfigurationError("no Vault address: set addr in the check or ENVSTEWARD_VAULT__ADDR")
    latency_ms = (time.perf_counter() - started) * 1000.0
    if not health.reachable:
        raise TransientError(health.detail or "unreachable")
    if not health.initialized:
        return CheckStatus.DOWN, "not initialized", latency_ms
    if health.sealed:
        raise TransientError("sealed")
    standby = health.standby or health.performance_standby
    if standby and not spec.standby_ok:
        return CheckStatus.DEGRADED, "standby (standby_ok is false)", latency_ms
    return CheckStatus.UP, "standby" if standby else "active", latency_ms


# -- S3 ------------------------------------------------------------------------------------------------------


def _probe_s3(spec: S3Check, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
    from envsteward.health.s3_probe import s3_head_bucket

    if ctx.aws_clients is None:
        raise ConfigurationError("no AWS clients configured for S3 checks")
    latency_ms = s3_head_bucket(ctx.aws_clients(), spec.bucket, spec.region)
    return CheckStatus.UP, "bucket reachable", latency_ms


# -- shared --------------------------------------------------------------------------------------------------


def _resolve_password(ref: SecretRef | None, ctx: CheckContext) -> SecretStr | None:
    """Resolve a password reference; failures become a clear, secret-free misconfiguration error."""
    if ref is None:
        return None
    try:
        return ctx.resolve_secret(ref)
    except EnvstewardError as exc:
        raise type(exc)(f"cannot resolve password {ref.uri()}: {exc}", operation=None) from None
    except Exception as exc:  # noqa: BLE001 - vendor text may quote the secret store's response
        raise PermanentError(f"cannot resolve password {ref.uri()} ({type(exc).__name__})") from None


_PROBES: dict[str, Probe] = {
    "http": _probe_http,
    "postgres": _probe_postgres,
    "redis": _probe_redis,
    "vault": _probe_vault,
    "s3": _probe_s3,
}
