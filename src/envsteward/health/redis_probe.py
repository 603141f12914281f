"""The one Redis call envsteward makes: PING, for health checks. Vendor errors are translated here."""

from __future__ import annotations

import time

from pydantic import SecretStr

from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    EnvstewardError,
    PermanentError,
    TransientError,
)


def redis_ping(url: str, password: SecretStr | None, timeout_seconds: float) -> float:
    """PING the Redis server at ``url`` and return the round-trip latency in milliseconds.

    Calls Redis (connect, optional AUTH, PING). Raises TransientError (refused, timeout, loading, busy),
    AuthenticationError (wrong or missing password), ConfigurationError (malformed URL) or PermanentError.
    Messages never include the password or the URL's credentials.
    """
    import redis

    try:
        client = redis.Redis.from_url(
            url,
            password=password.get_secret_value() if password is not None else None,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )
    except ValueError as exc:
        raise ConfigurationError(
            "malformed Redis URL: expected redis://[user@]host:port/db or rediss://…",
            system="redis",
            operation="connect",
        ) from exc
    try:
        started = time.perf_counter()
        client.ping()
        return (time.perf_counter() - started) * 1000.0
    except redis.RedisError as exc:
        raise _translate(exc) from None
    finally:
        client.close()


def _translate(exc: Exception) -> EnvstewardError:
    """Map a redis-py exception to an envsteward error (one place, no vendor message text)."""
    import redis

    op = {"system": "redis", "operation": "ping"}
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return AuthenticationError("authentication failed (check the password reference)", **op)
    if isinstance(exc, redis.ResponseError) and "NOAUTH" in str(exc):
        return AuthenticationError("server requires a password (set password in the check)", **op)
    if isinstance(exc, redis.TimeoutError):
        return TransientError("timed out", **op)
    if isinstance(exc, redis.BusyLoadingError):
        return TransientError("server is loading its dataset", **op)
    if isinstance(exc, redis.ConnectionError):
        text = str(exc).lower()
        if "refused" in text:
            return TransientError("connection refused", **op)
        if "name or service not known" in text or "nodename nor servname" in text:
            return TransientError("host not found", **op)
        return TransientError(f"cannot connect ({type(exc).__name__})", **op)
    return PermanentError(f"unexpected error ({type(exc).__name__})", **op)
