"""Rotations in flight, recorded in the shared state store so a killed run is found and its damage undone.

The pending value lives only in the process running the rotation (:mod:`.sessions`). If that process dies
after the *set* step (a PostgreSQL role already has the new password) and before *finish* (the store still
holds the previous one), nobody knows the role's password any more: every application reading the store
is locked out. The journal records, without any value, that a rotation of ``environment``/``reference`` is
in flight, by which flow run, until when it may run, and whether the consumer may have been touched.

The repair is the same whatever step the run died in: **make the consumer hold what the store says is
current** (:func:`envsteward.rotation.engine.resync_consumer`). Before *finish* that is the previous value;
after it, the new one (already set: the repair is idempotent). A store-only rotation (Vault, Secrets
Manager, SSM) has nothing to repair: the store's check-and-set made it all or nothing, and Secrets
Manager's stale ``AWSPENDING`` label is taken off by the next rotation's *create*.

The journal doubles as the lease of the reference: one rotation of a secret at a time (two at once would
set the consumer twice and leave it holding the loser's value). All records are in one state document
(``rotation-journals``) changed only with the store's atomic ``update``, so two workers never both claim.

Who repairs: the next rotation of the same reference, before it creates anything, and the
``repair-rollbacks`` sweep (every minute) for every journal whose run is finished, unknown past its
deadline, or still "running" past its deadline (a killed process can stay Running in the API).

Pure apart from the :class:`~envsteward.ports.StateStore` passed in; never imports prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from envsteward.errors import ConflictError, IntegrityError
from envsteward.ports import AlertEvent, Notification, Severity, StateStore

JOURNALS_KEY = "rotation-journals"


class RotationInProgressError(ConflictError):
    """Another run is rotating the same secret (its journal is held by a run that may still be active)."""


@dataclass(frozen=True)
class RotationJournal:
    """One rotation in flight. No value: who, what, until when, and whether the consumer was touched."""

    environment: str
    reference: str
    kind: str
    run_id: str
    has_consumer: bool
    started_at: datetime
    deadline: datetime
    """After this the run's steps would all have timed out: a run still "running" then is taken as dead."""
    consumer_touched: bool = False
    """The set step was started: the consumer may hold a value only the dead run knew."""

    @property
    def needs_resync(self) -> bool:
        return self.has_consumer and self.consumer_touched

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "reference": self.reference,
            "kind": self.kind,
            "run_id": self.run_id,
            "has_consumer": self.has_consumer,
            "started_at": self.started_at.isoformat(),
            "deadline": self.deadline.isoformat(),
            "consumer_touched": self.consumer_touched,
        }

    @classmethod
    def from_json(cls, data: Any) -> RotationJournal:
        """Raises IntegrityError for a damaged record (the sweep reports it instead of guessing)."""
        try:
            return cls(
                environment=str(data["environment"]),
                reference=str(data["reference"]),
                kind=str(data["kind"]),
                run_id=str(data["run_id"]),
                has_consumer=bool(data["has_consumer"]),
                started_at=_aware(datetime.fromisoformat(str(data["started_at"]))),
                deadline=_aware(datetime.fromisoformat(str(data["deadline"]))),
                consumer_touched=bool(data.get("consumer_touched", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"a rotation journal record is damaged ({type(exc).__name__}: {exc}); "
                f"inspect the state document {JOURNALS_KEY!r}",
                system="rotation",
            ) from None

    def describe(self) -> str:
        """One line for people and the audit log (no value)."""
        touched = "the consumer may hold an unknown value" if self.needs_resync else "no consumer touched"
        return (
            f"rotation of {self.reference} in {self.environment} by flow run {self.run_id}, "
            f"started {self.started_at.isoformat()}; {touched}"
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _slot(environment: str, reference: str) -> str:
    return f"{environment}|{reference}"


def _records(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def is_abandoned(journal: RotationJournal, now: datetime, is_active: Callable[[str], bool]) -> bool:
    """Whether ``journal``'s run can no longer be rotating: the API says it finished, or its deadline has
    passed (whatever the API says: a killed worker's run can stay Running). ``is_active`` must answer True
    when it cannot tell (fail closed: before the deadline an unknown run is left alone)."""
    return now >= journal.deadline or not is_active(journal.run_id)


def claim(
    store: StateStore,
    journal: RotationJournal,
    *,
    now: datetime,
    is_active: Callable[[str], bool],
) -> RotationJournal | None:
    """Record ``journal`` (this run's rotation) before its first step. Returns the abandoned journal of the
    same secret it took over (a dead run's: the caller must repair it, :func:`resync_consumer`, before it
    creates anything), else None. The same run claiming again (a task retry) keeps its record.

    Raises RotationInProgressError naming the other run when a live run holds the secret. Calls the state
    store (one atomic update) and ``is_active`` for another holder.
    """
    slot = _slot(journal.environment, journal.reference)
    taken_over: list[RotationJournal] = []

    def swap(value: Any) -> Any:
        taken_over.clear()
        records = _records(value)
        held = records.get(slot)
        if held is not None:
            other = RotationJournal.from_json(held)
            if other.run_id == journal.run_id:
                return value
            if not is_abandoned(other, now, is_active):
                raise RotationInProgressError(
                    f"{journal.reference} in {journal.environment} is being rotated by flow run "
                    f"{other.run_id} (started {other.started_at.isoformat()}); try again after it ends "
                    f"or after {other.deadline.isoformat()}",
                    system="rotation",
                )
            taken_over.append(other)
        # the taken-over run's repair is owed by this run: keep its consumer flag until resynced
        touched = journal.consumer_touched or bool(taken_over and taken_over[0].needs_resync)
        records[slot] = {**journal.to_json(), "consumer_touched": touched}
        return records

    store.update(JOURNALS_KEY, swap)
    return taken_over[0] if taken_over else None


def mark_consumer_touched(store: StateStore, environment: str, reference: str, run_id: str) -> None:
    """Before the set step: the consumer is about to receive the pending value. Calls the state store.
    Raises RotationInProgressError when this run no longer holds the journal (a sweep took it over)."""
    _change(store, environment, reference, run_id, consumer_touched=True)


def mark_resynced(store: StateStore, environment: str, reference: str, run_id: str) -> None:
    """After a repair: the consumer holds the store's current value again. Calls the state store."""
    _change(store, environment, reference, run_id, consumer_touched=False)


def _change(store: StateStore, environment: str, reference: str, run_id: str, **fields: Any) -> None:
    slot = _slot(environment, reference)

    def swap(value: Any) -> Any:
        records = _records(value)
        held = records.get(slot)
        if not isinstance(held, dict) or held.get("run_id") != run_id:
            raise RotationInProgressError(
                f"the rotation journal of {reference} in {environment} is no longer held by flow run "
                f"{run_id}",
                system="rotation",
            )
        records[slot] = {**held, **fields}
        return records

    store.update(JOURNALS_KEY, swap)


def note_repair_failure(store: StateStore, journal: RotationJournal) -> int:
    """Count a failed repair of an abandoned ``journal``; returns how many have failed so far (1: the
    first, which is the one to tell people about). Calls the state store."""
    slot = _slot(journal.environment, journal.reference)
    counted: list[int] = []

    def swap(value: Any) -> Any:
        counted.clear()
        records = _records(value)
        held = records.get(slot)
        if not isinstance(held, dict) or held.get("run_id") != journal.run_id:
            return value  # taken over or closed meanwhile: the new holder owns the repair
        attempts = int(held.get("repair_failures", 0)) + 1
        counted.append(attempts)
        records[slot] = {**held, "repair_failures": attempts}
        return records

    store.update(JOURNALS_KEY, swap)
    return counted[0] if counted else 0


def repair_notification(
    journal: RotationJournal, *, repaired: bool, detail: str, link: str | None = None
) -> Notification:
    """What to tell the environment's channels about a sweep's repair of an abandoned rotation (no
    value: the reference, the run and what was done)."""
    if repaired:
        return Notification(
            title=f"Secret rotation of {journal.reference} in {journal.environment}: repaired by the sweep",
            text=(
                f"Flow run {journal.run_id} died during the rotation; {detail}. Applications using "
                "the store's value can connect again. Whether the new value was made current is in the "
                "audit log (rotation.step finish); if not, rotate again."
            ),
            severity=Severity.HIGH,
            event=AlertEvent.RESOLVE,
            environment=journal.environment,
            dedup_key=f"rotation-repair-{journal.environment}-{journal.reference}-{journal.run_id}",
            link=link,
        )
    return Notification(
        title=f"Secret rotation of {journal.reference} in {journal.environment}: REPAIR FAILED",
        text=(
            f"Flow run {journal.run_id} died during the rotation and the consumer may hold a password "
            f"nobody knows: {detail}. The sweep retries every minute; fix what the error names, or set "
            "the consumer to the value the store holds by hand."
        ),
        severity=Severity.CRITICAL,
        event=AlertEvent.TRIGGER,
        environment=journal.environment,
        dedup_key=f"rotation-repair-{journal.environment}-{journal.reference}-{journal.run_id}",
        link=link,
    )


def close(store: StateStore, environment: str, reference: str, run_id: str) -> bool:
    """Remove this run's journal (the rotation finished, or its restore succeeded). A journal another run
    took over is left alone. True when removed. Calls the state store."""
    slot = _slot(environment, reference)
    removed: list[bool] = []

    def swap(value: Any) -> Any:
        removed.clear()
        records = _records(value)
        held = records.get(slot)
        if isinstance(held, dict) and held.get("run_id") == run_id:
            del records[slot]
            removed.append(True)
        return records or None

    store.update(JOURNALS_KEY, swap)
    return bool(removed)


def open_journals(store: StateStore) -> list[RotationJournal]:
    """Every rotation in flight (or abandoned), oldest first. Calls the state store. Raises IntegrityError
    for a damaged record."""
    records = _records(store.get(JOURNALS_KEY))
    journals = [RotationJournal.from_json(record) for record in records.values()]
    return sorted(journals, key=lambda journal: journal.started_at)


def new_journal(
    *,
    environment: str,
    reference: str,
    kind: str,
    run_id: str,
    has_consumer: bool,
    now: datetime,
    longest_run: timedelta,
) -> RotationJournal:
    """This run's journal: it may run for ``longest_run`` (its steps' timeouts and retries) from ``now``."""
    return RotationJournal(
        environment=environment,
        reference=reference,
        kind=kind,
        run_id=run_id,
        has_consumer=has_consumer,
        started_at=now,
        deadline=now + longest_run,
    )
