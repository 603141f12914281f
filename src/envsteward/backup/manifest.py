"""The backup manifest: what a backup holds and how to check it, stored as JSON next to the data object.

A backup is complete exactly when its manifest exists: the pipeline writes ``<backup-id>/manifest.json``
last, after ``<backup-id>/data.bin`` was stored and checked. The manifest holds only the *wrapped* data
key, and a MAC (HMAC-SHA256 under a key derived from the data key, see :mod:`envsteward.backup.format`)
over every other field, so a changed manifest (sizes, hashes, table checksums) fails verification.
Reading a manifest without the key provider (:func:`Manifest.from_json`) does not check that MAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from envsteward.errors import ConfigurationError, IntegrityError

MANIFEST_VERSION = 1
DATA_OBJECT_NAME = "data.bin"
MANIFEST_OBJECT_NAME = "manifest.json"

_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._=+-]*"
_BACKUP_ID = re.compile(rf"{_SEGMENT}(/{_SEGMENT})*")
_MAX_BACKUP_ID = 200
_SHA256_HEX = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_NonNegative = Annotated[int, Field(ge=0)]


def check_backup_id(backup_id: str) -> str:
    """Return ``backup_id`` when it is usable as an object-key prefix, else raise ConfigurationError.

    Allowed: ``/``-separated segments of letters, digits and ``. _ = + -``, not starting with ``.`` or
    ``-``, at most 200 characters (e.g. ``production/orders-db/20240101T000000Z-3fa2``).
    """
    if (
        not isinstance(backup_id, str)
        or len(backup_id) > _MAX_BACKUP_ID
        or not _BACKUP_ID.fullmatch(backup_id)
    ):
        raise ConfigurationError(
            f"invalid backup id {backup_id!r}: use '/'-separated segments of letters, digits and '._=+-' "
            f"that do not start with '.' or '-', at most {_MAX_BACKUP_ID} characters "
            "(e.g. 'production/orders-db/20240101T000000Z-3fa2')"
        )
    return backup_id


def data_object_key(backup_id: str) -> str:
    """The object key of a backup's encrypted data."""
    return f"{check_backup_id(backup_id)}/{DATA_OBJECT_NAME}"


def manifest_object_key(backup_id: str) -> str:
    """The object key of a backup's manifest (its presence marks the backup complete)."""
    return f"{check_backup_id(backup_id)}/{MANIFEST_OBJECT_NAME}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackupSourceInfo(_Model):
    """What was backed up: ``kind`` (postgres, sqlite, vault-kv, ssm, config...) and its catalog name."""

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=256)]


class TableChecksum(_Model):
    """Row count and checksum of one table at the consistent point (a DR drill recomputes and compares)."""

    name: Annotated[str, Field(min_length=1)]
    rows: _NonNegative
    checksum: Annotated[str, Field(min_length=1)]
    algorithm: str | None = None
    """How ``checksum`` was computed (e.g. ``md5(string_agg(row::text order by pk))``), for the drill."""


class BackupSizes(_Model):
    plaintext: _NonNegative
    compressed: _NonNegative
    ciphertext: _NonNegative


class BackupDigests(_Model):
    """SHA-256 (hex) of the source stream as read, and of the stored data object byte for byte."""

    plaintext: _SHA256_HEX
    ciphertext: _SHA256_HEX


class EncryptionInfo(_Model):
    cipher: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_id: Annotated[str, Field(min_length=1)]
    """The key provider's key that wrapped the data key (Vault transit key, KMS key id, local key file id)."""
    key_version: int | None = None
    wrapped_data_key: Annotated[str, Field(min_length=1)]
    """Base64 of the wrapped data key; only the key provider can unwrap it."""
    header_key_id: Annotated[str, Field(min_length=1)] | None = None
    """After ``backup rotate-key`` rewrapped the data key: the key id in the data object's header (the one
    the backup was made with; the header is authenticated with the data and never rewritten). None: the
    same as ``key_id``."""
    header_wrapped_data_key: Annotated[str, Field(min_length=1)] | None = None
    """After a rewrap: base64 of the wrapped data key in the data object's header. None: the same as
    ``wrapped_data_key``."""
    rewrapped_at: AwareDatetime | None = None
    """When ``backup rotate-key`` last rewrapped the data key; None: never."""

    def wrapped_key_bytes(self) -> bytes:
        """The wrapped data key. Raises IntegrityError when the stored base64 is damaged."""
        return _b64decode(self.wrapped_data_key, "encryption.wrapped_data_key")

    def stream_key_id(self) -> str:
        """The key id the data object's header carries (what the reader compares the header with)."""
        return self.header_key_id or self.key_id

    def stream_wrapped_key_bytes(self) -> bytes:
        """The wrapped data key the data object's header carries. Raises IntegrityError for bad base64."""
        if self.header_wrapped_data_key is None:
            return self.wrapped_key_bytes()
        return _b64decode(self.header_wrapped_data_key, "encryption.header_wrapped_data_key")


