"""The live state of continuous archiving, per PITR target: what ``backup list``, ``pitr status``, the
backup flows' artifacts and the platform status show.

* **Newest archived segment and its age**: the live RPO exposure (data written since then is only on the
  database server), compared with the environment's RPO target.
* **Archive failures**: ``wal push`` records each failure in the state store (key
  ``pitr-archive-failures/<env>/<target>``: count, the error's class, the segment, when; never the
  message, which may name hosts or paths an operator keeps private). A failure older than the newest
  archived segment has been recovered from (PostgreSQL retried and the archive moved on).
* **DR lag**: how far the DR copy's newest segment trails the primary's (segments and seconds).
* **Streamed partial segments** (``wal stream``, ``<prefix>stream/<segment>.partial``): their count and
  the newest one's age. A partial of a segment after the newest archived one is the live edge of the
  archive (``wal fetch`` serves it), so the exposure is its age, not the newest whole segment's.

:func:`record_push_failure` is best effort: ``wal push`` fails anyway, and must fail with its own error.
:func:`target_status` lists the stores; :func:`status_rows` is pure.

External calls: the state store, the object stores (list).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.errors import EnvstewardError
from envsteward.pitr.context import PitrServices
from envsteward.pitr.rpo import ArchiveStatus, archive_status
from envsteward.pitr.walnames import SegmentName, archive_prefix, wal_kind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from envsteward.ports import JSONValue, ObjectStore, StateStore

FAILURES_PREFIX = "pitr-archive-failures/"
PUSHER_PREFIX = "pitr-archive-pusher/"
PUSHER_FRESH_SECONDS = 90.0
"""A running pusher records a heartbeat every 30 s: older than this, it is taken as gone (killed)."""


class StatusServices(PitrServices, Protocol):
    def state_store(self) -> StateStore: ...


def failures_key(environment: str, target: str) -> str:
    return f"{FAILURES_PREFIX}{environment}/{target}"


def record_push_failure(
    store: StateStore, environment: str, target: str, exc: BaseException, segment: str | None
) -> None:
    """Count one failed ``wal push`` of ``ENV/TARGET`` (the error's class and the segment, no message).
    Never raises for the state store: the push has failed already and reports its own error."""
    now = datetime.now(UTC).isoformat()

    def bump(current: JSONValue | None) -> JSONValue:
        document = dict(current) if isinstance(current, dict) else {}
        count = document.get("count")
        return {
            "count": (count if isinstance(count, int) else 0) + 1,
            "first_at": document.get("first_at") or now,
            "last_at": now,
            "last_error": type(exc).__name__,
            "last_segment": segment,
        }

    with contextlib.suppress(EnvstewardError, OSError):
        store.update(failures_key(environment, target), bump)


def pusher_key(selector: str) -> str:
    return f"{PUSHER_PREFIX}{selector}"


def record_pusher_event(store: StateStore, selector: str, kind: str, fields: Mapping[str, object]) -> None:
    """Record what the archive-ahead pusher of ``ENV/TARGET`` (:mod:`envsteward.pitr.push_ahead`) just did:
    ``started``, ``heartbeat``, ``error`` (the error's class and segment, never its message), ``stopped``.
    Calls the state store; never raises for it (best effort: the pusher's work does not depend on it)."""
    import os
    import socket

    now = datetime.now(UTC).isoformat()

    def apply(current: JSONValue | None) -> JSONValue:
        document: dict[str, JSONValue] = dict(current) if isinstance(current, dict) else {}
        if kind == "started":
            document = {"started_at": now, "pushed": 0, **{k: v for k, v in document.items() if "error" in k}}
        document.update(
            {
                "state": "stopped" if kind == "stopped" else "running",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "pg_wal": str(fields.get("pg_wal", "")),
                "heartbeat_at": now,
            }
        )
        if isinstance(fields.get("pushed"), int):
            document["pushed"] = fields["pushed"]
        if kind == "stopped":
            document["stopped_at"] = now
        if kind == "error":
            document["last_error"] = str(fields.get("error"))
            document["last_error_segment"] = str(fields.get("segment"))
            document["last_error_at"] = now
        return document

    with contextlib.suppress(EnvstewardError, OSError):
        store.update(pusher_key(selector), apply)


@dataclass(frozen=True)
class PusherStatus:
    """The archive-ahead pusher as it last recorded itself (read-only; see :func:`record_pusher_event`)."""

    recorded: bool = False
    running: bool = False
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    pushed: int = 0
    last_error: str | None = None
    last_error_segment: str | None = None
    last_error_at: datetime | None = None

    @classmethod
    def of(cls, value: JSONValue | None, now: datetime) -> PusherStatus:
        if not isinstance(value, dict):
            return cls()
        beat, error_at = _parse(value.get("heartbeat_at")), _parse(value.get("last_error_at"))
        fresh = beat is not None and (now - beat).total_seconds() <= PUSHER_FRESH_SECONDS
        pid, pushed = value.get("pid"), value.get("pushed")
        host, error, segment = value.get("host"), value.get("last_error"), value.get("last_error_segment")
        return cls(
            recorded=True,
            running=value.get("state") == "running" and fresh,
            host=host if isinstance(host, str) else None,
            pid=pid if isinstance(pid, int) else None,
            heartbeat_at=beat,
            pushed=pushed if isinstance(pushed, int) else 0,
            last_error=error if isinstance(error, str) else None,
            last_error_segment=segment if isinstance(segment, str) else None,
            last_error_at=error_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "host": self.host,
            "pid": self.pid,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "pushed": self.pushed,
            "last_error": self.last_error,
            "last_error_segment": self.last_error_segment,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }

    def line(self) -> str:
        """One line for ``pitr check``. Pure."""
        if not self.recorded:
            return "archive-ahead: no pusher has run yet (wal push starts one with the first segment)"
        where = f"pid {self.pid} on {self.host}"
        state = f"running ({where})" if self.running else f"not running (last: {where})"
        error = ""
        if self.last_error is not None:
            error = (
                f"; last error {self.last_error} on {self.last_error_segment} at {_iso(self.last_error_at)}"
            )
        return f"archive-ahead: pusher {state}, {self.pushed} segments pushed{error}"


def _parse(value: JSONValue | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def pusher_status(store: StateStore, selector: str, now: datetime | None = None) -> PusherStatus:
    """The pusher of ``ENV/TARGET`` as recorded. Calls the state store (get); raises its errors."""
    return PusherStatus.of(store.get(pusher_key(selector)), now or datetime.now(UTC))


@dataclass(frozen=True)
class ArchiveFailures:
    count: int = 0
    last_at: datetime | None = None
    last_error: str | None = None
    last_segment: str | None = None

    @classmethod
    def of(cls, value: JSONValue | None) -> ArchiveFailures:
        if not isinstance(value, dict):
            return cls()
        count = value.get("count")
        last_at = value.get("last_at")
        try:
            when = datetime.fromisoformat(last_at) if isinstance(last_at, str) else None
        except ValueError:
            when = None
        error, segment = value.get("last_error"), value.get("last_segment")
        return cls(
            count=count if isinstance(count, int) else 0,
            last_at=when,
            last_error=error if isinstance(error, str) else None,
            last_segment=segment if isinstance(segment, str) else None,
        )


@dataclass(frozen=True)
class PartialStatus:
    """The streamed partial objects of one archive (``wal stream``)."""

    count: int = 0
    newest_segment: str | None = None
    newest_at: datetime | None = None
    age_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "partials": self.count,
            "newest_partial": self.newest_segment,
            "newest_partial_at": self.newest_at.isoformat() if self.newest_at else None,
            "partial_age_seconds": self.age_seconds,
        }


def partial_status(store: ObjectStore, prefix: str, now: datetime | None = None) -> PartialStatus:
    """The partial objects under ``<prefix>stream/``: count, newest (by segment name) and its age (when it
    was last replaced). Calls the store (list); raises its errors."""
    from envsteward.pitr.archive import STREAM_FOLDER

    head = f"{prefix}{STREAM_FOLDER}/"
    newest: tuple[str, datetime] | None = None
    count = 0
    for info in store.list(head):
        segment = info.key[len(head) :].removesuffix(".partial")
        if not info.key.endswith(".partial") or "/" in segment:
            continue
        try:
            if wal_kind(segment) != "segment":
                continue
        except EnvstewardError:
            continue  # a foreign object: not ours to count
        count += 1
        if newest is None or segment > newest[0]:
            newest = (segment, info.modified)
    if newest is None:
        return PartialStatus()
    age = ((now or datetime.now(UTC)) - newest[1]).total_seconds()
    return PartialStatus(count, newest[0], newest[1], round(max(0.0, age), 3))


@dataclass(frozen=True)
class TargetArchiveStatus:
    """One PITR target's archive as ``backup list`` shows it."""

    selector: str
    primary: ArchiveStatus
    dr: ArchiveStatus | None
    """None: the target has no replica region."""
    failures: ArchiveFailures
    rpo_target_seconds: float | None
    base_backups: int
    partials: PartialStatus = PartialStatus()
    pusher: PusherStatus = PusherStatus()
    """The archive-ahead pusher (``wal push``), as it last recorded itself."""

    @property
    def live_partial(self) -> bool:
        """The newest partial object is of a segment after the newest whole one: the archive's live edge
        (an older partial is a leftover that a whole segment supersedes)."""
        newest_partial, newest_whole = self.partials.newest_segment, self.primary.newest_segment
        return newest_partial is not None and (newest_whole is None or newest_partial > newest_whole)

    @property
    def newest_at(self) -> datetime | None:
        """When the archive last moved on: the newest whole segment, or the live partial when newer."""
        times = [self.primary.newest_at] + ([self.partials.newest_at] if self.live_partial else [])
        present = [moment for moment in times if moment is not None]
        return max(present) if present else None

    @property
    def exposure_seconds(self) -> float | None:
        """The live RPO exposure: the age of the newest archived segment, or of the live partial segment
        when streaming stored a newer one (None: nothing archived yet)."""
        ages = [self.primary.age_seconds] + ([self.partials.age_seconds] if self.live_partial else [])
        present = [age for age in ages if age is not None]
        return min(present) if present else None

    @property
    def failing(self) -> bool:
        """The last push failed and nothing was archived since (the archiver is stuck)."""
        last = self.failures.last_at
        newest = self.primary.newest_at  # whole segments: a fresh partial does not unstick archive_command
        return last is not None and (newest is None or last > newest)

    @property
    def dr_lag_segments(self) -> int | None:
        if self.dr is None or self.primary.newest_segment is None:
            return None
        if self.dr.newest_segment is None:
            return self.primary.segments
        return max(
            0,
            SegmentName.parse(self.primary.newest_segment).segno()
            - SegmentName.parse(self.dr.newest_segment).segno(),
        )

    @property
    def dr_lag_seconds(self) -> float | None:
        if self.dr is None or self.primary.newest_at is None:
            return None
        if self.dr.newest_at is None:
            return self.primary.age_seconds
        return round(max(0.0, (self.primary.newest_at - self.dr.newest_at).total_seconds()), 3)

    @property
    def state(self) -> str:
        """``ok``, ``failing`` (pushes fail now), ``stale`` (exposure above the RPO target), ``empty``."""
        if self.failing:
            return "failing"
        if self.primary.newest_segment is None and not self.live_partial:
            return "empty"
        exposure = self.exposure_seconds
        if (
            self.rpo_target_seconds is not None
            and exposure is not None
            and exposure > self.rpo_target_seconds
        ):
            return "stale"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.selector,
            "state": self.state,
            "newest_segment": self.primary.newest_segment,
            "newest_at": self.primary.newest_at.isoformat() if self.primary.newest_at else None,
            "exposure_seconds": self.exposure_seconds,
            "rpo_target_seconds": self.rpo_target_seconds,
            "segment_age_seconds": self.primary.age_seconds,
            "segments": self.primary.segments,
            **self.partials.as_json(),
            "base_backups": self.base_backups,
            "failures": self.failures.count,
            "last_failure_at": self.failures.last_at.isoformat() if self.failures.last_at else None,
            "last_failure_error": self.failures.last_error,
            "last_failure_segment": self.failures.last_segment,
            "dr": None if self.dr is None else self.dr.as_json(),
            "dr_lag_segments": self.dr_lag_segments,
            "dr_lag_seconds": self.dr_lag_seconds,
            "archive_ahead": self.pusher.as_json(),
        }


def target_status(
    selector: str,
    *,
    primary: ObjectStore,
    dr: ObjectStore | None,
    state: StateStore,
    rpo_target_seconds: float | None,
    now: datetime | None = None,
) -> TargetArchiveStatus:
    """The archive status of ``ENV/TARGET``. Calls the stores (list) and the state store (get); raises
    their errors."""
    from envsteward.pitr.base import list_base_backups

    environment, _, target = selector.partition("/")
    prefix = archive_prefix(environment, target)
    moment = now or datetime.now(UTC)
    return TargetArchiveStatus(
        selector=selector,
        primary=archive_status(primary, prefix, moment),
        dr=archive_status(dr, prefix, moment) if dr is not None else None,
        failures=ArchiveFailures.of(state.get(failures_key(environment, target))),
        rpo_target_seconds=rpo_target_seconds,
        base_backups=len(list_base_backups(primary, prefix)),
        partials=partial_status(primary, prefix, moment),
        pusher=pusher_status(state, selector, moment),
    )


def short_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3.5h``, ``2.1d`` (``-`` for None). Pure."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def status_row(item: TargetArchiveStatus) -> dict[str, str]:
    """Short cells for one target (CLI table, artifacts), so the five columns fit 80 characters with a
    24-character segment name kept whole: ``exposure`` is ``age/RPO target``, ``failures`` the count and
    the last error's class, ``dr_lag`` segments and seconds behind the primary; ``partials`` (artifact and
    JSON; the exposure already counts a live one) the streamed partial segments. Pure."""
    rpo = f"/{short_duration(item.rpo_target_seconds)}" if item.rpo_target_seconds is not None else ""
    failures = "0"
    if item.failures.count:
        failures = f"{item.failures.count} {item.failures.last_error or '?'}"
    lag = "no DR"
    if item.dr is not None:
        lag = f"{item.dr_lag_segments if item.dr_lag_segments is not None else '-'} seg"
        if item.dr_lag_seconds:
            lag += f" {short_duration(item.dr_lag_seconds)}"
    return {
        "target": item.selector,
        "state": item.state,
        "newest_segment": item.primary.newest_segment or "-",
        "exposure": f"{short_duration(item.exposure_seconds)}{rpo}",
        "failures": failures,
        "dr_lag": lag,
        "partials": partial_cell(item.partials),
    }


def partial_cell(partials: PartialStatus) -> str:
    """``0``, or the count and the newest partial's age (``1 3s``): streamed partial segments. Pure."""
    if not partials.count:
        return "0"
    return f"{partials.count} {short_duration(partials.age_seconds)}"


def status_notes(item: TargetArchiveStatus) -> list[str]:
    """What needs a person's eye, one line each (a stuck archiver, an exposure above the RPO target, the
    last failure). Pure."""
    notes = []
    if item.state == "failing":
        notes.append(
            f"{item.selector}: wal push is FAILING since {_iso(item.failures.last_at)} "
            f"({item.failures.last_error}, segment {item.failures.last_segment or '?'}); PostgreSQL keeps "
            "the segments in pg_wal and retries: see its log"
        )
    elif item.state == "stale":
        notes.append(
            f"{item.selector}: the newest archived segment is {short_duration(item.exposure_seconds)} old, "
            f"above the RPO target of {short_duration(item.rpo_target_seconds)} (an idle server, a long "
            "archive_timeout, or archiving stopped: `envsteward pitr check`)"
        )
    elif item.failures.count:
        notes.append(
            f"{item.selector}: {item.failures.count} failed push(es), the last at "
            f"{_iso(item.failures.last_at)} ({item.failures.last_error}); archiving has moved on since"
        )
    return notes


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "?"


def catalog_statuses(
    services: StatusServices, environment: str | None = None, target: str | None = None
) -> list[TargetArchiveStatus]:
    """The archive status of every PITR target (of one environment / target name when given), compared
    with the environment's RPO target (``drill.rpo_target_minutes``, default 5). Reads the catalog; calls
    the stores and the state store; raises their errors and CatalogError for an unknown environment."""
    from envsteward.pitr.context import pitr_target, target_stores
    from envsteward.pitr.runner import plan_pitr_targets

    catalog = services.catalog()
    found = []
    for selector in plan_pitr_targets(catalog, environment):
        env_name, spec = pitr_target(services, selector)
        if target is not None and target not in {spec.name, f"{spec.name}.pitr"}:
            continue
        stores = target_stores(services, spec)
        drill = catalog.environment(env_name).drill
        found.append(
            target_status(
                selector,
                primary=stores.primary,
                dr=stores.dr if spec.replica_region is not None else None,
                state=services.state_store(),
                rpo_target_seconds=(drill.rpo_target_minutes if drill is not None else 5.0) * 60.0,
            )
        )
    return found
