"""VaultClient KV v2 operations and VaultKVSource / VaultSecretStore against a real OpenBao dev server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from envsteward.adapters.vault import VaultClient, VaultKVSource, VaultSecretStore, split_mount_path
from envsteward.errors import ConflictError, NotFoundError, PermanentError, PermissionDeniedError
from envsteward.ports import ConfigSource, SecretStore


def _split(location: str) -> tuple[str, str]:
    return split_mount_path(location)


# -- VaultClient: KV v2 ------------------------------------------------------------------------------------


def test_write_read_and_versions(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    v1 = vault_client.kv_write(mount, f"{path}/db", {"host": "db1", "port": 5432})
    v2 = vault_client.kv_write(mount, f"{path}/db", {"host": "db2", "port": 5432}, cas=v1)
    assert (v1, v2) == (1, 2)

    latest = vault_client.kv_read(mount, f"{path}/db")
    assert latest.version == 2
    assert dict(latest.data) == {"host": "db2", "port": 5432}
    assert latest.created_time is not None
    assert vault_client.kv_read(mount, f"{path}/db", version=1).data["host"] == "db1"
    assert "db2" not in repr(latest)  # values never in a repr


def test_cas_zero_refuses_to_overwrite(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    vault_client.kv_write(mount, f"{path}/x", {"a": 1}, cas=0)
    with pytest.raises(ConflictError, match=r"vault: kv write .*check-and-set"):
        vault_client.kv_write(mount, f"{path}/x", {"a": 2}, cas=0)
    with pytest.raises(ConflictError):
        vault_client.kv_write(mount, f"{path}/x", {"a": 2}, cas=7)
    assert vault_client.kv_read(mount, f"{path}/x").data == {"a": 1}


def test_list_and_recursive_walk(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    for name in ("a", "b/c", "b/d/e", "f/g"):
        vault_client.kv_write(mount, f"{path}/{name}", {"k": name})
    assert vault_client.kv_list(mount, path) == ["a", "b/", "f/"]
    assert list(vault_client.kv_walk(mount, path)) == ["a", "b/c", "b/d/e", "f/g"]
    assert vault_client.kv_list(mount, f"{path}/nothing-here") == []


def test_metadata_custom_metadata_and_version_delete(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    secret = f"{path}/meta"
    for n in range(3):
        vault_client.kv_write(mount, secret, {"n": n})
    vault_client.kv_update_metadata(mount, secret, custom_metadata={"owner": "platform"})

    vault_client.kv_delete_versions(mount, secret, [2])
    meta = vault_client.kv_metadata(mount, secret)
    assert meta.current_version == 3
    assert meta.oldest_version in (0, 1)
    assert sorted(meta.versions) == [1, 2, 3]
    assert meta.versions[2].deleted
    assert not meta.versions[2].destroyed
    assert not meta.versions[3].deleted
    assert meta.custom_metadata == {"owner": "platform"}
    assert meta.created_time is not None
    assert meta.updated_time is not None
    with pytest.raises(NotFoundError, match=r"vault: kv read .*version=2"):
        vault_client.kv_read(mount, secret, version=2)
    assert vault_client.kv_read(mount, secret, version=1).data == {"n": 0}

    vault_client.kv_undelete_versions(mount, secret, [2])
    assert vault_client.kv_read(mount, secret, version=2).data == {"n": 1}
    vault_client.kv_destroy_versions(mount, secret, [1])
    assert vault_client.kv_metadata(mount, secret).versions[1].destroyed
    vault_client.kv_delete_all(mount, secret)
    with pytest.raises(NotFoundError):
        vault_client.kv_metadata(mount, secret)


def test_missing_path_is_not_found(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    with pytest.raises(NotFoundError) as info:
        vault_client.kv_read(mount, f"{path}/missing")
    assert str(info.value).startswith(f"vault: kv read {mount}/{path}/missing")
    assert not info.value.transient


def test_limited_token_is_permission_denied(
    vault_client: VaultClient, vault_kv_path: str, make_limited_vault_client: Callable[[str], VaultClient]
) -> None:
    mount, path = _split(vault_kv_path)
    vault_client.kv_write(mount, f"{path}/allowed", {"v": "ok"})
    vault_client.kv_write(mount, f"{path}/other", {"v": "hidden"})
    limited = make_limited_vault_client(f"{mount}/{path}/allowed")

    assert limited.kv_read(mount, f"{path}/allowed").data == {"v": "ok"}
    with pytest.raises(PermissionDeniedError, match=r"vault: kv read .*/other: permission denied"):
        limited.kv_read(mount, f"{path}/other")
    with pytest.raises(PermissionDeniedError, match=r"vault: kv write"):
        limited.kv_write(mount, f"{path}/allowed", {"v": "changed"})


# -- VaultKVSource -------------------------------------------------------------------------------------------


def _seed_tree(client: VaultClient, location: str) -> None:
    mount, path = _split(location)
    client.kv_write(mount, path, {"log_level": "info", "replicas": 3})
    client.kv_write(mount, f"{path}/database", {"host": "db.internal", "port": 5432})
    client.kv_write(mount, f"{path}/cache/redis", {"url": "redis://cache:6379/0", "tls": False})
    client.kv_write(mount, f"{path}/cache", {"ttl": 60})


def test_source_reads_subtree_as_nested_mapping(vault_client: VaultClient, vault_kv_path: str) -> None:
    _seed_tree(vault_client, vault_kv_path)
    source = VaultKVSource("vault-app", vault_client, vault_kv_path, writable=False)
    assert isinstance(source, ConfigSource)
    assert source.read() == {
        "log_level": "info",
        "replicas": 3,
        "database": {"host": "db.internal", "port": 5432},
        "cache": {"ttl": 60, "redis": {"url": "redis://cache:6379/0", "tls": False}},
    }


def test_source_skips_deleted_secrets(vault_client: VaultClient, vault_kv_path: str) -> None:
    _seed_tree(vault_client, vault_kv_path)
    mount, path = _split(vault_kv_path)
    vault_client.kv_delete_versions(mount, f"{path}/database", [1])
    assert "database" not in VaultKVSource("s", vault_client, vault_kv_path).read()


def test_source_missing_path(vault_client: VaultClient, vault_kv_path: str) -> None:
    with pytest.raises(NotFoundError, match="no secrets under this path"):
        VaultKVSource("s", vault_client, vault_kv_path).read()
    assert VaultKVSource("s", vault_client, vault_kv_path, missing_ok=True).read() == {}


def test_source_write_updates_the_right_secret(vault_client: VaultClient, vault_kv_path: str) -> None:
    _seed_tree(vault_client, vault_kv_path)
    mount, path = _split(vault_kv_path)
    source = VaultKVSource("s", vault_client, vault_kv_path, writable=True)

    source.write(("database", "port"), 6432)
    source.write(("cache", "redis", "tls"), True)
    source.write(("log_level",), "debug")
    source.write(("queue", "name"), "jobs")  # no secret yet: created at <path>/queue

    assert vault_client.kv_read(mount, f"{path}/database").data == {"host": "db.internal", "port": 6432}
    assert vault_client.kv_read(mount, f"{path}/cache/redis").data["tls"] is True
    assert vault_client.kv_read(mount, f"{path}/cache").data == {"ttl": 60}
    assert vault_client.kv_read(mount, path).data["log_level"] == "debug"
    assert vault_client.kv_read(mount, f"{path}/queue").data == {"name": "jobs"}
    tree = source.read()
    assert tree["database"]["port"] == 6432
    assert tree["queue"] == {"name": "jobs"}


def test_source_write_through_a_value_is_refused(vault_client: VaultClient, vault_kv_path: str) -> None:
    _seed_tree(vault_client, vault_kv_path)
    mount, path = _split(vault_kv_path)
    source = VaultKVSource("s", vault_client, vault_kv_path, writable=True)
    with pytest.raises(PermanentError, match="host/name: host holds a value, not a mapping") as caught:
        source.write(("database", "host", "name"), "x")
    assert f"write {vault_kv_path}/database" in str(caught.value)
    assert "db.internal" not in str(caught.value)
    assert vault_client.kv_read(mount, f"{path}/database").data == {"host": "db.internal", "port": 5432}


def test_source_write_read_only_is_refused(vault_client: VaultClient, vault_kv_path: str) -> None:
    _seed_tree(vault_client, vault_kv_path)
    with pytest.raises(PermanentError, match="read-only"):
        VaultKVSource("s", vault_client, vault_kv_path, writable=False).write(("database", "port"), 1)


def test_source_concurrent_change_is_a_conflict(vault_client: VaultClient, vault_kv_path: str) -> None:
    """Another writer changes the secret between our read and our write: ConflictError, their change kept."""
    _seed_tree(vault_client, vault_kv_path)
    mount, path = _split(vault_kv_path)

    class RacingClient(VaultClient):
        def kv_read(self, mount: str, path: str, version: int | None = None):  # type: ignore[no-untyped-def]
            secret = super().kv_read(mount, path, version)
            if path.endswith("/database") and not raced.is_set():
                raced.set()
                vault_client.kv_write(mount, path, {"host": "someone-else", "port": 1})
            return secret

    raced = threading.Event()
    racing = RacingClient(vault_client.hvac, addr=vault_client.addr)
    source = VaultKVSource("s", racing, vault_kv_path, writable=True)
    with pytest.raises(ConflictError, match="changed since it was read"):
        source.write(("database", "port"), 6432)
    assert vault_client.kv_read(mount, f"{path}/database").data == {"host": "someone-else", "port": 1}


# -- VaultSecretStore ---------------------------------------------------------------------------------------


def test_secret_store(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, path = _split(vault_kv_path)
    vault_client.kv_write(mount, f"{path}/db", {"password": "s3cr3t-pw", "port": 5432})
    store = VaultSecretStore(vault_client)
    assert isinstance(store, SecretStore)
    location = f"{vault_kv_path}/db"
    assert store.get_secret(location, "password").get_secret_value() == "s3cr3t-pw"
    assert store.get_secret(location, "port").get_secret_value() == "5432"
    assert "s3cr3t-pw" in store.get_secret(location, None).get_secret_value()
    assert store.secret_exists(location, "password")
    assert not store.secret_exists(location, "nope")
    assert not store.secret_exists(f"{vault_kv_path}/missing", "password")
    with pytest.raises(NotFoundError, match="no key 'nope'"):
        store.get_secret(location, "nope")
