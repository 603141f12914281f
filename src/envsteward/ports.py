"""The ports: one Protocol per kind of external system.

The core talks only to these. Each adapter in :mod:`envsteward.adapters` implements one of them over a
vendor library and translates that library's exceptions into :mod:`envsteward.errors` at the boundary.
Tests exercise the adapters against real servers on loopback (OpenBao, moto, PostgreSQL, Redis, stand-ins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr

JSONValue = Any
"""A value that survives ``json.dumps``: dict, list, str, int, float, bool or None."""


# ---------------------------------------------------------------------------------------------------------
# Configuration sources (desired vs live)
# ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class ConfigSource(Protocol):
    """A live store that holds one subtree of an environment's configuration.

    ``read`` returns the subtree as a nested mapping (the shape the catalog's desired configuration has at
    the mount point). ``write`` sets one leaf, addressed by its key path relative to the mount point.
    """

    name: str
    writable: bool

    def read(self) -> Mapping[str, JSONValue]:
        """Return the live subtree. Raises NotFoundError, PermissionDeniedError, TransientError."""
        ...

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """Set one leaf. Raises PermanentError when the source is read-only, or the adapter's errors."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Secrets and keys
# ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class SecretStore(Protocol):
    """Resolves secret references (``vault://…``, ``aws-sm://…``, ``ssm://…``) to values, for one scheme."""

    scheme: str

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """Return the secret at ``location`` (and ``key`` within it). Raises NotFoundError etc."""
        ...

    def secret_exists(self, location: str, key: str | None) -> bool:
        """True when the referenced secret exists; never returns or logs its value."""
        ...


@dataclass(frozen=True, repr=False)
class DataKey:
    """A fresh data-encryption key: ``plaintext`` stays in memory, ``wrapped`` is stored with the data."""

    plaintext: bytes
    wrapped: bytes
    key_id: str
    key_version: int | None = None

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, key_version={self.key_version!r}, plaintext=<redacted>)"


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps per-object data keys (Vault transit, AWS KMS, or a local key file)."""

    key_id: str

    def generate_data_key(self) -> DataKey:
        """Return a new 256-bit data key with its wrapped form. Raises the adapter's errors."""
        ...

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Return the plaintext data key. Raises IntegrityError when the wrapped key is not ours."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Object storage
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """A bucket of named byte objects: S3 in production, a local folder for the embedded default."""

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Write (replace) an object."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only when no object has that key; False when one exists (no write)."""
        ...

    def put_stream(
        self, key: str, chunks: Iterable[bytes], metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Stream an object of unknown size without holding it whole in memory (S3 multipart).

        An interrupted upload leaves no object at ``key`` (S3: the multipart upload is aborted).
        """
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object. Raises NotFoundError."""
        ...

    def get_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Read an object in chunks. Raises NotFoundError."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None when it does not exist."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, all pages."""
        ...

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------------------------


class Severity(StrEnum):
    """Shared severity scale for drift items, alerts and rule results.

    Fail safe (DESIGN.md, security invariants): an unknown severity *of something that happened* is the
    highest (:meth:`parse`); an unknown *threshold* is the lowest (:meth:`parse_threshold`), so that in both
    cases an unknown name makes envsteward louder, never quieter.
    """

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: str | None) -> Severity:
        """The severity of an item or alert; an unknown or missing name is CRITICAL (the highest)."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.CRITICAL

    @classmethod
    def parse_threshold(cls, value: str | None) -> Severity:
        """A minimum severity (``fail_on``, a filter); an unknown or missing name is INFO (the lowest), so
        everything is at or above it."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.INFO


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class AlertEvent(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"
    INFO = "info"


@dataclass(frozen=True)
class Notification:
    """A message for people. It must never carry a secret value (callers pass redacted data only)."""

    title: str
    text: str
    severity: Severity = Severity.INFO
    event: AlertEvent = AlertEvent.INFO
    environment: str | None = None
    dedup_key: str | None = None
    link: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Notifier(Protocol):
    """Slack, email or PagerDuty. ``send`` raises TransientError or PermanentError."""

    name: str

    def send(self, notification: Notification) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# Audit log and state
# ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class AuditSink(Protocol):
    """Durable, append-only storage of audit records (serialised JSON, one per line / object)."""

    def append_line(self, expected_sequence: int, line: str) -> bool:
        """Store ``line`` as record ``expected_sequence`` only if it is the next one; False if taken."""
        ...

    def read_lines(self) -> Iterator[str]:
        """Every stored record line, in stored order."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Small JSON documents that flows keep between runs (last health status, alert fingerprints)."""

    def get(self, key: str) -> JSONValue | None: ...

    def put(self, key: str, value: JSONValue) -> None: ...

    def delete(self, key: str) -> None: ...

    def update(self, key: str, fn: Callable[[JSONValue | None], JSONValue | None]) -> JSONValue | None:
        """Atomic read-modify-write: store ``fn(current)`` (None deletes) and return it."""
        ...
