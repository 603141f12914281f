"""Rotation of a key of a Vault KV v2 secret: a new version written with check-and-set; the previous
version stays in the secret's history (KV v2 keeps ``max_versions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from envsteward.adapters._rotation_values import require_same
from envsteward.adapters.vault_client import VaultClient, split_mount_path
from envsteward.errors import ConflictError, NotFoundError, PermanentError
from envsteward.secret_refs import SecretRef


class VaultKVStage:
    """:class:`envsteward.rotation.ports.SecretStage` for ``vault://MOUNT/PATH#KEY``."""

    def __init__(self, client: VaultClient, ref: SecretRef) -> None:
        if not ref.key:
            raise PermanentError("a vault reference names a key", system="rotation")
        self._client, self._ref = client, ref
        self._mount, self._path = split_mount_path(ref.location)
        self._where = f"rotate {ref.uri()}"
        self._data: Mapping[str, Any] | None = None
        self._version = 0
        self._pending: SecretStr | None = None
        self._committed_version = 0

    def __repr__(self) -> str:
        return f"VaultKVStage({self._ref.uri()!r})"

    def describe(self) -> str:
        return (
            f"hold it in memory; Vault KV {self._mount}/{self._path} gets a new version at finish "
            "(check-and-set)"
        )

    def begin(self, pending: SecretStr) -> str:
        """Reads the current version (GET data). Raises NotFoundError (no secret or no key)."""
        secret = self._client.kv_read(self._mount, self._path)
        assert self._ref.key is not None
        if self._ref.key not in secret.data:
            raise NotFoundError(f"secret has no key {self._ref.key!r}", system="vault", operation=self._where)
        self._data, self._version, self._pending = dict(secret.data), secret.version, pending
        return f"current version {secret.version}"

    def previous(self) -> SecretStr:
        if self._data is None:
            raise PermanentError("begin first", system="rotation")
        value = self._data[self._ref.key or ""]
        return SecretStr(value if isinstance(value, str) else str(value))

    def current(self) -> SecretStr:
        """Reads the current version (GET data). Raises NotFoundError (no secret or no key)."""
        secret = self._client.kv_read(self._mount, self._path)
        value = secret.data.get(self._ref.key or "")
        if value is None:
            raise NotFoundError(f"secret has no key {self._ref.key!r}", system="vault", operation=self._where)
        return SecretStr(value if isinstance(value, str) else str(value))

    def check_staged(self) -> str:
        """Reads the metadata: the current version must still be the one read at begin."""
        current = self._client.kv_metadata(self._mount, self._path).current_version
        if current != self._version:
            raise ConflictError(
                f"the secret changed during the rotation (version {self._version} -> {current})",
                system="vault",
                operation=self._where,
            )
        return f"version {current} unchanged (check-and-set will pass)"

    def commit(self) -> str:
        """Writes version N+1 with ``cas=N``. Raises ConflictError when someone wrote meanwhile."""
        assert self._data is not None
        assert self._pending is not None
        assert self._ref.key
        data = {**self._data, self._ref.key: self._pending.get_secret_value()}
        self._committed_version = self._client.kv_write(self._mount, self._path, data, cas=self._version)
        return f"version {self._committed_version} written (previous version {self._version} kept)"

    def verify_current(self) -> str:
        assert self._pending is not None
        assert self._ref.key
        secret = self._client.kv_read(self._mount, self._path)
        value = secret.data.get(self._ref.key)
        require_same(SecretStr(value if isinstance(value, str) else ""), self._pending, self._where, "Vault")
        return f"version {secret.version} reads back"

    def abort(self) -> str:
        return "nothing was written to Vault"

    def revert(self) -> str:
        """Writes the previous data as a new version (cas on the rotated one) and reads it back."""
        assert self._data is not None
        version = self._client.kv_write(
            self._mount, self._path, dict(self._data), cas=self._committed_version
        )
        require_same(self._client_value(), self.previous(), self._where, "Vault")
        return f"Vault: the previous value is current again (version {version})"

    def _client_value(self) -> SecretStr:
        value = self._client.kv_read(self._mount, self._path).data.get(self._ref.key or "")
        return SecretStr(value if isinstance(value, str) else "")
