"""Vault implementations of the ports: a KV v2 ConfigSource, the ``vault://`` SecretStore and a transit
KeyProvider. Each calls Vault through :class:`~envsteward.adapters.vault_client.VaultClient`, so every error
is already an envsteward error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from envsteward.adapters._tree import set_leaf, set_nested, split_path
from envsteward.adapters.vault_client import VaultClient, split_mount_path, transit_key_version
from envsteward.adapters.vault_errors import SYSTEM
from envsteward.errors import IntegrityError, NotFoundError, PermanentError
from envsteward.inventory.metadata import KeyState, SecretMetadata, StoredSecret
from envsteward.ports import DataKey, JSONValue


class VaultKVSource:
    """A subtree of a KV v2 mount as a ConfigSource.

    ``path`` is ``<kv-mount>/<path>``. Every secret below it becomes a nested mapping keyed by its relative
    path: the secret ``<path>/database`` holding ``{host, port}`` reads as ``{"database": {"host": ...,
    "port": ...}}``; data keys of the secret at ``<path>`` itself sit at the root.
    """

    def __init__(
        self, name: str, client: VaultClient, path: str, writable: bool = False, *, missing_ok: bool = False
    ) -> None:
        self.name = name
        self.writable = writable
        self.missing_ok = missing_ok
        self._client = client
        self.mount, self.path = split_mount_path(path)

    def __repr__(self) -> str:
        location = f"{self.mount}/{self.path}"
        return f"VaultKVSource(name={self.name!r}, path={location!r}, writable={self.writable})"

    def _full(self, relative: tuple[str, ...]) -> str:
        return "/".join(part for part in (self.path, *relative) if part)

    def read(self) -> Mapping[str, JSONValue]:
        """Read every secret under the path (LIST per folder, GET per secret).

        Deleted secrets are skipped. Raises NotFoundError when nothing at all is under the path (unless
        ``missing_ok``: then ``{}``), PermissionDeniedError, TransientError, or PermanentError when a name
        is both a data key and a folder.
        """
        where = f"read {self.mount}/{self.path}"
        tree: dict[str, Any] = {}
        found = False
        try:
            root = self._client.kv_read(self.mount, self.path) if self.path else None
        except NotFoundError:
            root = None
        if root is not None:
            found = True
            set_nested(tree, (), root.data, system=SYSTEM, where=where)
        for relative in self._client.kv_walk(self.mount, self.path):
            found = True
            try:
                secret = self._client.kv_read(self.mount, self._full(split_path(relative)))
            except NotFoundError:
                continue  # listed but its latest version is deleted: it does not exist for config purposes
            set_nested(tree, split_path(relative), secret.data, system=SYSTEM, where=where)
        if not found and not self.missing_ok:
            raise NotFoundError(
                "no secrets under this path", system=SYSTEM, operation=f"read {self.mount}/{self.path}"
            )
        return tree

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """Set one leaf with a read-modify-write guarded by check-and-set.

        The secret updated is the deepest existing one along ``key_path`` that holds the leaf directly or
        already holds its branch; when there is none, the secret ``<path>/<key_path[:-1]>`` is created
        holding ``{key_path[-1]: value}``. A concurrent
        change between the read and the write raises ConflictError (nothing is lost or overwritten).
        Raises PermanentError when the source is read-only or ``key_path`` is empty.
        """
        if not self.writable:
            raise PermanentError(
                f"source {self.name!r} is read-only",
                system=SYSTEM,
                operation=f"write {self.mount}/{self.path}",
            )
        if not key_path:
            raise PermanentError("an empty key path names no leaf", system=SYSTEM, operation="write")
        for split in range(len(key_path) - 1, -1, -1):
            secret_path = self._full(key_path[:split])
            if not secret_path:
                continue  # the mount root is a folder, never a secret
            try:
                current = self._client.kv_read(self.mount, secret_path)
            except NotFoundError:
                continue
            if split < len(key_path) - 1 and key_path[split] not in current.data:
                continue  # this secret does not hold that branch: prefer a secret of its own
            data = json.loads(json.dumps(dict(current.data)))  # deep copy of plain JSON
            set_leaf(
                data, key_path[split:], value, system=SYSTEM, operation=f"write {self.mount}/{secret_path}"
            )
            self._client.kv_write(self.mount, secret_path, data, cas=current.version)
            return
        secret_path = self._full(key_path[:-1])
        if not secret_path:
            raise PermanentError(
                "a value cannot sit at the root of a KV mount; use a deeper key path",
                system=SYSTEM,
                operation=f"write {self.mount}/",
            )
        try:
            cas = self._client.kv_metadata(self.mount, secret_path).current_version
        except NotFoundError:
            cas = 0
        self._client.kv_write(self.mount, secret_path, {key_path[-1]: value}, cas=cas)


class VaultSecretStore:
    """``vault://<mount>/<path>#<key>`` references: one key of a KV v2 secret."""

    scheme = "vault"

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """Return the key's value (as a string; non-strings JSON-encoded). Without ``key``: the whole secret's
        data as JSON. Raises NotFoundError when the secret or the key is missing (the message names the key,
        never a value), PermissionDeniedError, TransientError."""
        mount, path = split_mount_path(location)
        data = self._client.kv_read(mount, path).data
        if key is None:
            return SecretStr(json.dumps(data, sort_keys=True))
        if key not in data:
            raise NotFoundError(f"secret has no key {key!r}", system=SYSTEM, operation=f"read {location}")
        value = data[key]
        return SecretStr(value if isinstance(value, str) else json.dumps(value))

    def secret_exists(self, location: str, key: str | None) -> bool:
        """True when the secret (and key) exist. Raises PermissionDeniedError, TransientError."""
        mount, path = split_mount_path(location)
        try:
            data = self._client.kv_read(mount, path).data
        except NotFoundError:
            return False
        return key is None or key in data

    def describe_secret(self, location: str, key: str | None) -> SecretMetadata:
        """Current version and when it was written (GET <mount>/metadata/<path>); with ``key``, whether the
        current version holds it (GET <mount>/data/<path>, the value dropped at once). A missing secret,
        a deleted or destroyed current version, or a missing key is ``exists=False``. Raises
        PermissionDeniedError, TransientError."""
        mount, path = split_mount_path(location)
        try:
            meta = self._client.kv_metadata(mount, path)
        except NotFoundError:
            return SecretMetadata(exists=False, detail="no such secret")
        current = meta.versions.get(meta.current_version)
        version = str(meta.current_version) if meta.current_version else None
        if current is None or current.deleted:
            return SecretMetadata(exists=False, version=version, detail="the current version is deleted")
        changed = current.created_time or meta.updated_time
        if key is not None:
            try:
                present = key in self._client.kv_read(mount, path).data
            except NotFoundError:
                return SecretMetadata(exists=False, version=version, detail="the current version is deleted")
            if not present:
                return SecretMetadata(
                    exists=False, version=version, changed_at=changed, detail=f"no key {key!r}"
                )
        return SecretMetadata(exists=True, version=version, changed_at=changed)

    def list_secrets(self, prefix: str) -> list[StoredSecret]:
        """Every KV v2 secret below ``<mount>/<path>`` (LIST per folder), as ``<mount>/<path>/<name>``."""
        mount, path = split_mount_path(prefix)
        base = f"{mount}/{path}" if path else mount
        return [StoredSecret(f"{base}/{relative}") for relative in self._client.kv_walk(mount, path)]


