"""State stores against the real filesystem and the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from envsteward.adapters.redis_client import translate_redis_error
from envsteward.adapters.state_fs import FileStateStore, file_name_for_key
from envsteward.adapters.state_redis import UPDATE_ATTEMPTS, RedisStateStore, race_backoff
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    PermanentError,
    TransientError,
)
from envsteward.ports import StateStore
from envsteward.services import Services
from envsteward.settings import Settings, StateSettings
from tests.fixtures._proc import free_port

WORKERS = 4
INCREMENTS = 50
SEEDED_PASSWORD = "redis-SEEDED-pw-0b7e"


def _build(kind: str, location: str, prefix: str) -> FileStateStore | RedisStateStore:
    return FileStateStore(Path(location)) if kind == "file" else RedisStateStore(location, prefix)


@pytest.fixture(params=["file", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(kind, location, prefix) for each implementation; Redis keys use a per-test prefix, deleted after."""
    if request.param == "file":
        return "file", str(tmp_path / "state"), ""
    return "redis", request.getfixturevalue("redis_url"), request.getfixturevalue("redis_key_prefix")


@pytest.fixture
def store(store_spec: tuple[str, str, str]) -> Iterator[FileStateStore | RedisStateStore]:
    built = _build(*store_spec)
    yield built
    if isinstance(built, RedisStateStore):
        built.close()


def test_implements_the_port(store: StateStore) -> None:
    assert isinstance(store, StateStore)


def test_get_put_delete(store: FileStateStore | RedisStateStore) -> None:
    assert store.get("health:production:db") is None
    value = {"status": "ok", "checks": [1, 2.5, None, True], "ü": "ö"}
    store.put("health:production:db", value)
    assert store.get("health:production:db") == value
    store.put("health:production:db", "degraded")
    assert store.get("health:production:db") == "degraded"
    store.delete("health:production:db")
    assert store.get("health:production:db") is None
    store.delete("health:production:db")  # deleting a missing key is fine


def test_update_creates_changes_and_deletes(store: FileStateStore | RedisStateStore) -> None:
    assert store.update("alerts", lambda current: [*(current or []), "fp1"]) == ["fp1"]
    assert store.update("alerts", lambda current: [*(current or []), "fp2"]) == ["fp1", "fp2"]
    assert store.get("alerts") == ["fp1", "fp2"]
    assert store.update("alerts", lambda current: None) is None
    assert store.get("alerts") is None


def test_update_failure_leaves_the_value(store: FileStateStore | RedisStateStore) -> None:
    store.put("k", {"n": 1})

    def boom(current: Any) -> Any:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update("k", boom)
    assert store.get("k") == {"n": 1}


@pytest.mark.parametrize("bad", [{"x": {1, 2}}, float("nan"), b"raw", object()])
def test_non_json_values_are_refused(store: FileStateStore | RedisStateStore, bad: object) -> None:
    store.put("k", 1)
    with pytest.raises(PermanentError, match="not plain JSON") as caught:
        store.put("k", bad)
    assert "put k" in str(caught.value)
    with pytest.raises(PermanentError):
        store.update("k", lambda current: bad)
    assert store.get("k") == 1


def test_odd_keys_stay_distinct(store: FileStateStore | RedisStateStore) -> None:
    keys = ["a/b", "a%2Fb", "a:b", "a.b", "../../escape", ".hidden", "ünï", "x" * 400, "x" * 401, "A", "a"]
    for index, key in enumerate(keys):
        store.put(key, index)
    assert [store.get(key) for key in keys] == list(range(len(keys)))


def test_empty_key_is_refused(store: FileStateStore | RedisStateStore) -> None:
    with pytest.raises(PermanentError, match="non-empty"):
        store.put("", 1)


def _increment_worker(kind: str, location: str, prefix: str, worker: int, start: Any) -> None:
    store = _build(kind, location, prefix)
    start.wait()
    for _ in range(INCREMENTS):
        store.update("counter", lambda current: {"n": (current or {"n": 0})["n"] + 1})
        store.update("seen", lambda current, w=worker: sorted({*(current or []), f"w{w}"}))


