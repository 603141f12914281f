"""The secret inventory's results: a status per secret reference, findings, and one environment's
inventory. Nothing here holds a secret value: references, paths, origins, dates and keyed fingerprints."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from envsteward.ports import Severity
from envsteward.secret_refs import SecretRef


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferenceState(StrEnum):
    """Where one reference stands. ``unknown``: its store could not be asked."""

    OK = "ok"
    DUE = "due"
    OVERDUE = "overdue"
    MISSING = "missing"
    UNKNOWN = "unknown"


class FindingKind(StrEnum):
    MISSING = "missing"
    OVERDUE = "overdue"
    DUE = "due"
    AGE_UNKNOWN = "age-unknown"
    ORPHAN = "orphan"
    PLAINTEXT = "plaintext"
    CERTIFICATE_EXPIRING = "certificate-expiring"
    CERTIFICATE_EXPIRED = "certificate-expired"


class CertificateFacts(_Frozen):
    """What the inventory keeps of a PEM certificate held as a secret (public facts only)."""

    subject: str
    not_after: datetime


class ReferenceUsage(_Frozen):
    """One secret reference of an environment and where the catalog uses it."""

    environment: str
    reference: str
    """The URI without ``secret+``, e.g. ``vault://secret/app/db#password``."""
    used_at: tuple[str, ...]
    """Configuration paths (``app.database.password``) and catalog fields (``backups.pg.password``)."""
    origin: str | None = None
    """``file:line`` of the first use."""

    @property
    def ref(self) -> SecretRef:
        return SecretRef.parse(self.reference)


class SecretStatus(_Frozen):
    """One reference of one environment: exists or missing, version, last change, age against the policy.

    The unit that rotation consumes: ``state`` ``overdue`` (or ``due``) with its reference and dates.
    """

    environment: str
    reference: str
    scheme: str
    used_at: tuple[str, ...]
    origin: str | None = None
    state: ReferenceState
    exists: bool | None = None
    version: str | None = None
    changed_at: datetime | None = None
    rotated_at: datetime | None = None
    age_days: int | None = None
    max_age_days: int | None = None
    due_at: datetime | None = None
    days_left: int | None = None
    """Days until ``due_at`` (negative: overdue by that many days); None without a maximum or a date."""
    certificate: CertificateFacts | None = None
    reason: str = ""

    @property
    def ref(self) -> SecretRef:
        return SecretRef.parse(self.reference)


class Finding(_Frozen):
    """Something about an environment's secrets that someone should act on. ``id`` is stable while the
    finding stays the same (alerts are de-duplicated by it) and changes when it gets worse."""

    environment: str
    kind: FindingKind
    severity: Severity
    subject: str
    """A reference URI, a configuration path, or a stored secret's location."""
    reason: str
    origin: str | None = None
    """Where: ``file:line`` in the catalog, ``source <name>`` for a live source, the store for an orphan."""
    id: str


def finding_id(environment: str, kind: FindingKind, subject: str, *detail: str) -> str:
    """A stable identifier from non-secret parts (``detail`` may include a keyed fingerprint)."""
    text = "\0".join((environment, kind.value, subject, *detail))
    return "sec-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class InventoryStatus(StrEnum):
    CLEAN = "clean"
    FINDINGS = "findings"
    UNKNOWN = "unknown"
    """Something could not be read: the inventory is incomplete."""


class EnvironmentInventory(_Frozen):
    environment: str
    tier: str
    checked_at: datetime
    statuses: tuple[SecretStatus, ...]
    findings: tuple[Finding, ...]
    errors: tuple[str, ...] = ()
    """What could not be read (safe one-line reasons)."""

    @property
    def status(self) -> InventoryStatus:
        if self.errors:
            return InventoryStatus.UNKNOWN
        return InventoryStatus.FINDINGS if self.findings else InventoryStatus.CLEAN

    def overdue(self) -> tuple[SecretStatus, ...]:
        """The secret references due for rotation now (what ``rotate-due-secrets`` rotates); an overdue
        backup key (``backup-key://``) is rotated by ``envsteward backup rotate-key`` instead."""
        return tuple(
            status
            for status in self.statuses
            if status.state is ReferenceState.OVERDUE and status.scheme != "backup-key"
        )