class VaultTransitKeyProvider:
    """Data keys wrapped by a Vault transit key (``key_id`` is the transit key's name)."""

    def __init__(self, client: VaultClient, key_name: str) -> None:
        self._client = client
        self.key_id = key_name

    def __repr__(self) -> str:
        return f"VaultTransitKeyProvider(key_id={self.key_id!r})"

    def generate_data_key(self) -> DataKey:
        """A new 256-bit key (POST transit/datakey/plaintext/<key>); ``wrapped`` is the ``vault:vN:`` text."""
        return self._client.transit_generate_data_key(self.key_id)

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """The plaintext data key (POST transit/decrypt/<key>).

        Raises IntegrityError when ``key_id`` is not this provider's key, or the wrapped key is malformed,
        from another key or altered.
        """
        if key_id != self.key_id:
            raise IntegrityError(
                f"the data key was wrapped by {key_id!r}, this provider uses {self.key_id!r}",
                system=SYSTEM,
                operation="transit unwrap",
            )
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError(
                "wrapped key is not a Vault transit ciphertext", system=SYSTEM, operation="transit unwrap"
            ) from None
        transit_key_version(ciphertext)
        plaintext = self._client.transit_decrypt(self.key_id, ciphertext)
        if len(plaintext) != 32:
            raise IntegrityError("unwrapped key is not 256 bits", system=SYSTEM, operation="transit unwrap")
        return plaintext

    # -- rotation (envsteward backup rotate-key) ----------------------------------------------------------

    def describe(self) -> KeyState:
        """The transit key's newest version, ``min_decryption_version`` and when the newest version was
        made (GET transit/keys/<key>). Raises NotFoundError, PermissionDeniedError, TransientError."""
        info = self._client.transit_key_info(self.key_id)
        return KeyState(
            key_id=self.key_id,
            latest_version=info.latest_version,
            min_decryption_version=info.min_decryption_version,
            created_at=info.version_created.get(info.latest_version),
        )

    def rotate(self) -> int:
        """A new key version (POST transit/keys/<key>/rotate); returns its number. Older versions keep
        decrypting until :meth:`retire_versions_below`."""
        return self._client.transit_rotate(self.key_id)

    def wrapped_version(self, wrapped: bytes, key_id: str) -> int | None:
        """The key version in a wrapped key's ``vault:vN:`` prefix; None when it has none or names another
        key. Pure."""
        if key_id != self.key_id:
            return None
        try:
            return transit_key_version(wrapped.decode("ascii"))
        except (UnicodeDecodeError, IntegrityError):
            return None

    def rewrap(self, wrapped: bytes, key_id: str) -> DataKey:
        """The data key rewrapped with the newest version inside Vault (POST transit/rewrap/<key>), then
        unwrapped once (POST transit/decrypt/<key>) so the caller can re-MAC its manifest and knows the
        new wrap opens. Raises what :meth:`unwrap` raises."""
        if key_id != self.key_id:
            raise IntegrityError(
                f"the data key was wrapped by {key_id!r}, this provider uses {self.key_id!r}",
                system=SYSTEM,
                operation="transit rewrap",
            )
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError(
                "wrapped key is not a Vault transit ciphertext", system=SYSTEM, operation="transit rewrap"
            ) from None
        rewrapped = self._client.transit_rewrap(self.key_id, ciphertext).encode("ascii")
        return DataKey(
            plaintext=self.unwrap(rewrapped, self.key_id),
            wrapped=rewrapped,
            key_id=self.key_id,
            key_version=transit_key_version(rewrapped.decode("ascii")),
        )

    def retire_versions_below(self, version: int) -> None:
        """Set the transit key's ``min_decryption_version`` (POST transit/keys/<key>/config), never lowering
        it: ciphertexts of older versions stop decrypting. Raises PermissionDeniedError, TransientError."""
        info = self._client.transit_key_info(self.key_id)
        target = min(version, info.latest_version)
        if target > info.min_decryption_version:
            self._client.transit_set_min_decryption_version(self.key_id, target)
