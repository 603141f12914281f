"""Transit, AppRole, sys/health and error mapping of the Vault adapter against a real OpenBao dev server."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from envsteward.adapters.vault import VaultClient, VaultTransitKeyProvider, split_mount_path
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    TransientError,
)
from envsteward.ports import KeyProvider
from envsteward.settings import VaultSettings
from tests.fixtures._proc import free_port
from tests.fixtures.vault import VaultServer


@pytest.fixture
def transit_key(vault_client: VaultClient) -> str:
    """A fresh transit key per test (rotation tests must not disturb each other)."""
    name = f"k-{secrets.token_hex(4)}"
    vault_client.transit_create_key(name)
    return name


def test_encrypt_decrypt_round_trip(vault_client: VaultClient, transit_key: str) -> None:
    ciphertext = vault_client.transit_encrypt(transit_key, b"\x00payload\xff")
    assert ciphertext.startswith("vault:v1:")
    assert vault_client.transit_decrypt(transit_key, ciphertext) == b"\x00payload\xff"


def test_rotation_changes_key_version(vault_client: VaultClient, transit_key: str) -> None:
    info = vault_client.transit_key_info(transit_key)
    assert (info.latest_version, info.min_decryption_version) == (1, 1)
    assert info.type == "aes256-gcm96"
    old = vault_client.transit_encrypt(transit_key, b"before")

    assert vault_client.transit_rotate(transit_key) == 2
    provider = VaultTransitKeyProvider(vault_client, transit_key)
    data_key = provider.generate_data_key()
    assert data_key.key_version == 2
    assert data_key.wrapped.startswith(b"vault:v2:")
    assert vault_client.transit_decrypt(transit_key, old) == b"before"  # old versions still decrypt

    vault_client.transit_set_min_decryption_version(transit_key, 2)
    assert vault_client.transit_key_info(transit_key).min_decryption_version == 2
    with pytest.raises(IntegrityError):
        vault_client.transit_decrypt(transit_key, old)


def test_key_provider_round_trip_and_wrong_key(vault_client: VaultClient, transit_key: str) -> None:
    provider = VaultTransitKeyProvider(vault_client, transit_key)
    assert isinstance(provider, KeyProvider)
    data_key = provider.generate_data_key()
    assert len(data_key.plaintext) == 32
    assert data_key.key_id == transit_key
    assert data_key.plaintext.hex() not in repr(data_key)
    assert provider.unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext

    other_name = f"k-{secrets.token_hex(4)}"
    vault_client.transit_create_key(other_name)
    other = VaultTransitKeyProvider(vault_client, other_name)
    with pytest.raises(IntegrityError, match="wrapped by"):
        other.unwrap(data_key.wrapped, data_key.key_id)
    # the manifest lies about the key: Vault itself refuses to decrypt
    with pytest.raises(IntegrityError, match="vault: transit decrypt"):
        other.unwrap(data_key.wrapped, other_name)
    tampered = data_key.wrapped[:-6] + (b"AAAAA=" if not data_key.wrapped.endswith(b"AAAAA=") else b"BBBBB=")
    with pytest.raises(IntegrityError):
        provider.unwrap(tampered, transit_key)
    with pytest.raises(IntegrityError, match="vault:vN"):
        provider.unwrap(b"not-a-ciphertext", transit_key)


def test_missing_transit_key_is_not_found(vault_client: VaultClient) -> None:
    with pytest.raises(NotFoundError, match="transit"):
        vault_client.transit_key_info("no-such-key")


def test_approle_login(
    vault_server: VaultServer, vault_approle: tuple[str, SecretStr], tmp_path: Path
) -> None:
    role_id, secret_id = vault_approle
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id.get_secret_value() + "\n")
    settings = VaultSettings(
        addr=vault_server.addr, auth="approle", role_id=role_id, secret_id_file=secret_file
    )
    client = VaultClient.from_settings(settings)
    assert "envsteward-tests" in client.token_policies()
    client.kv_write("secret", f"tests/approle-{secrets.token_hex(3)}", {"ok": True})

    wrong = VaultClient.from_settings(settings, authenticate=False)
    with pytest.raises(AuthenticationError, match="vault: approle login") as info:
        wrong.login_approle(role_id, SecretStr("not-the-secret-id"))
    assert "not-the-secret-id" not in str(info.value)


def test_token_from_file_and_missing_credentials(vault_server: VaultServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(vault_server.root_token)
    client = VaultClient.from_settings(VaultSettings(addr=vault_server.addr, token_file=token_file))
    assert "root" in client.token_policies()

    with pytest.raises(ConfigurationError, match="NO_SUCH_VAR"):
        VaultClient.from_settings(VaultSettings(addr=vault_server.addr, token_env="NO_SUCH_VAR"))
    with pytest.raises(ConfigurationError, match="role_id"):
        VaultClient.from_settings(VaultSettings(addr=vault_server.addr, auth="approle"))


def test_bad_token_is_authentication_or_permission_error(vault_server: VaultServer) -> None:
    client = VaultClient.from_settings(VaultSettings(addr=vault_server.addr), authenticate=False)
    client.use_token(SecretStr("hvs.not-a-real-token"))
    with pytest.raises(EnvstewardError) as info:
        client.kv_read("secret", "anything")
    # Vault answers 403 "permission denied" for an unknown token
    assert not info.value.transient
    assert "hvs.not-a-real-token" not in str(info.value)


def test_health(vault_client: VaultClient) -> None:
    health = vault_client.health()
    assert health.reachable
    assert health.initialized
    assert not health.sealed
    assert not health.standby
    assert health.ok()
    assert health.version


def test_unreachable_vault_is_transient() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = VaultClient.from_settings(VaultSettings(addr=closed, timeout_seconds=2), authenticate=False)
    client.use_token(SecretStr("irrelevant"))
    with pytest.raises(TransientError, match=r"vault: kv read secret/app: cannot reach vault") as info:
        client.kv_read("secret", "app")
    assert info.value.transient
    health = client.health()
    assert not health.reachable
    assert not health.ok()


def test_no_secret_value_in_any_exception(
    vault_client: VaultClient, vault_kv_path: str, make_limited_vault_client: object
) -> None:
    """Seed a known secret and provoke every error the adapters raise around it: the value never shows."""
    seeded = f"SEEDED-{secrets.token_hex(8)}"
    mount, path = split_mount_path(vault_kv_path)
    vault_client.kv_write(mount, f"{path}/db", {"password": seeded})
    provoked: list[BaseException] = []

    def provoke(call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except EnvstewardError as exc:
            provoked.append(exc)

    provoke(lambda: vault_client.kv_write(mount, f"{path}/db", {"password": seeded}, cas=0))
    provoke(lambda: vault_client.kv_write(mount, f"{path}/db", {"password": seeded}, cas=99))
    provoke(lambda: vault_client.kv_read(mount, f"{path}/db", version=42))
    limited = make_limited_vault_client(f"{mount}/{path}/other")  # type: ignore[operator]
    provoke(lambda: limited.kv_read(mount, f"{path}/db"))
    provoke(lambda: limited.kv_write(mount, f"{path}/db", {"password": seeded}))
    provoke(lambda: vault_client.transit_decrypt("no-such-key", "vault:v1:" + seeded))
    provoke(lambda: vault_client.transit_encrypt("no/such/../key", seeded.encode()))
    from envsteward.adapters.vault import VaultSecretStore

    provoke(lambda: VaultSecretStore(vault_client).get_secret(f"{vault_kv_path}/db", "nope"))
    assert len(provoked) >= 7
    for exc in provoked:
        assert seeded not in str(exc), exc
        assert seeded not in repr(exc), exc
        assert exc.__cause__ is None


def test_sealed_vault_is_transient_and_reported_by_health() -> None:
    """A second, private dev server (sealing the shared one would break other tests)."""
    import secrets as _secrets
    import urllib.request

    from tests.fixtures._proc import running_process, venv_executable

    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    token = _secrets.token_hex(8)

    def ready() -> bool:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1) as response:
            return bool(response.status == 200)

    command = [
        venv_executable("bao"),
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
    ]
    with running_process("openbao-sealed", command, ready, timeout=60):
        client = VaultClient.from_settings(VaultSettings(addr=addr), authenticate=False)
        client.use_token(SecretStr(token))
        client.hvac.sys.seal()
        health = client.health()
        assert health.reachable
        assert health.sealed
        assert not health.ok()
        with pytest.raises(TransientError, match="sealed") as info:
            client.kv_read("secret", "app")
        assert info.value.transient
