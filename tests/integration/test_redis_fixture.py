"""The Redis fixtures: the machine's server answers, and each test gets its own key prefix."""

from __future__ import annotations

import redis


def test_redis_answers_and_prefix_is_isolated(redis_url: str, redis_key_prefix: str) -> None:
    assert redis_url == "redis://127.0.0.1:6379/0"
    assert redis_key_prefix.startswith("envsteward-test:")
    assert redis_key_prefix.endswith(":")
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        assert client.ping() is True
        assert list(client.scan_iter(match=f"{redis_key_prefix}*")) == []  # nobody else uses this prefix
        client.set(f"{redis_key_prefix}state", b"ok")
        assert client.get(f"{redis_key_prefix}state") == b"ok"
    finally:
        client.close()
