"""Rolling a target back from its journal, within a time budget, in the run or later from a sweep.

* :func:`roll_back_with_budget` — the run's own rollback: every journal entry (a Vault secret, an SSM
  parameter, a Secrets Manager secret, a file, a leaf) is restored and verified on its own, retried with
  exponential backoff and jitter until the budget (default 5 minutes) runs out, so the entries whose store
  answers are restored while others are still unreachable. Verified: the journal is removed. Not within the
  budget: the journal is marked ``rollback_pending`` and :class:`RollbackPendingError` names every key the
  journal says may still be changed; the caller keeps the target's lease.
* :func:`repair_pending` — the sweep (a scheduled deployment, the drift scan, ``envsteward promote
  --repair``): finishes every journal whose run gave up, died or overran its apply deadline, verifies,
  audits ``promotion.rolled_back`` with the original run id, releases that run's lease, and reports per
  target so the caller can tell the channels.
* :func:`rollback_status` — the unfinished journals, for ``envsteward promote --status``.

Wired in ``flows/promote.py`` (tasks ``open-rollback-journal``, ``rollback-target``,
``discard-rollback-journal``; ``lock-target`` refuses over a journal; ``release-target`` keeps the lease
while the run's journal exists), ``flows/repair_rollbacks.py`` (deployment ``repair-rollbacks``, run by the
drift scan before it heals and by ``envsteward promote --repair``) and ``envsteward promote --status``::

    ensure_no_pending(services.state_store(), plan.target, run_id)        # before taking the lease
    journal = open_journal(services, plan, run_id=run_id, now=now)        # before the first write
    try:
        apply, verify, health ...
    except Exception:
        roll_back_with_budget(services, journal)  # raises RollbackPendingError: keep the lease
        ...audit promotion.rolled_back, notify, raise PromotionRolledBackError
    else:
        discard(services, journal)
    repair_pending(services, now, is_run_active)      # sweep / drift scan / `promote --repair TARGET`
    rollback_status(services, target)                 # `promote --status TARGET`

``is_run_active`` must raise (or be wrapped to raise) when the orchestrator cannot answer: an unknown
answer counts as running.

Messages name the entry, the operation that failed (``restore`` for anything a restore does, its reads
included; ``verify`` for the fresh read after it) and the keys; never a value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from envsteward.errors import ConflictError, NotFoundError, PermanentError, is_transient
from envsteward.ports import AlertEvent, Notification, Severity
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.errors import RollbackFailedError
from envsteward.promotion.journal import (
    FileEntry,
    JournalEntry,
    JournalStatus,
    LeafEntry,
    RepairClaim,
    RollbackJournal,
    SecretsManagerEntry,
    SSMParameterEntry,
    VaultSecretEntry,
    claim_for_repair,
    describe_journal,
    discard,
    journal_targets,
    load_journal,
    pending_journals,
    read_copy,
    set_status,
    sha256_file,
)
from envsteward.scan.live import describe_failure
from envsteward.tree import is_missing, value_at

if TYPE_CHECKING:
    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.ports import ConfigSource
    from envsteward.promotion.deps import PromotionServices

DEFAULT_ROLLBACK_BUDGET_SECONDS = 300.0


@dataclass(frozen=True)
class RetryBudget:
    """How long a rollback keeps trying, and how it spaces its attempts per entry."""

    seconds: float = DEFAULT_ROLLBACK_BUDGET_SECONDS
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 15.0
    jitter: float = 0.5
    """Each delay is shortened by a random fraction up to this (spreads retries of many entries/workers)."""

    def delay(self, attempt: int, draw: float) -> float:
        """The wait after failed attempt number ``attempt`` (1-based); ``draw`` in [0, 1)."""
        base = min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempt - 1))
        return float(base * (1 - self.jitter * draw))


class RollbackPendingError(RollbackFailedError):
    """The rollback did not finish within its budget: the journal (``rollback_pending``) and the target's
    lease stay, and the sweep finishes it when the stores answer. ``keys_left`` comes from the journal."""

    def __init__(self, message: str, *, target: str, run_id: str, keys_left: Sequence[str]) -> None:
        super().__init__(message, system="promotion", operation="rollback")
        self.target = target
        self.run_id = run_id
        self.keys_left = tuple(keys_left)


# ---------------------------------------------------------------------------------------------------------
# Restoring one entry (rebuilt from the journal alone)
# ---------------------------------------------------------------------------------------------------------


class EntryRestorer(Protocol):
    label: str
    keys: tuple[str, ...]

    def restore(self) -> None:
        """Put the entry back as journaled; idempotent (does nothing when it already is)."""
        ...

    def verify(self) -> str | None:
        """Re-read it: None when it is exactly as journaled, else what differs (no values)."""
        ...


def same_value(left: Any, right: Any) -> bool:
    """Type-exact equality of plain JSON values (``1`` is not ``1.0`` nor ``true``)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_value(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


class VaultSecretRestorer:
    """KV v2: the journaled version's data is written back as a new version (check-and-set on the current
    one); a secret that did not exist is deleted with all its versions."""

    def __init__(self, entry: VaultSecretEntry, client: Callable[[], VaultClient]) -> None:
        self.entry = entry
        self.label = entry.label
        self.keys = entry.paths
        self._client = client

    def _latest(self) -> tuple[int, dict[str, Any] | None]:
        """(current version number, its data or None when absent/deleted)."""
        client = self._client()
        try:
            meta = client.kv_metadata(self.entry.mount, self.entry.path)
        except NotFoundError:
            return 0, None
        try:
            data = dict(client.kv_read(self.entry.mount, self.entry.path).data)
        except NotFoundError:
            data = None
        return meta.current_version, data

    def _old(self) -> dict[str, Any]:
        assert self.entry.version is not None
        return dict(
            self._client().kv_read(self.entry.mount, self.entry.path, version=self.entry.version).data
        )

    def restore(self) -> None:
        """Calls Vault (GET metadata/data, POST data or DELETE metadata)."""
        current, data = self._latest()
        if self.entry.version is None:
            if current:
                self._client().kv_delete_all(self.entry.mount, self.entry.path)
            return
        old = self._old()
        if data is not None and same_value(data, old):
            return
        self._client().kv_write(self.entry.mount, self.entry.path, old, cas=current)

    def verify(self) -> str | None:
        """Calls Vault (GET metadata/data)."""
        current, data = self._latest()
        if self.entry.version is None:
            return "still exists (the promotion created it)" if current else None
        if data is None:
            return "is missing or deleted"
        return None if same_value(data, self._old()) else "holds other data than the journaled version"


class SSMParameterRestorer:
    """SSM: the journaled version's value, type and KMS key (GetParameterHistory) are put back; a parameter
    that did not exist is deleted."""

    def __init__(self, entry: SSMParameterEntry, clients: Callable[[], AWSClients]) -> None:
        self.entry = entry
        self.label = entry.label
        self.keys = entry.paths
        self._clients = clients

    def _ssm(self) -> Any:
        return self._clients().ssm(self.entry.region)

    def _current(self) -> dict[str, Any] | None:
        from envsteward.adapters.aws_errors import aws_errors

        try:
            with aws_errors("ssm", "get_parameter", self.entry.name):
                return dict(self._ssm().get_parameter(Name=self.entry.name, WithDecryption=True)["Parameter"])
        except NotFoundError:
            return None

    def _old(self) -> dict[str, Any]:
        from envsteward.adapters.aws_errors import aws_errors

        with aws_errors("ssm", "get_parameter_history", self.entry.name):
            pages = (
                self._ssm()
                .get_paginator("get_parameter_history")
                .paginate(Name=self.entry.name, WithDecryption=True)
            )
            for page in pages:
                for item in page.get("Parameters") or []:
                    if int(item.get("Version", 0)) == self.entry.version:
                        return dict(item)
        raise NotFoundError(
            f"version {self.entry.version} is no longer in the parameter's history",
            system="aws",
            operation=f"ssm get_parameter_history {self.entry.name}",
        )

    @staticmethod
    def _matches(current: dict[str, Any] | None, old: dict[str, Any]) -> bool:
        return (
            current is not None
            and current.get("Value") == old.get("Value")
            and current.get("Type") == old.get("Type")
        )

    def restore(self) -> None:
        """Calls SSM (GetParameter, GetParameterHistory, PutParameter or DeleteParameter)."""
        from envsteward.adapters.aws_errors import aws_errors

        current = self._current()
        if self.entry.version is None:
            if current is not None:
                try:
                    with aws_errors("ssm", "delete_parameter", self.entry.name):
                        self._ssm().delete_parameter(Name=self.entry.name)
                except NotFoundError:
                    pass  # deleted by an earlier attempt whose answer was lost
            return
        old = self._old()
        if self._matches(current, old):
            return
        kwargs: dict[str, Any] = {
            "Name": self.entry.name,
            "Value": old["Value"],
            "Type": old["Type"],
            "Overwrite": True,
        }
        if old["Type"] == "SecureString" and old.get("KeyId"):
            kwargs["KeyId"] = old["KeyId"]
        with aws_errors("ssm", "put_parameter", self.entry.name):
            self._ssm().put_parameter(**kwargs)

    def verify(self) -> str | None:
        """Calls SSM (GetParameter, GetParameterHistory)."""
        current = self._current()
        if self.entry.version is None:
            return "still exists (the promotion created it)" if current is not None else None
        if current is None:
            return "is missing"
        return None if self._matches(current, self._old()) else "holds another value or type than journaled"


class SecretsManagerRestorer:
    """Secrets Manager: AWSCURRENT is moved back to the journaled version; a secret that did not exist is
    deleted without a recovery window. (A version left without any staging label survives until the secret
    has more than 100 versions.)"""

    def __init__(self, entry: SecretsManagerEntry, clients: Callable[[], AWSClients]) -> None:
        self.entry = entry
        self.label = entry.label
        self.keys = entry.paths
        self._clients = clients

    def _current(self) -> str | None:
        from envsteward.adapters.aws_secrets import SecretsManager

        try:
            return (
                SecretsManager(self._clients(), self.entry.region)
                .describe(self.entry.secret_id)
                .current_version_id
            )
        except NotFoundError:
            return None

    def restore(self) -> None:
        """Calls Secrets Manager (DescribeSecret, UpdateSecretVersionStage or DeleteSecret)."""
        from envsteward.adapters.aws_errors import aws_errors

        current = self._current()
        client = self._clients().secretsmanager(self.entry.region)
        if self.entry.version_id is None:
            if current is not None:
                with aws_errors("secretsmanager", "delete_secret", self.entry.secret_id):
                    client.delete_secret(SecretId=self.entry.secret_id, ForceDeleteWithoutRecovery=True)
            return
        if current == self.entry.version_id:
            return
        kwargs: dict[str, Any] = {
            "SecretId": self.entry.secret_id,
            "VersionStage": "AWSCURRENT",
            "MoveToVersionId": self.entry.version_id,
        }
        if current is not None:
            kwargs["RemoveFromVersionId"] = current
        with aws_errors("secretsmanager", "update_secret_version_stage", self.entry.secret_id):
            client.update_secret_version_stage(**kwargs)

    def verify(self) -> str | None:
        """Calls Secrets Manager (DescribeSecret)."""
        current = self._current()
        if self.entry.version_id is None:
            return "still exists (the promotion created it)" if current is not None else None
        return None if current == self.entry.version_id else "AWSCURRENT is not the journaled version"


class FileEntryRestorer:
    """A file: its journaled bytes (from the 0600 copy, checked against its SHA-256), rewritten atomically
    with the old mode; a file that did not exist is removed."""

    def __init__(self, entry: FileEntry) -> None:
        self.entry = entry
        self.label = entry.label
        self.keys = entry.paths

    def restore(self) -> None:
        """Local file system only. Raises IntegrityError when the journal's copy is missing or altered."""
        from envsteward.promotion.snapshot import write_file_atomically

        path = Path(self.entry.path)
        if self.entry.sha256 is None:
            path.unlink(missing_ok=True)
            return
        if sha256_file(path) == self.entry.sha256:
            return
        write_file_atomically(path, read_copy(self.entry), self.entry.mode or 0o600)

    def verify(self) -> str | None:
        now = sha256_file(Path(self.entry.path))
        if now == self.entry.sha256:
            return None
        return (
            "still exists (the promotion created it)"
            if self.entry.sha256 is None
            else "differs from the journal"
        )


class LeafEntryRestorer:
    """Any other writable source: the journaled (non-secret) leaf is written back. A key the promotion
    created cannot be removed through ConfigSource, and a secret-looking key was not journaled: both are
    left for a person (PermanentError), never claimed restored."""

    def __init__(self, entry: LeafEntry, source: Callable[[], ConfigSource]) -> None:
        self.entry = entry
        self.label = entry.label
        self.keys = entry.paths
        self._source = source

    def _now(self) -> Any:
        """The leaf's current value, or MISSING."""
        from envsteward.promotion.snapshot import plain

        return value_at(plain(self._source().read()), self.entry.key_path)

    def restore(self) -> None:
        """Calls the source's system. Raises PermanentError for a created or secret-looking key."""
        if self.entry.state == "manual":
            raise PermanentError(
                "a secret-looking key: its old value was not journaled; check it by hand",
                system="promotion",
                operation=f"restore {self.label}",
            )
        if self.entry.state == "absent":
            raise PermanentError(
                "the promotion created this key and the source cannot delete keys; remove it by hand",
                system="promotion",
                operation=f"restore {self.label}",
            )
        value = self._now()
        if not is_missing(value) and same_value(value, self.entry.value):
            return
        self._source().write(self.entry.key_path, self.entry.value)

    def verify(self) -> str | None:
        if self.entry.state != "value":
            return "needs a manual check"
        value = self._now()
        if is_missing(value) or not same_value(value, self.entry.value):
            return "differs from the journal"
        return None


def build_restorers(services: PromotionServices, journal: RollbackJournal) -> list[EntryRestorer]:
    """One restorer per journal entry; clients come from ``services`` when first used (so an unreachable
    store fails inside the retried restore, not here)."""
    restorers: list[EntryRestorer] = []
    for entry in journal.entries:
        restorers.append(_restorer(services, journal.target, entry))
    return restorers


def _restorer(services: PromotionServices, target: str, entry: JournalEntry) -> EntryRestorer:
    if isinstance(entry, VaultSecretEntry):
        return VaultSecretRestorer(entry, services.vault_client)
    if isinstance(entry, SSMParameterEntry):
        return SSMParameterRestorer(entry, services.aws_clients)
    if isinstance(entry, SecretsManagerEntry):
        return SecretsManagerRestorer(entry, services.aws_clients)
    if isinstance(entry, FileEntry):
        return FileEntryRestorer(entry)
    return LeafEntryRestorer(entry, lambda: services.config_source(target, entry.source))


# ---------------------------------------------------------------------------------------------------------
# Restoring within a budget
# ---------------------------------------------------------------------------------------------------------


@dataclass
class EntryOutcome:
    label: str
    keys: tuple[str, ...]
    restored: bool = False
    attempts: int = 0
    problem: str | None = None
    gave_up: bool = False
    """A permanent error: not retried within this call (the sweep tries again later)."""
    next_try: float = 0.0


@dataclass(frozen=True)
class RestoreResult:
    outcomes: tuple[EntryOutcome, ...]
    elapsed_seconds: float

    @property
    def verified(self) -> bool:
        return all(outcome.restored for outcome in self.outcomes)

    @property
    def keys_left(self) -> tuple[str, ...]:
        """Every key of every entry not verified restored, in journal order (from the journal's entries)."""
        keys: dict[str, None] = {}
        for outcome in self.outcomes:
            if not outcome.restored:
                keys.update(dict.fromkeys(outcome.keys))
        return tuple(keys)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(o.problem for o in self.outcomes if not o.restored and o.problem)


def _retryable(exc: BaseException) -> bool:
    # a check-and-set conflict means someone wrote in between: the next attempt re-reads and tries again
    return is_transient(exc) or isinstance(exc, ConflictError)


def restore_within_budget(
    restorers: Sequence[EntryRestorer],
    budget: RetryBudget,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> RestoreResult:
    """Restore and verify every entry independently until all are verified or ``budget.seconds`` pass.

    An entry that fails (transiently, or its fresh read still differs) is retried after its own backoff;
    others go on meanwhile. A permanent error stops that entry for this call. When the budget ends, every
    entry still open gets one last attempt. Never raises for an entry's failure: see the result.
    """
    started = clock()
    deadline = started + budget.seconds
    outcomes = [EntryOutcome(label=r.label, keys=tuple(r.keys), next_try=started) for r in restorers]
    while True:
        now = clock()
        final = now >= deadline
        for restorer, outcome in zip(restorers, outcomes, strict=True):
            if outcome.restored or outcome.gave_up or (outcome.next_try > now and not final):
                continue
            outcome.attempts += 1
            step = "restore"
            try:
                restorer.restore()
                step = "verify"
                differs = restorer.verify()
            except Exception as exc:  # noqa: BLE001 - recorded with a safe message (describe_failure)
                outcome.problem = f"{outcome.label}: {step} failed: {describe_failure(exc)}"
                outcome.gave_up = not _retryable(exc)
            else:
                if differs is None:
                    outcome.restored, outcome.problem = True, None
                    continue
                outcome.problem = f"{outcome.label}: verify: {differs}"
            outcome.next_try = clock() + budget.delay(outcome.attempts, draw())
        open_ = [o for o in outcomes if not (o.restored or o.gave_up)]
        if not open_ or final or clock() >= deadline:
            break
        wake = min(*(o.next_try for o in open_), deadline)
        sleep(max(0.0, wake - clock()))
    return RestoreResult(outcomes=tuple(outcomes), elapsed_seconds=clock() - started)


# ---------------------------------------------------------------------------------------------------------
# The run's rollback
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackResult:
    """A verified rollback (a failed one raises RollbackPendingError)."""

    target: str
    run_id: str
    restored: tuple[str, ...]
    """Labels of the entries restored and verified."""
    elapsed_seconds: float


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _pending_error(
    journal: RollbackJournal, result: RestoreResult, budget: RetryBudget, note: str = ""
) -> RollbackPendingError:
    keys = result.keys_left
    return RollbackPendingError(
        f"the rollback of {journal.target} (flow run {journal.run_id}) did not finish within "
        f"{budget.seconds:g} s; {len(keys)} key(s) may still hold the promoted value: {', '.join(keys)}. "
        f"Failures: {'; '.join(result.problems) or 'none recorded'}. "
        "The journal and the promotion lease stay; "
        f"the sweep finishes it when the stores answer (`envsteward promote --repair {journal.target}`)"
        + note,
        target=journal.target,
        run_id=journal.run_id,
        keys_left=keys,
    )


def roll_back_with_budget(
    services: PromotionServices,
    journal: RollbackJournal,
    *,
    budget: RetryBudget | None = None,
    now: Callable[[], datetime] = _utcnow,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RollbackResult:
    """Roll the target back to its journal, verified, within ``budget``; remove the journal when verified.

    Marks the journal ``rolling_back`` first. Calls the target's stores (through the journal's restorers),
    the local file system and the state store. Raises RollbackPendingError naming every key that may still
    be changed when the budget runs out (the journal is then ``rollback_pending``; do not release the lease).
    """
    budget = budget or RetryBudget()
    store = services.state_store()
    # the restore matters more than the status: the sweep treats "applying" like "rolling_back"
    with contextlib.suppress(Exception):
        set_status(store, journal, JournalStatus.ROLLING_BACK, now=now())
    result = restore_within_budget(build_restorers(services, journal), budget, clock=clock, sleep=sleep)
    if result.verified:
        discard(services, journal)
        return RollbackResult(
            target=journal.target,
            run_id=journal.run_id,
            restored=tuple(o.label for o in result.outcomes),
            elapsed_seconds=result.elapsed_seconds,
        )
    note = ""
    try:
        set_status(
            store,
            journal,
            JournalStatus.ROLLBACK_PENDING,
            now=now(),
            keys_left=result.keys_left,
            last_error="; ".join(result.problems)[:2000],
        )
    except Exception as exc:  # noqa: BLE001 - the journal still says applying/rolling_back: the sweep finds it
        note = f" (recording the pending status failed: {describe_failure(exc)})"
    raise _pending_error(journal, result, budget, note)


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------


RepairOutcome = Literal["repaired", "pending", "skipped"]


@dataclass(frozen=True)
class RepairDecision:
    repair: bool
    reason: str


def decide_repair(
    journal: RollbackJournal, now: datetime, run_active: bool | None, *, claimant: str | None = None
) -> RepairDecision:
    """Whether the sweep should roll this journal back now, and why (pure).

    ``run_active``: whether the journal's run is still running; None means nobody could tell, which counts
    as running (fail safe: never restore under a live apply). A pending rollback or a passed apply deadline
    is repaired whatever the run's state; a claim of another sweep that has not expired is left alone.
    """
    if journal.claim is not None and journal.claim.by != claimant and journal.claim.until > now:
        return RepairDecision(False, f"another sweep is repairing it until {journal.claim.until.isoformat()}")
    if journal.status is JournalStatus.ROLLBACK_PENDING:
        return RepairDecision(True, "its run's rollback ran out of budget")
    if now > journal.apply_deadline:
        return RepairDecision(True, f"its apply deadline {journal.apply_deadline.isoformat()} has passed")
    if run_active is None:
        return RepairDecision(False, f"cannot tell whether flow run {journal.run_id} is still running")
    if run_active:
        return RepairDecision(False, f"flow run {journal.run_id} is still running")
    return RepairDecision(True, f"flow run {journal.run_id} is no longer running")


@dataclass(frozen=True)
class RepairReport:
    """What the sweep did for one target (no values): for the caller's log line and notification."""

    target: str
    run_id: str
    source: str
    outcome: RepairOutcome
    reason: str
    keys_left: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    audit_seq: int | None = None
    lease_released: bool = False
    elapsed_seconds: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    status_was: str = ""
    """The journal's status when the sweep found it (empty: unknown, e.g. the state store failed)."""

    def line(self) -> str:
        if self.outcome == "repaired":
            return (
                f"{self.target}: rolled back the promotion of flow run {self.run_id} "
                f"({len(self.changes)} key(s), verified); lease released: {self.lease_released}"
            )
        if self.outcome == "pending":
            return f"{self.target}: rollback still pending; left changed: {', '.join(self.keys_left)}"
        return f"{self.target}: skipped ({self.reason})"


def _ask(is_run_active: Callable[[str], bool], run_id: str) -> bool | None:
    try:
        return bool(is_run_active(run_id))
    except Exception:  # noqa: BLE001 - an unknown answer: leave the run alone
        return None


def _audit_rolled_back(
    services: PromotionServices, journal: RollbackJournal, reason: str, actor: str | None, elapsed: float
) -> int:
    """The same record shape as :func:`envsteward.promotion.runbook.audit` (target, environment, run id,
    plan hash, changes). Calls the audit log's store."""
    record = services.audit_log().append(
        "promotion.rolled_back",
        target=f"promotion/{journal.source}->{journal.target}",
        environment=journal.target,
        actor=actor,
        details={
            "run_id": journal.run_id,
            "plan_hash": journal.plan_hash,
            "changes": list(journal.changes),
            "verified": True,
            "repaired_by": "sweep",
            "why": reason,
            "status_was": journal.status.value,
            "seconds": round(elapsed, 3),
        },
    )
    return record.seq


def repair_target(
    services: PromotionServices,
    target: str,
    *,
    is_run_active: Callable[[str], bool],
    now: datetime | None = None,
    budget: RetryBudget | None = None,
    actor: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RepairReport | None:
    """Finish one target's journal if it needs it (see :func:`decide_repair`); None when it has none.

    Calls the state store, the target's stores, the audit log. Raises the state store's and the audit log's
    errors (the journal then stays and the next sweep tries again), IntegrityError for a damaged journal.
    """
    budget = budget or RetryBudget()
    store = services.state_store()
    journal = load_journal(store, target)
    if journal is None:
        return None
    moment = now or _utcnow()
    claimant = f"sweep-{secrets.token_hex(6)}"
    decision = decide_repair(journal, moment, _ask(is_run_active, journal.run_id), claimant=claimant)
    base = RepairReport(
        target=target,
        run_id=journal.run_id,
        source=journal.source,
        outcome="skipped",
        reason=decision.reason,
        changes=journal.changes,
        status_was=journal.status.value,
    )
    if not decision.repair:
        return base
    claim = RepairClaim(by=claimant, until=moment + timedelta(seconds=budget.seconds + 120))
    claimed = claim_for_repair(store, journal, claim, now=moment)
    if claimed is None:
        return dataclasses.replace(base, reason="finished by another process meanwhile")
    result = restore_within_budget(build_restorers(services, claimed), budget, clock=clock, sleep=sleep)
    if not result.verified:
        set_status(
            store,
            claimed,
            JournalStatus.ROLLBACK_PENDING,
            now=_utcnow(),
            keys_left=result.keys_left,
            last_error="; ".join(result.problems)[:2000],
            claim=None,
        )
        return dataclasses.replace(
            base,
            outcome="pending",
            keys_left=result.keys_left,
            problems=result.problems,
            elapsed_seconds=result.elapsed_seconds,
        )
    seq = _audit_rolled_back(services, claimed, decision.reason, actor, result.elapsed_seconds)
    discard(services, claimed)
    warnings: list[str] = []
    try:
        released = promotion_lock.release(store, target, journal.run_id)
    except Exception as exc:  # noqa: BLE001 - the lease's run is finished: the next acquire takes it over
        released = False
        warnings.append(f"releasing the lease failed: {describe_failure(exc)}")
    return dataclasses.replace(
        base,
        outcome="repaired",
        audit_seq=seq,
        lease_released=released,
        elapsed_seconds=result.elapsed_seconds,
        warnings=tuple(warnings),
    )


def repair_pending(
    services: PromotionServices,
    now: datetime,
    is_run_active: Callable[[str], bool],
    target: str | None = None,
    *,
    budget: RetryBudget | None = None,
    actor: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RepairReport]:
    """The sweep: finish every journal that needs it (of ``target`` only, when given), one report per
    journal found. A target whose repair raised (state store or audit log down) is reported ``pending``
    with the reason; the others go on. Calls the state store, the target's stores and the audit log."""
    reports: list[RepairReport] = []
    for name in [target] if target else journal_targets(services):
        try:
            report = repair_target(
                services,
                name,
                is_run_active=is_run_active,
                now=now,
                budget=budget,
                actor=actor,
                clock=clock,
                sleep=sleep,
            )
        except Exception as exc:  # noqa: BLE001 - one target's failure must not stop the sweep
            reports.append(
                RepairReport(
                    target=name, run_id="?", source="?", outcome="pending", reason=describe_failure(exc)
                )
            )
            continue
        if report is not None:
            reports.append(report)
    return reports


def rollback_status(
    services: PromotionServices, target: str | None = None, now: datetime | None = None
) -> list[str]:
    """One block of lines per unfinished journal (empty: nothing pending), for ``envsteward promote
    --status``. Calls the state store."""
    moment = now or _utcnow()
    store = services.state_store()
    return [
        describe_journal(journal, moment, promotion_lock.holder(store, journal.target))
        for journal in pending_journals(services, target)
    ]


def repair_notification(report: RepairReport, link: str | None = None) -> Notification | None:
    """What to tell the target's channels about a sweep's result (None: nothing to tell).

    A repaired rollback is always told. A still-pending one only when the sweep found it first (the run
    was killed or overran its apply deadline: nobody was told yet); a rollback whose run already gave up
    was alerted by that run, and repeating it on every sweep during an outage would bury the channels.
    A skipped target is never told."""
    if report.outcome == "skipped":
        return None
    if report.outcome == "pending" and report.status_was in {"", JournalStatus.ROLLBACK_PENDING.value}:
        return None
    if report.outcome == "repaired":
        return Notification(
            title=f"Promotion {report.source} → {report.target}: rolled back by the sweep",
            text=(
                f"The promotion of flow run {report.run_id} was rolled back and verified "
                f"({len(report.changes)} key(s)); the lease on {report.target} is released."
            ),
            severity=Severity.HIGH,
            event=AlertEvent.RESOLVE,
            environment=report.target,
            dedup_key=f"promotion-rollback-{report.target}-{report.run_id}",
            link=link,
        )
    return Notification(
        title=f"Promotion {report.source} → {report.target}: ROLLBACK STILL PENDING",
        text=(
            f"The rollback of flow run {report.run_id} is not finished; left changed: "
            f"{', '.join(report.keys_left) or 'unknown'}.\n{'; '.join(report.problems) or report.reason}"
        ),
        severity=Severity.CRITICAL,
        event=AlertEvent.TRIGGER,
        environment=report.target,
        dedup_key=f"promotion-rollback-{report.target}-{report.run_id}",
        link=link,
    )
