"""Watch the replication slot of ``wal stream``: a streamer that is down while its slot holds WAL.

``wal stream`` streams through a physical replication slot (``envsteward_<env>_<target>``). When the
streamer dies (host reboot, OOM kill) the slot stays and the primary keeps every WAL segment since, so
``pg_wal`` grows until the disk is full and the database stops. Nothing else would say so: ``archive_command``
may keep the archive fresh, and PostgreSQL itself is up.

Where it runs: the ``health-check`` flow (every minute), which already reaches every environment's services
and reads the PITR archive status for the platform status. Each PITR target becomes one health result
(check ``pitr-slot.<target>``, kind ``pitr-slot``) folded by the health tracker, so the alert rides the
existing mechanism: one compare-and-set per result in the state store, one notification per confirmed
change on the environment's channels (a recovery resolves the PagerDuty incident: same dedup key), the
``health.status_changed`` audit record, the ``envsteward.health.down/degraded/recovered`` events.

* slot active, or absent: ``up`` (nothing held, or a receiver consumes it);
* slot inactive: ``down`` (page) from ``page_retained_mib`` retained, or when PostgreSQL already lost WAL
  the slot needed (``wal_status = lost``: streaming cannot resume); ``degraded`` (warn) from
  ``warn_retained_mib`` or after ``warn_inactive_minutes``; else ``up`` (a restart in progress).

"Inactive since" is kept in the state store (``pitr-slot/<env>/<target>``), set by compare-and-set: of
several workers that see the slot inactive, the first one's time stands. A server that cannot be reached
gives no result (the database's own health check reports it) and changes no state.

Read-only on PostgreSQL (``default_transaction_read_only``, SELECTs only): the slot is never dropped
here; the alert says how (restart ``wal stream``, or ``pg_drop_replication_slot`` when streaming is
abandoned). No message holds the DSN or a password: only names, sizes and times.

External calls: PostgreSQL (:func:`read_slot`), the state store (:func:`inactive_since`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.health.result import CheckResult, CheckStatus, short_detail
from envsteward.pitr.status import short_duration
from envsteward.pitr.stream import slot_name, target_slot

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.catalog import Catalog
    from envsteward.catalog.models import PostgresBackup, SlotAlertSpec
    from envsteward.health.tracker import StatusChange
    from envsteward.pitr.context import PitrServices
    from envsteward.ports import JSONValue, Notification, StateStore

SLOT_KIND = "pitr-slot"
CHECK_PREFIX = "pitr-slot."
STATE_PREFIX = "pitr-slot/"
MIB = 1 << 20
READ_TIMEOUT_SECONDS = 10.0

_SLOT_QUERY = """
SELECT active,
       wal_status,
       CASE WHEN restart_lsn IS NULL THEN 0
            ELSE pg_wal_lsn_diff(
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                restart_lsn)
       END::bigint AS retained
FROM pg_replication_slots
WHERE slot_name = %s
"""


def check_name(target: str) -> str:
    """The health check name of a target's slot watch."""
    return f"{CHECK_PREFIX}{target}"


def state_key(environment: str, target: str) -> str:
    return f"{STATE_PREFIX}{environment}/{target}"


@dataclass(frozen=True)
class SlotReading:
    """One look at ``pg_replication_slots`` for a slot."""

    slot: str
    exists: bool
    active: bool = False
    retained_bytes: int = 0
    """WAL the slot makes the server keep: current WAL position - ``restart_lsn`` (0 when none reserved)."""
    wal_status: str | None = None
    """``reserved``, ``extended``, ``unreserved`` or ``lost`` (PostgreSQL 13+)."""


def read_slot(
    dsn: str, password: SecretStr | None, slot: str, timeout_seconds: float = READ_TIMEOUT_SECONDS
) -> SlotReading:
    """Read ``slot`` from the server at ``dsn`` in a read-only session (SELECT only; never drops anything).

    Calls PostgreSQL. Raises the adapter's errors (TransientError for an unreachable server,
    AuthenticationError, PermissionDeniedError, ...); their messages name host:port/db, never a password.
    """
    from envsteward.adapters.postgres import PostgresClient

    client = PostgresClient(dsn, password=password, connect_timeout=timeout_seconds)
    with client.connect("read replication slot") as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"SET statement_timeout = {max(1, int(timeout_seconds * 1000))}")
        row = conn.execute(_SLOT_QUERY, (slot,)).fetchone()
    if row is None:
        return SlotReading(slot, exists=False)
    active, wal_status, retained = row
    return SlotReading(
        slot,
        exists=True,
        active=bool(active),
        retained_bytes=max(0, int(retained or 0)),
        wal_status=str(wal_status) if wal_status is not None else None,
    )


