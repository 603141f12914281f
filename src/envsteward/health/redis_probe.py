"""The health check's Redis call (PING), through :mod:`envsteward.adapters.redis_client`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr


def redis_ping(url: str, password: SecretStr | None, timeout_seconds: float) -> float:
    """PING the Redis server at ``url`` and return the round-trip latency in milliseconds.

    Calls Redis (connect, optional AUTH, PING). Raises the adapter's errors: TransientError (refused,
    timeout, loading), AuthenticationError (wrong or missing password), ConfigurationError (malformed URL)
    or PermanentError. Messages never include the password or the URL's credentials.
    """
    from envsteward.adapters.redis_client import ping

    return ping(url, password, timeout_seconds, auth_hint="the password reference")