def test_concurrent_updates_lose_nothing(store_spec: tuple[str, str, str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [
        ctx.Process(target=_increment_worker, args=(*store_spec, worker, start)) for worker in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    store = _build(*store_spec)
    assert store.get("counter") == {"n": WORKERS * INCREMENTS}
    assert store.get("seen") == [f"w{worker}" for worker in range(WORKERS)]


# -- filesystem specifics ----------------------------------------------------------------------------------


def test_file_names_are_safe_and_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "state"
    store = FileStateStore(root)
    store.put("../../escape", 1)
    store.put("x" * 1000, 2)
    assert not (tmp_path / "escape").exists()
    names = sorted(path.name for path in root.iterdir())
    assert all(len(name) < 255 for name in names)
    assert all(path.parent == root for path in root.iterdir())
    assert file_name_for_key("../a b") == "%2E%2E%2Fa%20b"
    assert not any(name.endswith(".tmp") for name in names)


def test_corrupt_file_is_reported_with_its_path(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    store.put("k", 1)
    (tmp_path / "k.json").write_text("{not json")
    with pytest.raises(IntegrityError, match=r"k\.json is not valid JSON; delete it"):
        store.get("k")


def test_open_state_store_filesystem(tmp_path: Path) -> None:
    store = Services(Settings(home=tmp_path)).state_store()
    assert isinstance(store, FileStateStore)
    store.put("a", 1)
    assert (tmp_path / "state" / "a.json").read_text() == "1"


# -- Redis specifics ---------------------------------------------------------------------------------------


def test_open_state_store_redis(tmp_path: Path, redis_url: str, redis_key_prefix: str) -> None:
    settings = Settings(
        home=tmp_path, state=StateSettings(kind="redis", redis_url=redis_url, key_prefix=redis_key_prefix)
    )
    store = Services(settings).state_store()
    assert isinstance(store, RedisStateStore)
    store.put("a", {"b": 1})
    raw = redis.Redis.from_url(redis_url)
    try:
        assert raw.get(f"{redis_key_prefix}a") == b'{"b":1}'
    finally:
        raw.close()
    assert not (tmp_path / "state").exists()


def test_redis_update_retries_when_another_client_writes_in_between(
    redis_url: str, redis_key_prefix: str
) -> None:
    store = RedisStateStore(redis_url, redis_key_prefix)
    other = redis.Redis.from_url(redis_url)
    store.put("list", ["a"])
    calls: list[Any] = []

    def add_b(current: Any) -> Any:
        calls.append(current)
        if len(calls) == 1:  # another client changes the watched key before our EXEC
            other.set(f"{redis_key_prefix}list", '["a","x"]')
        return [*current, "b"]

    try:
        assert store.update("list", add_b) == ["a", "x", "b"]
    finally:
        other.close()
    assert calls == [["a"], ["a", "x"]]
    assert store.get("list") == ["a", "x", "b"]


def test_redis_non_json_value(redis_url: str, redis_key_prefix: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.set(f"{redis_key_prefix}bad", "{not json")
    finally:
        raw.close()
    with pytest.raises(IntegrityError, match="redis: get bad: stored value is not valid JSON"):
        RedisStateStore(redis_url, redis_key_prefix).get("bad")


def test_redis_down_is_transient_and_hides_the_password() -> None:
    store = RedisStateStore(f"redis://:{SEEDED_PASSWORD}@127.0.0.1:{free_port()}/0", "p:", timeout_seconds=1)
    for call in (lambda: store.get("k"), lambda: store.put("k", 1), lambda: store.delete("k"),
                 lambda: store.update("k", lambda c: 1)):  # fmt: skip
        with pytest.raises(TransientError, match=r"redis: \w+ k: Redis is not reachable") as caught:
            call()
        assert SEEDED_PASSWORD not in str(caught.value)
        assert caught.value.transient
    assert SEEDED_PASSWORD not in repr(store)


def test_redis_wrong_password_is_an_authentication_error(redis_url: str) -> None:
    from envsteward.errors import AuthenticationError

    url = redis_url.replace("redis://", f"redis://nobody:{SEEDED_PASSWORD}@")
    with pytest.raises(AuthenticationError, match="authentication failed") as caught:
        RedisStateStore(url, "p:").get("k")
    assert SEEDED_PASSWORD not in str(caught.value)
    assert not caught.value.transient


def test_redis_bad_url() -> None:
    with pytest.raises(ConfigurationError, match="not a valid Redis URL") as caught:
        RedisStateStore(f"http://:{SEEDED_PASSWORD}@host", "p:")
    assert SEEDED_PASSWORD not in str(caught.value)


def test_redis_replies_that_echo_arguments_are_redacted(redis_url: str) -> None:
    """Redis quotes a refused command's arguments in its reply; a stored value must not reach a message."""
    seeded = "redis-SEEDED-value-5c1a"
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        with pytest.raises(redis.ResponseError) as reply:
            client.execute_command("NOSUCHCOMMAND", seeded)
    finally:
        client.close()
    assert seeded in str(reply.value)  # the real server did echo it: the check below is not vacuous
    caught = translate_redis_error(reply.value, "put k")
    assert isinstance(caught, PermanentError)
    assert seeded not in str(caught)
    assert str(caught).startswith("redis: put k: unknown command")


def test_redis_update_backs_off_between_lost_races_and_gives_up(
    redis_url: str, redis_key_prefix: str
) -> None:
    """Every attempt loses its WATCH race: the store waits (bounded, jittered) between attempts instead of
    retrying back to back, then raises ConflictError. Back to back, 20 attempts take a few milliseconds."""
    store = RedisStateStore(redis_url, redis_key_prefix)
    other = redis.Redis.from_url(redis_url)
    calls = 0

    def always_raced(current: Any) -> Any:
        nonlocal calls
        calls += 1
        other.set(f"{redis_key_prefix}hot", str(calls))  # another client changes the key before our EXEC
        return calls

    minimum = sum(race_backoff(attempt, lambda low, high: low) for attempt in range(UPDATE_ATTEMPTS - 1))
    maximum = sum(race_backoff(attempt, lambda low, high: high) for attempt in range(UPDATE_ATTEMPTS - 1))
    started = time.monotonic()
    try:
        with pytest.raises(ConflictError, match=f"gave up after {UPDATE_ATTEMPTS} attempts"):
            store.update("hot", always_raced)
    finally:
        other.close()
        store.close()
    elapsed = time.monotonic() - started
    assert calls == UPDATE_ATTEMPTS
    assert minimum > 0.3
    assert minimum <= elapsed < maximum + 2.0, (minimum, elapsed, maximum)


def test_race_backoff_is_bounded_and_jittered() -> None:
    waits = [race_backoff(attempt) for attempt in range(200)]
    assert all(0.001 <= wait <= 0.05 for wait in waits)
    assert len({round(wait, 9) for wait in waits[10:]}) > 1  # jittered, not lock step
    assert race_backoff(0, lambda low, high: low) < race_backoff(5, lambda low, high: low)  # grows