def inactive_since(
    store: StateStore, environment: str, target: str, reading: SlotReading, now: datetime
) -> datetime | None:
    """Record the slot's state; return since when it is inactive (None: active or absent).

    One compare-and-set (``StateStore.update``): the first run that sees the slot inactive stores ``now``;
    later runs (and concurrent workers, whose fold re-runs after a lost race) keep that time. An active or
    absent slot clears it. Calls the state store; raises its errors."""
    found: list[datetime | None] = [None]

    def fold(current: JSONValue | None) -> JSONValue | None:
        if not reading.exists:
            found[0] = None
            return None
        if reading.active:
            found[0] = None
            return {"slot": reading.slot, "inactive_since": None, "seen_active_at": now.isoformat()}
        document = dict(current) if isinstance(current, dict) else {}
        since = _parse_time(document.get("inactive_since")) or now
        found[0] = since
        return {**document, "slot": reading.slot, "inactive_since": since.isoformat()}

    store.update(state_key(environment, target), fold)
    return found[0]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def pretty_bytes(size: int) -> str:
    """``512 kB``, ``1.5 GB``...: the units of PostgreSQL's ``pg_size_pretty`` (powers of 1024). Pure."""
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def evaluate(
    reading: SlotReading, inactive_seconds: float | None, thresholds: SlotAlertSpec
) -> tuple[CheckStatus, str]:
    """The status of a slot and one line saying why (names, sizes, times only). Pure."""
    if not reading.exists:
        return CheckStatus.UP, f"no replication slot {reading.slot}: nothing retained"
    held = pretty_bytes(reading.retained_bytes)
    if reading.active:
        return CheckStatus.UP, f"slot {reading.slot} active ({held} behind)"
    since = short_duration(inactive_seconds)
    line = f"slot {reading.slot} INACTIVE for {since}, holding {held} of WAL on the primary"
    if reading.wal_status == "lost":
        return CheckStatus.DOWN, f"{line}; WAL it needed is LOST: streaming cannot resume"
    page = thresholds.page_retained_mib * MIB
    warn = thresholds.warn_retained_mib * MIB
    limits = f"(warn {pretty_bytes(warn)}, page {pretty_bytes(page)})"
    if reading.retained_bytes >= page:
        return CheckStatus.DOWN, f"{line} {limits}"
    too_long = inactive_seconds is not None and inactive_seconds >= thresholds.warn_inactive_minutes * 60
    if reading.retained_bytes >= warn or too_long:
        return CheckStatus.DEGRADED, f"{line} {limits}"
    return CheckStatus.UP, f"{line}, below the alert thresholds {limits}"


def slot_result(
    store: StateStore, environment: str, spec: PostgresBackup, reading: SlotReading, now: datetime
) -> CheckResult:
    """Fold ``reading`` into the "inactive since" state and return the health result of the slot.
    Calls the state store; raises its errors."""
    since = inactive_since(store, environment, spec.name, reading, now)
    inactive_seconds = max(0.0, (now - since).total_seconds()) if since is not None else None
    status, detail = evaluate(reading, inactive_seconds, spec.pitr.slot_alert)
    return CheckResult(
        environment=environment,
        check=check_name(spec.name),
        kind=SLOT_KIND,
        status=status,
        detail=short_detail(detail),
        checked_at=now,
    )


@dataclass(frozen=True)
class SlotWatchRun:
    results: list[CheckResult]
    unreadable: list[str]
    """``ENV/TARGET: reason`` of each server that could not be read (no result, state unchanged)."""


def watched_targets(catalog: Catalog, environments: Sequence[str]) -> list[tuple[str, PostgresBackup]]:
    """Every PostgreSQL target with ``pitr.enabled`` in ``environments``: streaming ones, and the others
    too (a slot left behind after streaming was switched off is the same danger). Pure over the catalog."""
    found = []
    for name in environments:
        for spec in catalog.environment(name).backups:
            if spec.kind == "postgres" and spec.pitr.enabled:
                found.append((name, spec))
    return found