def _b64decode(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError(f"manifest: {field} is not valid base64") from None


_OPTIONAL_ENCRYPTION_FIELDS = ("header_key_id", "header_wrapped_data_key", "rewrapped_at")
"""Left out of the JSON (and so of the MAC) while None: manifests written before rewrapping existed keep
their MAC."""


class CompressionInfo(_Model):
    algorithm: Literal["zstd"] = "zstd"
    level: Annotated[int, Field(ge=1, le=22)]


class FormatInfo(_Model):
    version: Annotated[int, Field(ge=1)]
    chunk_size: Annotated[int, Field(ge=1)]
    chunks: _NonNegative


class ToolVersions(_Model):
    envsteward: str
    zstandard: str
    """The python-zstandard binding version."""
    libzstd: str
    others: dict[str, str] = Field(default_factory=dict)
    """Free-form, e.g. ``{"pg_dump": "16.3"}``."""


class Manifest(_Model):
    """Everything needed to find, verify and restore one backup (the wrapped key, never the plain one)."""

    manifest_version: Literal[1] = 1
    backup_id: str
    environment: Annotated[str, Field(min_length=1)]
    source: BackupSourceInfo
    started_at: AwareDatetime
    consistent_at: AwareDatetime
    """The point in time the backup's data represents (snapshot time): what RPO is measured against."""
    completed_at: AwareDatetime
    data_object: str
    sizes: BackupSizes
    sha256: BackupDigests
    encryption: EncryptionInfo
    compression: CompressionInfo
    format: FormatInfo
    tools: ToolVersions
    tables: tuple[TableChecksum, ...] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Free-form JSON labels from the caller (never secret values)."""
    mac: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """HMAC-SHA256 (hex) over the canonical JSON of all other fields; set by the pipeline."""

    @field_validator("backup_id")
    @classmethod
    def _valid_backup_id(cls, value: str) -> str:
        try:
            return check_backup_id(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("started_at", "consistent_at", "completed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    # -- JSON -----------------------------------------------------------------------------------------------

    def _document(self, **kwargs: Any) -> dict[str, Any]:
        document: dict[str, Any] = self.model_dump(mode="json", **kwargs)
        encryption = document["encryption"]
        for name in _OPTIONAL_ENCRYPTION_FIELDS:
            if encryption.get(name) is None:
                encryption.pop(name, None)
        return document

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON (indented, stable key order)."""
        document = self._document()
        return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, origin: str = "manifest") -> Manifest:
        """Parse a manifest. Raises IntegrityError naming ``origin`` and the bad fields (not their values)."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '<document>'}: {error['msg']}"
                for error in exc.errors(include_input=False)[:10]
            )
            raise IntegrityError(f"{origin} is not a valid backup manifest: {problems}") from None

    # -- authentication -------------------------------------------------------------------------------------

    def signing_bytes(self) -> bytes:
        """Canonical JSON of every field except ``mac`` (what the MAC covers)."""
        document = self._document(exclude={"mac"})
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def compute_mac(self, mac_key: bytes) -> str:
        return hmac.new(mac_key, self.signing_bytes(), hashlib.sha256).hexdigest()

    def with_mac(self, mac_key: bytes) -> Manifest:
        """A copy carrying the MAC under ``mac_key``."""
        return self.model_copy(update={"mac": self.compute_mac(mac_key)})

    def check_mac(self, mac_key: bytes) -> None:
        """Raise IntegrityError unless the manifest carries a valid MAC under ``mac_key``."""
        if self.mac is None:
            raise IntegrityError(f"backup {self.backup_id}: the manifest carries no MAC")
        if not hmac.compare_digest(self.mac, self.compute_mac(mac_key)):
            raise IntegrityError(
                f"backup {self.backup_id}: manifest authentication failed - the manifest was altered, or "
                "the data key does not belong to this backup (wrong key provider?)"
            )
