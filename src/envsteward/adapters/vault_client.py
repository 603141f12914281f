"""A thin, typed wrapper over hvac: KV v2, transit, token/AppRole auth and sys/health.

Every method calls Vault over HTTP (hvac + requests) and raises only :mod:`envsteward.errors` types,
translated in :mod:`envsteward.adapters.vault_errors`. Build one with :meth:`VaultClient.from_settings`
(``Services.vault_client()`` does) and inject it; nothing else builds an hvac client.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import hvac
from pydantic import SecretStr

from envsteward.adapters.vault_errors import SYSTEM, translate_vault_error, vault_errors
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrityError,
    NotFoundError,
    PermanentError,
)
from envsteward.ports import DataKey
from envsteward.settings import VaultSettings, read_credential

_RENEW_MARGIN_SECONDS = 30.0


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KVSecret:
    """One version of a KV v2 secret. ``data`` holds the values: never log or repr it."""

    mount: str
    path: str
    data: Mapping[str, Any]
    version: int
    created_time: datetime | None
    custom_metadata: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        keys = sorted(self.data)
        return f"KVSecret(mount={self.mount!r}, path={self.path!r}, version={self.version}, keys={keys!r})"


@dataclass(frozen=True)
class KVVersion:
    version: int
    created_time: datetime | None
    deletion_time: datetime | None
    destroyed: bool

    @property
    def deleted(self) -> bool:
        return self.deletion_time is not None or self.destroyed


@dataclass(frozen=True)
class KVMetadata:
    mount: str
    path: str
    current_version: int
    oldest_version: int
    created_time: datetime | None
    updated_time: datetime | None
    max_versions: int
    cas_required: bool
    custom_metadata: Mapping[str, str]
    versions: Mapping[int, KVVersion]


@dataclass(frozen=True)
class TransitKeyInfo:
    name: str
    type: str
    latest_version: int
    min_decryption_version: int
    min_encryption_version: int
    deletion_allowed: bool
    version_created: Mapping[int, datetime] = field(default_factory=dict)
    """When each version was made (symmetric keys: Vault lists ``keys`` as version -> creation time)."""


@dataclass(frozen=True)
class VaultHealth:
    """What ``sys/health`` said. ``reachable`` is False when nothing answered at the address."""

    reachable: bool
    initialized: bool = False
    sealed: bool = True
    standby: bool = False
    performance_standby: bool = False
    version: str | None = None
    cluster_name: str | None = None
    detail: str = ""

    def ok(self, standby_ok: bool = True) -> bool:
        """Healthy: reachable, initialized, unsealed, and active (or standby when that is acceptable)."""
        if not (self.reachable and self.initialized and not self.sealed):
            return False
        return standby_ok or not (self.standby or self.performance_standby)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------

_FRACTION = re.compile(r"\.(\d{6})\d+")
_CIPHERTEXT_VERSION = re.compile(r"^vault:v(\d+):")


def _parse_time(value: Any) -> datetime | None:
    """Vault's RFC 3339 times (nanoseconds, ``Z``) -> aware datetime; empty -> None."""
    if not value or not isinstance(value, str):
        return None
    text = _FRACTION.sub(r".\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _version_times(keys: Any) -> dict[int, datetime]:
    """``{version: created}`` from a transit key's ``keys`` (unix seconds, or RFC 3339 text for some
    versions and key types); versions without a readable time are left out."""
    found: dict[int, datetime] = {}
    if not isinstance(keys, dict):
        return found
    for version, value in keys.items():
        when: datetime | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            when = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            when = _parse_time(value)
        elif isinstance(value, dict):
            when = _parse_time(value.get("creation_time"))
        if when is not None and str(version).isdigit():
            found[int(version)] = when
    return found


def transit_key_version(ciphertext: str) -> int:
    """The key version from a transit ciphertext's ``vault:vN:`` prefix. Raises IntegrityError when absent."""
    match = _CIPHERTEXT_VERSION.match(ciphertext)
    if match is None:
        raise IntegrityError(
            "not a Vault transit ciphertext (expected a vault:vN: prefix)", system=SYSTEM, operation="transit"
        )
    return int(match.group(1))


def split_mount_path(location: str) -> tuple[str, str]:
    """``"secret/app/db"`` -> ``("secret", "app/db")``. Raises ConfigurationError without a mount."""
    mount, _, path = location.strip("/").partition("/")
    if not mount:
        raise ConfigurationError(
            f"vault location {location!r} must look like MOUNT/PATH (e.g. secret/app/db)", system=SYSTEM
        )
    return mount, path.strip("/")


def _join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


# ---------------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------------


class VaultClient:
    """Vault (or OpenBao) over hvac. Thread-safe for reads; AppRole tokens are renewed by logging in again.

    Every method raises envsteward errors only: NotFoundError, PermissionDeniedError, AuthenticationError,
    ConflictError, IntegrityError, PermanentError, or TransientError (unreachable, sealed, 5xx, 429).
    """

    def __init__(self, client: hvac.Client, *, addr: str, transit_mount: str = "transit") -> None:
        self._client = client
        self.addr = addr
        self.transit_mount = transit_mount
        self._lock = threading.RLock()
        self._approle: tuple[str, str, SecretStr] | None = None
        self._token_expires_at: float | None = None

    def __repr__(self) -> str:
        return f"VaultClient(addr={self.addr!r})"

    # -- construction and auth -------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: VaultSettings, *, authenticate: bool = True) -> VaultClient:
        """Build a client for ``settings.addr``; log in with the configured token or AppRole.

        The token / secret id are read from the env var or file the settings name (never from the settings
        themselves). ``authenticate=False`` gives an anonymous client (enough for :meth:`health`).
        Raises ConfigurationError when a credential is not configured, AuthenticationError when AppRole
        login is refused, TransientError when Vault cannot be reached.
        """
        raw = hvac.Client(
            url=settings.addr,
            token="",  # never let hvac fall back to VAULT_TOKEN / ~/.vault-token behind the settings' back
            namespace=settings.namespace,
            verify=settings.verify_tls,
            timeout=settings.timeout_seconds,  # type: ignore[arg-type]  # requests takes floats
        )
        client = cls(raw, addr=settings.addr, transit_mount=settings.transit_mount)
        if not authenticate:
            return client
        if settings.auth == "token":
            token = read_credential(settings.token_env, settings.token_file, "vault token")
            if token is None:
                raise ConfigurationError(
                    f"vault token is not set: export {settings.token_env} or set ENVSTEWARD_VAULT__TOKEN_FILE"
                )
            client.use_token(token)
        else:
            if not settings.role_id:
                raise ConfigurationError(
                    "vault.auth is approle but vault.role_id is not set (ENVSTEWARD_VAULT__ROLE_ID)"
                )
            secret_id = read_credential(
                settings.secret_id_env, settings.secret_id_file, "vault AppRole secret id"
            )
            if secret_id is None:
                raise ConfigurationError(
                    f"vault AppRole secret id is not set: export {settings.secret_id_env} "
                    "or set ENVSTEWARD_VAULT__SECRET_ID_FILE"
                )
            client.login_approle(settings.role_id, secret_id, mount=settings.approle_mount)
        return client

    @classmethod
    def anonymous(cls, addr: str, *, timeout_seconds: float, verify_tls: bool = True) -> VaultClient:
        """A client without a token for a Vault at ``addr`` (enough for :meth:`health`). No call to Vault."""
        raw = hvac.Client(url=addr, token="", verify=verify_tls, timeout=timeout_seconds)  # type: ignore[arg-type]
        return cls(raw, addr=addr)

    def use_token(self, token: SecretStr) -> None:
        """Authenticate every later call with ``token`` (no call to Vault)."""
        with self._lock:
            self._client.token = token.get_secret_value()
            self._approle = None
            self._token_expires_at = None

    def login_approle(self, role_id: str, secret_id: SecretStr, *, mount: str = "approle") -> None:
        """Log in with AppRole (POST auth/<mount>/login) and use the token it returns.

        The client logs in again by itself shortly before that token expires. Raises AuthenticationError
        or PermissionDeniedError when the role id / secret id are refused, TransientError when unreachable.
        """
        with self._lock:
            self._approle = (mount, role_id, secret_id)
            self._approle_login()

    def _approle_login(self) -> None:
        assert self._approle is not None
        mount, role_id, secret_id = self._approle
        started = time.monotonic()
        try:
            response = self._client.auth.approle.login(
                role_id=role_id, secret_id=secret_id.get_secret_value(), mount_point=mount
            )
        except Exception as exc:  # noqa: BLE001 - translated by the one mapping function
            raise translate_vault_error(
                exc, "approle login", f"auth/{mount}", invalid_request=AuthenticationError
            ) from None
        lease = float(response.get("auth", {}).get("lease_duration") or 0)
        self._token_expires_at = started + lease if lease > 0 else None

    def _ensure_auth(self) -> None:
        if self._approle is None or self._token_expires_at is None:
            return
        with self._lock:
            if self._token_expires_at is not None and time.monotonic() > (
                self._token_expires_at - _RENEW_MARGIN_SECONDS
            ):
                self._approle_login()

    def token_policies(self) -> list[str]:
        """The policies of the current token (GET auth/token/lookup-self). Raises AuthenticationError etc."""
        self._ensure_auth()
        with vault_errors("token lookup-self", "auth/token"):
            data = self._client.auth.token.lookup_self()["data"]
        return sorted(data.get("policies") or [])

    # -- sys/health -----------------------------------------------------------------------------------

    def health(self) -> VaultHealth:
        """GET sys/health (no token needed). Never raises for a sealed, standby or unreachable Vault: the
        result says so (``reachable`` False when nothing answered). Raises PermanentError for a non-Vault
        answer."""
        try:
            response = self._client.sys.read_health_status(method="GET")
        except Exception as exc:  # noqa: BLE001 - unreachable is a result here, not an error
            error = translate_vault_error(exc, "health", "sys/health")
            if error.transient:
                detail = str(error).removeprefix(f"{error.system}: {error.operation}: ")
                return VaultHealth(reachable=False, detail=detail)
            raise error from None
        body: Any = response if isinstance(response, dict) else _json_or_none(response)
        if not isinstance(body, dict) or "initialized" not in body:
            status = getattr(response, "status_code", 200)
            if status >= 500:  # e.g. a proxy in front of a Vault that is down
                return VaultHealth(reachable=False, detail=f"HTTP {status} without a health document")
            raise PermanentError(
                "the answer is not a Vault health document (is the address a Vault server?)",
                system=SYSTEM,
                operation="health sys/health",
            )
        return VaultHealth(
            reachable=True,
            initialized=bool(body.get("initialized")),
            sealed=bool(body.get("sealed", True)),
            standby=bool(body.get("standby")),
            performance_standby=bool(body.get("performance_standby")),
            version=body.get("version"),
            cluster_name=body.get("cluster_name"),
        )

    # -- KV v2 ------------------------------------------------------------------------------------------

    def kv_read(self, mount: str, path: str, version: int | None = None) -> KVSecret:
        """Read the latest (or a given) version of a KV v2 secret (GET <mount>/data/<path>).

        Raises NotFoundError when the secret, or that version, does not exist or is deleted/destroyed.
        """
        self._ensure_auth()
        where = _join(mount, path) + (f"?version={version}" if version is not None else "")
        with vault_errors("kv read", where):
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=mount, raise_on_deleted_version=True
            )
        payload = response.get("data") or {}
        meta = payload.get("metadata") or {}
        data = payload.get("data")
        if data is None:
            raise NotFoundError(
                "this version is deleted or destroyed", system=SYSTEM, operation=f"kv read {where}"
            )
        return KVSecret(
            mount=mount,
            path=path,
            data=data,
            version=int(meta.get("version") or 0),
            created_time=_parse_time(meta.get("created_time")),
            custom_metadata=meta.get("custom_metadata") or {},
        )

    def kv_write(self, mount: str, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int:
        """Write a new version of a secret (POST <mount>/data/<path>); return the new version number.

        ``cas`` is check-and-set: 0 creates only when absent, N writes only when the current version is N.
        Raises ConflictError when the check-and-set fails, PermissionDeniedError, TransientError...
        """
        self._ensure_auth()
        with vault_errors("kv write", _join(mount, path)):
            response = self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), cas=cas, mount_point=mount
            )
        return int((response.get("data") or {}).get("version") or 0)

    def kv_list(self, mount: str, path: str = "") -> list[str]:
        """The names directly under ``path`` (LIST <mount>/metadata/<path>); folders end with ``/``.

        Returns an empty list when nothing is there.
        """
        self._ensure_auth()
        try:
            with vault_errors("kv list", _join(mount, path)):
                response = self._client.secrets.kv.v2.list_secrets(path=path, mount_point=mount)
        except NotFoundError:
            return []
        return sorted((response.get("data") or {}).get("keys") or [])

    def kv_walk(self, mount: str, path: str = "") -> Iterator[str]:
        """Every secret path below ``path`` (relative to it, e.g. ``db`` and ``cache/redis``), recursively,
        in sorted order. Calls LIST once per folder."""
        for name in self.kv_list(mount, path):
            if name.endswith("/"):
                folder = name.rstrip("/")
                for child in self.kv_walk(mount, _join(path, folder)):
                    yield f"{folder}/{child}"
            else:
                yield name

    def kv_metadata(self, mount: str, path: str) -> KVMetadata:
        """A secret's metadata and version history (GET <mount>/metadata/<path>). Raises NotFoundError."""
        self._ensure_auth()
        with vault_errors("kv metadata", _join(mount, path)):
            response = self._client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
        data = response.get("data") or {}
        versions = {
            int(number): KVVersion(
                version=int(number),
                created_time=_parse_time(info.get("created_time")),
                deletion_time=_parse_time(info.get("deletion_time")),
                destroyed=bool(info.get("destroyed")),
            )
            for number, info in (data.get("versions") or {}).items()
        }
        return KVMetadata(
            mount=mount,
            path=path,
            current_version=int(data.get("current_version") or 0),
            oldest_version=int(data.get("oldest_version") or 0),
            created_time=_parse_time(data.get("created_time")),
            updated_time=_parse_time(data.get("updated_time")),
            max_versions=int(data.get("max_versions") or 0),
            cas_required=bool(data.get("cas_required")),
            custom_metadata=data.get("custom_metadata") or {},
            versions=dict(sorted(versions.items())),
        )

    def kv_update_metadata(
        self,
        mount: str,
        path: str,
        *,
        custom_metadata: Mapping[str, str] | None = None,
        max_versions: int | None = None,
        cas_required: bool | None = None,
    ) -> None:
        """Set a secret's custom metadata / limits (POST <mount>/metadata/<path>)."""
        self._ensure_auth()
        with vault_errors("kv update metadata", _join(mount, path)):
            self._client.secrets.kv.v2.update_metadata(
                path=path,
                mount_point=mount,
                custom_metadata=dict(custom_metadata) if custom_metadata is not None else None,
                max_versions=max_versions,
                cas_required=cas_required,
            )

    def kv_delete_versions(self, mount: str, path: str, versions: Sequence[int]) -> None:
        """Soft-delete versions (POST <mount>/delete/<path>); they can be undeleted until destroyed."""
        self._ensure_auth()
        with vault_errors("kv delete versions", _join(mount, path)):
            self._client.secrets.kv.v2.delete_secret_versions(
                path=path, versions=list(versions), mount_point=mount
            )

    def kv_undelete_versions(self, mount: str, path: str, versions: Sequence[int]) -> None:
        """Restore soft-deleted versions (POST <mount>/undelete/<path>)."""
        self._ensure_auth()
        with vault_errors("kv undelete versions", _join(mount, path)):
            self._client.secrets.kv.v2.undelete_secret_versions(
                path=path, versions=list(versions), mount_point=mount
            )

    def kv_destroy_versions(self, mount: str, path: str, versions: Sequence[int]) -> None:
        """Permanently destroy versions' data (POST <mount>/destroy/<path>)."""
        self._ensure_auth()
        with vault_errors("kv destroy versions", _join(mount, path)):
            self._client.secrets.kv.v2.destroy_secret_versions(
                path=path, versions=list(versions), mount_point=mount
            )

    def kv_delete_all(self, mount: str, path: str) -> None:
        """Delete a secret's metadata and every version (DELETE <mount>/metadata/<path>)."""
        self._ensure_auth()
        with vault_errors("kv delete all versions", _join(mount, path)):
            self._client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=mount)

    # -- transit -----------------------------------------------------------------------------------------

    @property
    def _transit(self) -> Any:
        # types-hvac leaves most transit methods untyped; the wrappers below give them types.
        return self._client.secrets.transit

    def transit_create_key(self, name: str, key_type: str = "aes256-gcm96") -> None:
        """Create a transit key (POST transit/keys/<name>); a no-op when it exists."""
        self._ensure_auth()
        with vault_errors("transit create key", _join(self.transit_mount, "keys", name)):
            self._transit.create_key(name=name, key_type=key_type, mount_point=self.transit_mount)

    def transit_encrypt(self, key: str, plaintext: bytes) -> str:
        """Encrypt with a transit key (POST transit/encrypt/<key>); returns ``vault:vN:...``."""
        self._ensure_auth()
        with vault_errors("transit encrypt", _join(self.transit_mount, "encrypt", key)):
            response = self._transit.encrypt_data(
                name=key,
                plaintext=base64.b64encode(plaintext).decode("ascii"),
                mount_point=self.transit_mount,
            )
        return str(response["data"]["ciphertext"])

    def transit_decrypt(self, key: str, ciphertext: str) -> bytes:
        """Decrypt a ``vault:vN:...`` ciphertext (POST transit/decrypt/<key>).

        Raises IntegrityError when the ciphertext is malformed, from another key, or altered.
        """
        transit_key_version(ciphertext)
        self._ensure_auth()
        with vault_errors(
            "transit decrypt", _join(self.transit_mount, "decrypt", key), invalid_request=IntegrityError
        ):
            response = self._transit.decrypt_data(
                name=key, ciphertext=ciphertext, mount_point=self.transit_mount
            )
        try:
            return base64.b64decode(response["data"]["plaintext"], validate=True)
        except (KeyError, ValueError, TypeError):
            raise IntegrityError(
                "vault returned no decodable plaintext", system=SYSTEM, operation="transit decrypt"
            ) from None

    def transit_generate_data_key(self, key: str, bits: int = 256) -> DataKey:
        """A new data key, plaintext and wrapped (POST transit/datakey/plaintext/<key>)."""
        self._ensure_auth()
        with vault_errors("transit generate data key", _join(self.transit_mount, "datakey/plaintext", key)):
            response = self._transit.generate_data_key(
                name=key, key_type="plaintext", bits=bits, mount_point=self.transit_mount
            )
        ciphertext = str(response["data"]["ciphertext"])
        return DataKey(
            plaintext=base64.b64decode(response["data"]["plaintext"]),
            wrapped=ciphertext.encode("ascii"),
            key_id=key,
            key_version=transit_key_version(ciphertext),
        )

    def transit_rotate(self, key: str) -> int:
        """Rotate a transit key (POST transit/keys/<key>/rotate); return the new latest version."""
        self._ensure_auth()
        with vault_errors("transit rotate", _join(self.transit_mount, "keys", key, "rotate")):
            self._transit.rotate_key(name=key, mount_point=self.transit_mount)
        return self.transit_key_info(key).latest_version

    def transit_key_info(self, key: str) -> TransitKeyInfo:
        """A transit key's versions and policy (GET transit/keys/<key>). Raises NotFoundError."""
        self._ensure_auth()
        with vault_errors("transit read key", _join(self.transit_mount, "keys", key)):
            response = self._transit.read_key(name=key, mount_point=self.transit_mount)
        if not isinstance(response, dict) or not response.get("data"):
            # Vault answers 204/404 for a missing key depending on version; both mean "no such key".
            raise NotFoundError(
                "no such transit key",
                system=SYSTEM,
                operation=f"transit read key {self.transit_mount}/keys/{key}",
            )
        data = response["data"]
        return TransitKeyInfo(
            name=str(data.get("name", key)),
            type=str(data.get("type", "")),
            latest_version=int(data.get("latest_version") or 0),
            min_decryption_version=int(data.get("min_decryption_version") or 0),
            min_encryption_version=int(data.get("min_encryption_version") or 0),
            deletion_allowed=bool(data.get("deletion_allowed")),
            version_created=_version_times(data.get("keys")),
        )

    def transit_rewrap(self, key: str, ciphertext: str) -> str:
        """Re-encrypt a ``vault:vN:...`` ciphertext with the key's newest version inside Vault (POST
        transit/rewrap/<key>); the plaintext never leaves Vault. Returns the new ``vault:vM:...``.

        Raises IntegrityError when the ciphertext is malformed, from another key, altered, or older than
        the key's ``min_decryption_version``; NotFoundError, PermissionDeniedError, TransientError.
        """
        transit_key_version(ciphertext)
        self._ensure_auth()
        with vault_errors(
            "transit rewrap", _join(self.transit_mount, "rewrap", key), invalid_request=IntegrityError
        ):
            response = self._transit.rewrap_data(
                name=key, ciphertext=ciphertext, mount_point=self.transit_mount
            )
        rewrapped = str(response["data"]["ciphertext"])
        transit_key_version(rewrapped)
        return rewrapped

    def transit_set_min_decryption_version(self, key: str, version: int) -> None:
        """Refuse to decrypt ciphertexts older than ``version`` (POST transit/keys/<key>/config)."""
        self._ensure_auth()
        with vault_errors("transit configure key", _join(self.transit_mount, "keys", key, "config")):
            self._transit.update_key_configuration(
                name=key, min_decryption_version=version, mount_point=self.transit_mount
            )

    def transit_sign(self, key: str, data: bytes, *, key_version: int | None = None) -> str:
        """Sign ``data`` with an asymmetric transit key (POST transit/sign/<key>): ed25519, or ECDSA over
        SHA-256 with an ASN.1 DER signature. Returns ``vault:vN:<base64>``. Raises NotFoundError,
        PermissionDeniedError, PermanentError (a key type that cannot sign)."""
        self._ensure_auth()
        with vault_errors("transit sign", _join(self.transit_mount, "sign", key)):
            response = self._transit.sign_data(
                name=key,
                hash_input=base64.b64encode(data).decode("ascii"),
                key_version=key_version,
                mount_point=self.transit_mount,
            )
        return str(response["data"]["signature"])

    def transit_verify(self, key: str, data: bytes, signature: str) -> bool:
        """Ask Vault whether ``signature`` (``vault:vN:...``) is ``key``'s signature of ``data`` (POST
        transit/verify/<key>). Raises NotFoundError, PermissionDeniedError."""
        self._ensure_auth()
        with vault_errors("transit verify", _join(self.transit_mount, "verify", key)):
            response = self._transit.verify_signed_data(
                name=key,
                hash_input=base64.b64encode(data).decode("ascii"),
                signature=signature,
                mount_point=self.transit_mount,
            )
        return bool(response["data"]["valid"])

    def transit_public_keys(self, key: str) -> tuple[str, dict[int, str]]:
        """An asymmetric transit key's type and public key per version, as Vault reports them (GET
        transit/keys/<key>): base64 raw bytes for ed25519, PEM for ECDSA. Raises NotFoundError, and
        PermanentError for a symmetric key (no public key)."""
        self._ensure_auth()
        with vault_errors("transit read key", _join(self.transit_mount, "keys", key)):
            response = self._transit.read_key(name=key, mount_point=self.transit_mount)
        if not isinstance(response, dict) or not response.get("data"):
            raise NotFoundError(
                "no such transit key",
                system=SYSTEM,
                operation=f"transit read key {self.transit_mount}/keys/{key}",
            )
        data = response["data"]
        keys = data.get("keys") or {}
        found = {
            int(version): str(entry["public_key"])
            for version, entry in keys.items()
            if isinstance(entry, dict) and entry.get("public_key")
        }
        if not found:
            raise PermanentError(
                f"transit key {key!r} (type {data.get('type')!r}) has no public key: use type ed25519 or "
                "ecdsa-p256 to sign audit checkpoints",
                system=SYSTEM,
                operation=f"transit read key {self.transit_mount}/keys/{key}",
            )
        return str(data.get("type", "")), found

    # -- escape hatch for fixtures and admin tasks ------------------------------------------------------

    @property
    def hvac(self) -> hvac.Client:
        """The underlying hvac client, for administrative calls this wrapper does not cover (tests, setup).

        Calls made through it are not translated; wrap them in ``vault_errors(...)``.
        """
        return self._client


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except Exception:  # noqa: BLE001 - a non-JSON body is reported by the caller
        return None