def watch_slots(services: PitrServices, state: StateStore, environments: Sequence[str]) -> SlotWatchRun:
    """Read the slot of every watched target and return its health result. A target without streaming
    and without a slot gives no result unless it has one on record (its recovery must still be told).

    Calls PostgreSQL (read-only), the secret resolver (the target's password) and the state store. Never
    raises for an unreachable server (listed in ``unreadable``); raises the state store's errors."""
    from envsteward.errors import EnvstewardError
    from envsteward.health.recording import read_state

    results: list[CheckResult] = []
    unreadable: list[str] = []
    for environment, spec in watched_targets(services.catalog(), environments):
        selector = f"{environment}/{spec.name}"
        slot = target_slot(environment, spec)
        try:
            password = services.resolve_secret(spec.password) if spec.password is not None else None
            reading = read_slot(spec.dsn, password, slot)
        except EnvstewardError as exc:
            unreadable.append(f"{selector}: {exc}")
            continue
        recorded = read_state(state, environment, check_name(spec.name)) is not None
        if not reading.exists and not spec.pitr.streaming and not recorded:
            continue
        results.append(slot_result(state, environment, spec, reading, datetime.now(UTC)))
    return SlotWatchRun(results, unreadable)


def slot_status(
    services: PitrServices, state: StateStore, environment: str, spec: PostgresBackup
) -> dict[str, Any]:
    """The slot as ``pitr status`` shows it, read-only (the state store is read, never written: "inactive
    since" is what the health-check flow recorded). Calls PostgreSQL and the secret resolver; an
    unreachable server gives ``error`` (its message names host:port/db, never a password)."""
    from envsteward.errors import EnvstewardError

    slot = target_slot(environment, spec)
    try:
        password = services.resolve_secret(spec.password) if spec.password is not None else None
        reading = read_slot(spec.dsn, password, slot)
    except EnvstewardError as exc:
        return {"slot": slot, "error": str(exc)}
    recorded = state.get(state_key(environment, spec.name))
    since = _parse_time(recorded.get("inactive_since")) if isinstance(recorded, dict) else None
    if reading.active or not reading.exists:
        since = None
    now = datetime.now(UTC)
    inactive_seconds = round((now - since).total_seconds(), 3) if since is not None else None
    status, detail = evaluate(reading, inactive_seconds, spec.pitr.slot_alert)
    return {
        "slot": slot,
        "exists": reading.exists,
        "active": reading.active,
        "retained_bytes": reading.retained_bytes,
        "retained": pretty_bytes(reading.retained_bytes),
        "wal_status": reading.wal_status,
        "inactive_since": since.isoformat() if since is not None else None,
        "status": status.value,
        "detail": detail,
        "fix": fix_text(environment, spec.name, slot) if status is not CheckStatus.UP else None,
    }


def fix_text(environment: str, target: str, slot: str | None = None) -> str:
    """How to end the incident (read by a person at 3 a.m.); ``slot`` defaults to the target's default
    slot name. Pure."""
    slot = slot or slot_name(environment, target)
    return (
        f"Restart the streamer on its host: `envsteward wal stream --target {environment}/{target}` "
        "(it resumes from the slot: nothing is lost, the primary frees the WAL as it catches up). "
        "If streaming is abandoned, drop the slot on the primary "
        f"(`SELECT pg_drop_replication_slot('{slot}');`) and set pitr.streaming: false; "
        "archive_command keeps archiving."
    )


_DETAIL_SLOT = re.compile(r"\bslot ([a-z0-9_]{1,63})\b")


def _slot_of(change: StatusChange) -> str | None:
    """The slot a watch result was about: :func:`evaluate`'s detail names it (``slot NAME ...``), which
    also covers a ``pitr.slot_name`` the notification has no catalog to look up. Pure."""
    found = _DETAIL_SLOT.search(change.result.detail or "")
    return found.group(1) if found else None


def slot_notification(change: StatusChange, link: str | None = None) -> Notification:
    """The health notification of a slot watch's confirmed change, with the slot and the fix."""
    from envsteward.health.alerts import notification_for

    base = notification_for(change, link)
    target = change.check.removeprefix(CHECK_PREFIX)
    slot = _slot_of(change) or slot_name(change.environment, target)
    fields = {**base.fields, "slot": slot}
    if change.is_recovery:
        text = f"{change.reason}. The slot no longer holds WAL back unattended."
    else:
        fields["fix"] = fix_text(change.environment, target, slot)
        text = f"{change.reason}. pg_wal on the primary grows until its disk is full."
    return dataclasses.replace(base, text=text, fields=fields)


def notification_for_change(change: StatusChange, link: str | None = None) -> Notification:
    """The notification of any confirmed health change: the slot watch's with its fix, else the health
    check's own."""
    from envsteward.health.alerts import notification_for

    if change.kind == SLOT_KIND:
        return slot_notification(change, link)
    return notification_for(change, link)
