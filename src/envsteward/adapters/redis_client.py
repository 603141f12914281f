"""Redis (redis-py): the one place that builds Redis clients and translates redis-py's exceptions.

Used by the Redis state store (:mod:`envsteward.adapters.state_redis`) and the Redis health check
(:func:`ping`). Messages never hold a password, the URL's credentials, or a stored value (Redis quotes a
refused command's arguments in its replies: those pass through :func:`envsteward._redact.vendor_text`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from envsteward._redact import vendor_text
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    EnvstewardError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)

if TYPE_CHECKING:
    import redis
    from pydantic import SecretStr

SYSTEM = "redis"


def connect(
    url: str,
    *,
    timeout_seconds: float,
    password: SecretStr | None = None,
    decode_responses: bool = False,
    url_setting: str = "the Redis URL",
) -> redis.Redis:
    """A client for ``url`` (no call to Redis yet: redis-py connects on first use).

    Raises ConfigurationError naming ``url_setting`` (never the URL, which may hold a password) when the
    URL is malformed.
    """
    import redis

    try:
        return redis.Redis.from_url(
            url,
            password=password.get_secret_value() if password is not None else None,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
            decode_responses=decode_responses,
        )
    except ValueError:
        raise ConfigurationError(
            f"{url_setting} is not a valid Redis URL (expected redis://[user:password@]host:port/db or rediss://…)",
            system=SYSTEM,
            operation="connect",
        ) from None


def _unreachable_reason(exc: BaseException) -> str:
    import redis

    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, redis.BusyLoadingError):
        return "the server is loading its dataset"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "host not found"
    return type(exc).__name__


def translate_redis_error(
    exc: BaseException, operation: str, *, auth_hint: str = "the password"
) -> EnvstewardError:
    """Map a redis-py (or socket) exception to an envsteward error; ``auth_hint`` says where the
    password comes from (e.g. ``the password in state.redis_url``). Exceptions that are neither redis-py's
    nor OSError become PermanentError named by their type only."""
    import redis

    op = {"system": SYSTEM, "operation": operation}
    if isinstance(
        exc,
        redis.AuthenticationError
        | redis.AuthenticationWrongNumberOfArgsError
        | redis.exceptions.AuthorizationError,
    ):
        return AuthenticationError(f"authentication failed (check {auth_hint})", **op)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        return TransientError(f"Redis is not reachable ({_unreachable_reason(exc)})", **op)
    if isinstance(exc, redis.ResponseError):
        raw = str(exc)
        text = vendor_text(raw)
        if raw.startswith("NOAUTH"):
            return AuthenticationError(f"the server requires a password (check {auth_hint})", **op)
        if raw.startswith("WRONGPASS"):
            return AuthenticationError(f"authentication failed (check {auth_hint})", **op)
        if raw.startswith("NOPERM"):
            return PermissionDeniedError(text, **op)
        if raw.startswith(("LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY")):
            return TransientError(text, **op)
        return PermanentError(text, **op)
    if isinstance(exc, redis.RedisError):
        return PermanentError(f"{type(exc).__name__}: {vendor_text(str(exc))}", **op)
    return PermanentError(f"unexpected error ({type(exc).__name__})", **op)


@contextmanager
def redis_errors(operation: str, *, auth_hint: str = "the password") -> Iterator[None]:
    """Run a block of redis-py calls; re-raise redis-py's exceptions and OSError as envsteward errors."""
    import redis

    try:
        yield
    except EnvstewardError:
        raise
    except (redis.RedisError, OSError) as exc:
        raise translate_redis_error(exc, operation, auth_hint=auth_hint) from None


def ping(url: str, password: SecretStr | None, timeout_seconds: float, *, auth_hint: str) -> float:
    """PING the Redis server at ``url`` and return the round-trip latency in milliseconds.

    Calls Redis (connect, optional AUTH, PING). Raises TransientError (refused, timeout, loading),
    AuthenticationError (wrong or missing password), ConfigurationError (malformed URL) or PermanentError.
    """
    client = connect(url, timeout_seconds=timeout_seconds, password=password, url_setting="the check's url")
    try:
        with redis_errors("ping", auth_hint=auth_hint):
            started = time.perf_counter()
            client.ping()
            return (time.perf_counter() - started) * 1000.0
    finally:
        client.close()
