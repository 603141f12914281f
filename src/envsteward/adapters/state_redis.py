"""The Redis state store: one Redis string per key (``<prefix><key>``), for flows that run on several hosts.

:class:`RedisStateStore` implements :class:`envsteward.ports.StateStore`; ``update`` uses WATCH/MULTI/EXEC
and retries, with bounded, jittered backoff, when another client changed the key in between. Clients and
error translation come from :mod:`envsteward.adapters.redis_client` (the one place for redis-py's errors).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from envsteward.adapters._state_json import UpdateFn, check_key, encode
from envsteward.adapters.redis_client import SYSTEM, connect, redis_errors
from envsteward.errors import ConflictError, IntegrityError
from envsteward.ports import JSONValue

if TYPE_CHECKING:
    import redis

UPDATE_ATTEMPTS = 20
"""Lost WATCH races before ``update`` gives up with ConflictError."""
_BACKOFF_BASE_SECONDS = 0.002
_BACKOFF_CAP_SECONDS = 0.05
_AUTH_HINT = "the password in state.redis_url"


def race_backoff(attempt: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after losing WATCH race number ``attempt`` (0-based): exponential from 2 ms, capped
    at 50 ms, with "equal jitter" (half fixed, half random) so racing writers spread out instead of
    colliding again in lock step. Twenty lost races wait between about 0.4 and 0.8 s in total."""
    step = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2.0**attempt)
    return step / 2 + uniform(0.0, step / 2)


class RedisStateStore:
    """One Redis string per key, named ``<prefix><key>``. Connection problems raise TransientError."""

    def __init__(self, url: str, prefix: str = "envsteward:", *, timeout_seconds: float = 5.0) -> None:
        """Builds the client only (no call to Redis). Raises ConfigurationError for a malformed URL."""
        self.prefix = prefix
        self._client: redis.Redis = connect(
            url, timeout_seconds=timeout_seconds, decode_responses=True, url_setting="state.redis_url"
        )

    def __repr__(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return (
            f"RedisStateStore({kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}, {self.prefix!r})"
        )

    def _name(self, key: str) -> str:
        check_key(key)
        return self.prefix + key

    def get(self, key: str) -> JSONValue | None:
        """The value at ``key``, or None. Calls Redis GET. Raises TransientError (connection),
        AuthenticationError, IntegrityError (not JSON)."""
        name = self._name(key)
        with redis_errors(f"get {key}", auth_hint=_AUTH_HINT):
            text = self._client.get(name)
        return _decode(text, key)

    def put(self, key: str, value: JSONValue) -> None:
        """Store ``value`` (Redis SET). Raises PermanentError for non-JSON values, TransientError when Redis
        is down."""
        name, text = self._name(key), encode(key, value)
        with redis_errors(f"put {key}", auth_hint=_AUTH_HINT):
            self._client.set(name, text)

    def delete(self, key: str) -> None:
        """Remove ``key`` (Redis DEL); removing a missing key is not an error."""
        name = self._name(key)
        with redis_errors(f"delete {key}", auth_hint=_AUTH_HINT):
            self._client.delete(name)

    def update(self, key: str, fn: UpdateFn) -> JSONValue | None:
        """Atomically replace the value with ``fn(current)`` (None deletes) using WATCH/MULTI/EXEC.

        ``fn`` may run more than once when another client changes the key in between (it must not have
        side effects); each lost race waits :func:`race_backoff`. Raises ConflictError after
        ``UPDATE_ATTEMPTS`` lost races, TransientError when Redis is down.
        """
        import redis

        name = self._name(key)
        with redis_errors(f"update {key}", auth_hint=_AUTH_HINT), self._client.pipeline() as pipe:
            for attempt in range(UPDATE_ATTEMPTS):
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    new = fn(_decode(pipe.get(name), key))
                    text = None if new is None else encode(key, new)
                    pipe.multi()
                    if text is None:
                        pipe.delete(name)
                    else:
                        pipe.set(name, text)
                    pipe.execute()
                    return new
                except redis.WatchError:
                    if attempt + 1 < UPDATE_ATTEMPTS:
                        time.sleep(race_backoff(attempt))
        raise ConflictError(
            f"{key} kept changing; gave up after {UPDATE_ATTEMPTS} attempts",
            system=SYSTEM,
            operation=f"update {key}",
        )

    def close(self) -> None:
        """Close the client's connections (no call to Redis)."""
        self._client.close()


def _decode(text: Any, key: str) -> JSONValue | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise IntegrityError(
            "stored value is not valid JSON; delete the key to reset this state",
            system=SYSTEM,
            operation=f"get {key}",
        ) from None
