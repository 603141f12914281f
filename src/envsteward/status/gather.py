"""Gather the platform status from the state the flows keep. Read-only: it creates nothing.

Sources, per environment (:func:`gather_status`):

* health — the health tracker's confirmed status of each catalog check (``health/<env>/<check>``);
* drift — ``status/drift/<env>`` (open items by severity, first seen), written by the drift scan;
* backups — per catalog target, the newest manifest in the primary store and its ``replica.json``, plus
  the last run (``status/backup/<env>``) for a failure that left nothing to list;
* DR drill — the last record of the drill history (``drill-history/<env>``);
* secrets — ``status/secrets/<env>``, written by the secret inventory;
* promotions — the target's lease (``promotion-lock:<env>``) and rollback journal.

The rules (what is green, amber, red) are documented on each ``_*_cell`` function and in the README.
External calls: the state store (reads) and the backup object store (list, get) — the filesystem store is
not even opened when its folder does not exist, so a read on an empty home leaves it empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.errors import EnvstewardError
from envsteward.ports import ObjectStore, StateStore
from envsteward.status import records
from envsteward.status.model import Cell, EnvironmentStatus, Level, PlatformStatus, worst

if TYPE_CHECKING:
    from envsteward.catalog import Catalog
    from envsteward.catalog.models import EnvironmentSpec
    from envsteward.settings import Settings

HEALTH_STALE_AFTER = timedelta(minutes=5)
"""A health state older than this (no health run since) is amber: the view may be out of date."""
DRILL_SCHEDULE = timedelta(days=31)
"""The ``dr-drill`` deployment runs monthly; a last drill older than this plus a week is amber."""
DRILL_GRACE = timedelta(days=7)
DEFAULT_BACKUP_INTERVAL = timedelta(hours=6)
"""The ``backup-environment`` deployment's schedule (every 6 hours), for a target without its own."""
BACKUP_GRACE = timedelta(hours=1)


class StatusSources(Protocol):
    """What gathering reads (``Services`` satisfies it)."""

    @property
    def settings(self) -> Settings: ...

    def catalog(self) -> Catalog: ...

    def state_store(self) -> StateStore: ...

    def object_store(self) -> ObjectStore: ...


RunLink = Callable[[str], str | None]
"""A flow run id to its page in the Prefect UI (None when the UI's address is unknown)."""
RunStates = Callable[[Sequence[str]], Mapping[str, str]]
"""Flow run ids to their Prefect state type (``PAUSED``, ``SUSPENDED``, ``RUNNING``...); runs it cannot
tell about are left out."""


@dataclass(frozen=True)
class LatestBackup:
    backup_id: str
    completed_at: datetime
    replica: str
    """``verified`` (replica.json says the copy was checked), ``missing`` or ``failed``."""


def gather_status(
    sources: StatusSources,
    *,
    now: datetime | None = None,
    environments: Sequence[str] | None = None,
    run_link: RunLink | None = None,
    run_states: RunStates | None = None,
) -> PlatformStatus:
    """One row per environment (all, in promotion order, when ``environments`` is None).

    The ``platform-status`` artifact and ``envsteward status`` both come from this function, so they show
    the same rows. ``run_states`` is asked once, with the run ids of the promotion leases found, when the
    caller can ask Prefect; a lease whose run is paused or suspended shows as *awaiting approval*. Raises
    ConfigurationError for an unknown environment; an area that cannot be read (the run-state lookup
    included) becomes an ``unknown`` cell or plain text, and its reason is listed in ``errors``.
    """
    from envsteward.health.runner import select_environments

    moment = now or datetime.now(UTC)
    catalog = sources.catalog()
    chosen = select_environments(catalog, environments)
    store = sources.state_store()
    errors: list[str] = []
    backup_store = _open_backup_store(sources, errors)
    link = run_link or (lambda _run_id: None)
    states = _lease_states(store, chosen, run_states, errors)
    rows = []
    for name in chosen:
        spec = catalog.environments[name]
        builders: dict[str, Callable[[], Cell]] = {
            "health": partial(_health_cell, store, spec, moment, link),
            "drift": partial(_drift_cell, store, name, moment, _neighbour_pairs(catalog, name)),
            "backups": partial(_backup_cell, store, backup_store, spec, moment),
            "drill": partial(_drill_cell, store, spec, moment),
            "secrets": partial(_secrets_cell, store, name, moment),
            "promotions": partial(_promotion_cell, store, name, moment, link, states),
        }
        cells = {area: _guard(errors, name, area, build) for area, build in builders.items()}
        rows.append(EnvironmentStatus(environment=name, tier=str(spec.tier), cells=cells))
    return PlatformStatus(generated_at=moment, rows=tuple(rows), errors=tuple(errors))


def _lease_states(
    store: StateStore, environments: Sequence[str], run_states: RunStates | None, errors: list[str]
) -> Mapping[str, str]:
    """The state of each promotion lease's run, from ``run_states`` (nothing when there is no lease: the
    lookup is not even called)."""
    from envsteward.promotion.lock import holder

    if run_states is None:
        return {}
    run_ids = []
    for name in environments:
        try:
            lease = holder(store, name)
        except EnvstewardError:
            continue  # the promotions cell reports it
        if lease is not None and isinstance(lease.get("run_id"), str):
            run_ids.append(str(lease["run_id"]))
    if not run_ids:
        return {}
    try:
        return dict(run_states(run_ids))
    except EnvstewardError as exc:
        errors.append(f"promotion run states: {exc}")
        return {}


def _guard(errors: list[str], environment: str, area: str, build: Callable[[], Cell]) -> Cell:
    try:
        return build()
    except EnvstewardError as exc:
        reason = f"{environment} {area}: {exc}"
    except (ValueError, TypeError, KeyError) as exc:
        reason = f"{environment} {area}: unreadable state ({type(exc).__name__})"
    errors.append(reason)
    return Cell(Level.UNKNOWN, "cannot read", (reason,))


def _open_backup_store(sources: StatusSources, errors: list[str]) -> ObjectStore | None:
    settings = sources.settings
    if settings.storage.kind == "filesystem" and not (settings.home / "objects").is_dir():
        return None  # nothing was ever backed up here; opening the store would create its folder
    try:
        return sources.object_store()
    except EnvstewardError as exc:
        errors.append(f"backups: {exc}")
        return None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age_text(delta: timedelta) -> str:
    """``42s``, ``17m``, ``5.2h``, ``3.0d``."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# ---------------------------------------------------------------------------------------------------------
# health
# ---------------------------------------------------------------------------------------------------------


def _health_cell(store: StateStore, spec: EnvironmentSpec, now: datetime, link: RunLink) -> Cell:
    """Red when a check's confirmed status is down, amber when degraded or when no health run was seen for
    :data:`HEALTH_STALE_AFTER`, unknown before the first confirmation; since = when the worst status began."""
    from envsteward.health.recording import read_state

    if not spec.health_checks:
        return Cell(Level.GREEN, "no checks")
    history = store.get(records.health_key(spec.name))
    run = history.get("link") if isinstance(history, dict) else None
    by_status: dict[str, list[tuple[str, datetime | None]]] = {}
    last_checked: list[datetime] = []
    for check in spec.health_checks:
        state = read_state(store, spec.name, check.name)
        status = state.confirmed.value if state is not None and state.confirmed is not None else "unknown"
        by_status.setdefault(status, []).append((check.name, state.confirmed_since if state else None))
        if state is not None:
            last_checked.append(state.last_checked_at)
    lines = tuple(
        f"{status}: {', '.join(name for name, _ in checks)}"
        for status, checks in by_status.items()
        if status != "up"
    )
    link_text = str(run) if isinstance(run, str) else None
    for status, level in (("down", Level.RED), ("degraded", Level.AMBER)):
        if status in by_status:
            since = min((s for _, s in by_status[status] if s is not None), default=None)
            text = f"{status}: {len(by_status[status])} of {len(spec.health_checks)}"
            if since is not None:
                text += f" for {age_text(now - since)}"
            return Cell(level, text, lines, link_text, since)
    if "unknown" in by_status:
        return Cell(
            Level.UNKNOWN, f"unknown: {len(by_status['unknown'])} check(s) not confirmed", lines, link_text
        )
    newest = max(last_checked, default=None)
    since = max((s for _, s in by_status.get("up", []) if s is not None), default=None)
    if newest is not None and now - newest > HEALTH_STALE_AFTER:
        return Cell(
            Level.AMBER, f"up, stale: last checked {age_text(now - newest)} ago", lines, link_text, since
        )
    text = "up" + (f" for {age_text(now - since)}" if since is not None else "")
    return Cell(Level.GREEN, text, lines, link_text, since)


# ---------------------------------------------------------------------------------------------------------
# drift
# ---------------------------------------------------------------------------------------------------------


def _neighbour_pairs(catalog: Catalog, environment: str) -> list[tuple[str, str]]:
    """The parity pairs the drift scan checks that include ``environment`` (neighbours on the promotion
    path, as ``(left, right)``)."""
    from itertools import pairwise

    return [pair for pair in pairwise(catalog.promotion_path) if environment in pair]


def _level_of(counts: Mapping[str, int]) -> Level:
    if counts["critical"] or counts["high"]:
        return Level.RED
    if counts["medium"] or counts["low"]:
        return Level.AMBER
    return Level.GREEN


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def _drift_cell(store: StateStore, environment: str, now: datetime, pairs: Sequence[tuple[str, str]]) -> Cell:
    """Red with open critical or high drift, amber with medium or low (or when the last scan could not see
    the environment), green when clean or info only; unknown before the first scan.

    Drift *between* environments (the parity findings of this environment and a neighbour on the
    promotion path: a key one of them lacks, a type that differs, a secret both use) counts the same way
    and is labelled ``between environments``, with one line per neighbour: a secret reused by staging and
    production is an open finding of both, whatever each one's own scan says.
    """
    doc = store.get(records.drift_key(environment))
    if not isinstance(doc, dict):
        return Cell(Level.UNKNOWN, "not scanned yet")
    link = doc.get("link") if isinstance(doc.get("link"), str) else None
    checked = _when(doc.get("checked_at"))
    items = {fp: data for fp, data in (doc.get("items") or {}).items() if isinstance(data, dict)}
    counts = records._counts(str(data.get("severity", "critical")) for data in items.values())
    first_seen = [moment for data in items.values() if (moment := _when(data.get("first_seen"))) is not None]
    between, between_lines, between_unknown = _parity(store, environment, pairs, first_seen)
    oldest = min(first_seen, default=None)
    summary = _summary(counts)
    lines = []
    if oldest is not None:
        lines.append(f"oldest open {age_text(now - oldest)}")
    if checked is not None:
        lines.append(f"scanned {age_text(now - checked)} ago")
    lines += between_lines
    across = f"; between environments: {_summary(between)}" if any(between.values()) else ""
    if doc.get("status") == "unknown":
        return Cell(
            worst([Level.AMBER, _level_of(between)]),
            f"unknown (last known: {summary or 'clean'}){across}",
            (*lines, "a source could not be read"),
            link,
        )
    level = worst([_level_of(counts), _level_of(between), *([Level.AMBER] if between_unknown else [])])
    if not items and not any(between.values()):
        return Cell(level, "clean", tuple(lines), link)
    text = (summary or "clean") + across
    if oldest is not None:
        text += f"; oldest {age_text(now - oldest)}"
    return Cell(level, text, tuple(lines), link, oldest)


def _parity(
    store: StateStore, environment: str, pairs: Sequence[tuple[str, str]], first_seen: list[datetime]
) -> tuple[dict[str, int], list[str], bool]:
    """The open parity findings of ``environment`` with its neighbours: counts by severity, one line per
    neighbour with findings (or that could not be compared), and whether a comparison was not possible.
    Appends each finding's first sighting to ``first_seen``."""
    severities: list[str] = []
    lines: list[str] = []
    unknown = False
    for left, right in pairs:
        other = right if left == environment else left
        doc = store.get(records.parity_key(left, right))
        if not isinstance(doc, dict):
            continue
        found = {fp: data for fp, data in (doc.get("items") or {}).items() if isinstance(data, dict)}
        pair_severities = [str(data.get("severity", "critical")) for data in found.values()]
        first_seen += [m for data in found.values() if (m := _when(data.get("first_seen"))) is not None]
        severities += pair_severities
        stale = doc.get("status") == "unknown"
        unknown = unknown or stale
        if found or stale:
            shown = _summary(records._counts(pair_severities)) or "clean"
            lines.append(f"parity with {other}: {shown}" + (" (not compared last scan)" if stale else ""))
    return records._counts(severities), lines, unknown


# ---------------------------------------------------------------------------------------------------------
# backups
# ---------------------------------------------------------------------------------------------------------


def rpo_target(spec: EnvironmentSpec, schedule: str | None) -> timedelta:
    """A target's RPO: the environment's drill ``rpo_target_minutes`` when it declares a drill, else the
    interval of the target's own schedule (or the backup deployment's 6 hours) plus an hour of grace."""
    if spec.drill is not None:
        return timedelta(minutes=spec.drill.rpo_target_minutes)
    return _schedule_interval(schedule) + BACKUP_GRACE


def _schedule_interval(schedule: str | None) -> timedelta:
    if not schedule:
        return DEFAULT_BACKUP_INTERVAL
    from cronsim import CronSim, CronSimError

    expression = {
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
    }.get(schedule, schedule)
    if expression in ("@yearly", "@annually"):
        return timedelta(days=366)
    try:
        fires = CronSim(expression, datetime(2001, 1, 1))
        first = next(fires)
        gaps = []
        previous = first
        for _ in range(8):
            following = next(fires)
            gaps.append(following - previous)
            previous = following
        return max(gaps)
    except (CronSimError, StopIteration):
        return DEFAULT_BACKUP_INTERVAL


def latest_backup(backups: ObjectStore, environment: str, target: str) -> LatestBackup | None:
    """The newest complete backup of a target (ids sort by their timestamp) and its replica record.
    Calls the object store (list, get)."""
    from envsteward.backup.manifest import MANIFEST_OBJECT_NAME
    from envsteward.backup.pipeline import read_manifest
    from envsteward.backup.replica import read_replica_record

    suffix = "/" + MANIFEST_OBJECT_NAME
    ids = sorted(
        info.key[: -len(suffix)]
        for info in backups.list(f"{environment}/{target}/")
        if info.key.endswith(suffix)
    )
    if not ids:
        return None
    manifest = read_manifest(backups, ids[-1])
    record = read_replica_record(backups, manifest.backup_id)
    replica = "missing" if record is None else "verified" if record.get("status") == "ok" else "failed"
    return LatestBackup(manifest.backup_id, manifest.completed_at, replica)


def _backup_cell(
    store: StateStore, backups: ObjectStore | None, spec: EnvironmentSpec, now: datetime
) -> Cell:
    """Per target: red when there is no backup, the last run failed, or the newest is older than its RPO
    target (:func:`rpo_target`); amber when a replica is wanted and not verified."""
    if not spec.backups:
        return Cell(Level.GREEN, "no targets")
    runs_doc = store.get(records.backup_key(spec.name))
    runs = runs_doc.get("targets", {}) if isinstance(runs_doc, dict) else {}
    levels: list[Level] = []
    lines: list[str] = []
    links: list[str] = []
    newest_age: list[timedelta] = []
    for target in spec.backups:
        run = runs.get(target.name) if isinstance(runs, dict) else None
        run = run if isinstance(run, dict) else {}
        if isinstance(run.get("link"), str):
            links.append(run["link"])
        latest = latest_backup(backups, spec.name, target.name) if backups is not None else None
        target_rpo = rpo_target(spec, target.schedule)
        if run.get("status") == "failed":
            levels.append(Level.RED)
            lines.append(
                f"{target.name}: last run failed {age_text(now - (_when(run.get('at')) or now))} ago"
            )
            continue
        if latest is None:
            levels.append(Level.RED)
            lines.append(f"{target.name}: no backup")
            continue
        age = now - latest.completed_at
        newest_age.append(age)
        line = f"{target.name}: {age_text(age)} (RPO {age_text(target_rpo)})"
        level = Level.RED if age > target_rpo else Level.GREEN
        if target.replica_region is not None:
            line += f", replica {latest.replica}"
            if latest.replica != "verified":
                level = worst([level, Level.AMBER])
        levels.append(level)
        lines.append(line)
        if target.kind == "postgres" and target.pitr.enabled and backups is not None:
            pitr_level, pitr_line = _pitr_line(
                store, backups, spec.name, target.name, rpo=target_rpo, now=now
            )
            levels.append(pitr_level)
            lines.append(pitr_line)
    level = worst(levels)
    bad = sum(1 for item in levels if item is not Level.GREEN)
    text = (
        f"{len(spec.backups)} target(s) ok, newest {age_text(min(newest_age))}"
        if not bad and newest_age
        else f"{bad} of {len(spec.backups)} target(s) need attention"
    )
    return Cell(level, text, tuple(lines), links[-1] if links else None)


def _pitr_line(
    store: StateStore, backups: ObjectStore, environment: str, target: str, *, rpo: timedelta, now: datetime
) -> tuple[Level, str]:
    """The WAL archive of a PITR target: red while ``wal push`` fails or nothing is archived, amber when
    the newest segment is older than the RPO target (the live exposure). Lists the primary store."""
    from envsteward.pitr.status import target_status

    status = target_status(
        f"{environment}/{target}",
        primary=backups,
        dr=None,
        state=store,
        rpo_target_seconds=rpo.total_seconds(),
        now=now,
    )
    failures = f", {status.failures.count} push failure(s)" if status.failures.count else ""
    if status.state == "failing":
        level, line = Level.RED, f"{target} WAL: wal push failing ({status.failures.last_error}){failures}"
    elif status.exposure_seconds is None:
        level, line = Level.RED, f"{target} WAL: nothing archived yet"
    else:
        age = timedelta(seconds=status.exposure_seconds)
        level = Level.AMBER if status.state == "stale" else Level.GREEN
        line = f"{target} WAL: newest segment {age_text(age)} old (RPO {age_text(rpo)}){failures}"
    return _with_slot(store, environment, target, level, line)


def _with_slot(
    store: StateStore, environment: str, target: str, level: Level, line: str
) -> tuple[Level, str]:
    """The replication slot watch's confirmed finding (health-check flow, ``pitr-slot.<target>``) added to
    a PITR line: red when down, amber when degraded. Reads the state store."""
    from envsteward.health.recording import read_state
    from envsteward.pitr.slot_watch import check_name

    state = read_state(store, environment, check_name(target))
    if state is None or state.confirmed is None or state.confirmed.value == "up":
        return level, line
    slot_level = Level.RED if state.confirmed.value == "down" else Level.AMBER
    return worst([level, slot_level]), f"{line}; {state.last_detail}"


# ---------------------------------------------------------------------------------------------------------
# drill
# ---------------------------------------------------------------------------------------------------------


def _drill_cell(store: StateStore, spec: EnvironmentSpec, now: datetime) -> Cell:
    """Red when the last drill failed; amber when it missed RTO/RPO, when it is older than the monthly
    schedule plus a week, or when an environment with backups was never drilled."""
    from envsteward.drill.history import load_history

    history = load_history(store, spec.name, limit=1)
    marker = store.get(records.drill_key(spec.name))
    if not history:
        if not spec.backups:
            return Cell(Level.GREEN, "no backups to drill")
        return Cell(Level.AMBER, "never drilled")
    last = history[-1]
    link = (
        marker.get("link") if isinstance(marker, dict) and marker.get("drill_id") == last.drill_id else None
    )
    age = now - last.started_at
    measured = []
    for check in (last.rto, last.rpo):
        if check is not None and check.measured_seconds is not None:
            verdict = "met" if check.met else "MISSED"
            measured.append(
                f"{check.name} {age_text(timedelta(seconds=check.measured_seconds))}"
                f"/{age_text(timedelta(seconds=check.target_seconds))} {verdict}"
            )
    lines = (*measured, f"{last.label()}, {age_text(age)} ago")
    text = f"{last.status.value} {age_text(age)} ago"
    if last.status.value == "failed":
        return Cell(
            Level.RED,
            text + (f" in {last.failed_phase.value}" if last.failed_phase else ""),
            lines,
            link,
            last.started_at,
        )
    if last.status.value == "target_missed":
        return Cell(Level.AMBER, text, lines, link, last.started_at)
    if age > DRILL_SCHEDULE + DRILL_GRACE:
        return Cell(Level.AMBER, f"{text} (overdue: monthly)", lines, link, last.started_at)
    return Cell(Level.GREEN, text, lines, link, last.started_at)


# ---------------------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------------------


def _secrets_cell(store: StateStore, environment: str, now: datetime) -> Cell:
    """Red with overdue, missing, expired or plaintext findings; amber with due-soon or other findings, or
    when the last inventory was incomplete; unknown before the first inventory."""
    doc = store.get(records.secrets_key(environment))
    if not isinstance(doc, dict):
        return Cell(Level.UNKNOWN, "not inventoried yet")
    link = doc.get("link") if isinstance(doc.get("link"), str) else None
    counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items() if isinstance(v, int)}
    checked = _when(doc.get("checked_at"))
    lines = tuple(f"{kind}: {n}" for kind, n in sorted(counts.items()) if n)
    if checked is not None:
        lines = (*lines, f"checked {age_text(now - checked)} ago")
    overdue, due, plaintext = counts.get("overdue", 0), counts.get("due", 0), counts.get("plaintext", 0)
    text = f"{overdue} overdue, {due} due soon, {plaintext} plaintext"
    others = sum(counts.values()) - overdue - due - plaintext
    if others:
        text += f", {others} other"
    if doc.get("status") == "unknown":
        return Cell(Level.AMBER, f"incomplete; last known {text}", lines, link)
    red = overdue + plaintext + counts.get("missing", 0) + counts.get("certificate-expired", 0)
    level = Level.RED if red else Level.AMBER if sum(counts.values()) else Level.GREEN
    return Cell(level, "clean" if level is Level.GREEN else text, lines, link)


# ---------------------------------------------------------------------------------------------------------
# promotions
# ---------------------------------------------------------------------------------------------------------


def _promotion_cell(
    store: StateStore, environment: str, now: datetime, link: RunLink, run_states: Mapping[str, str]
) -> Cell:
    """Red when a rollback is pending (its run gave up, or it is rolling back); amber while a promotion is
    applying; a promotion waiting for approval is shown (with its run's link) and is green: nothing is
    wrong, someone has to decide."""
    from envsteward.promotion.journal import JournalStatus, load_journal
    from envsteward.promotion.lock import holder, lease_expired

    journal = load_journal(store, environment)
    if journal is not None:
        run_url = link(journal.run_id)
        text = f"{journal.source} -> {environment}: {journal.status.value.replace('_', ' ')}"
        lines = (
            (f"run {journal.run_id}", f"keys left: {len(journal.keys_left)}")
            if journal.keys_left
            else (f"run {journal.run_id}",)
        )
        if journal.status in (JournalStatus.ROLLBACK_PENDING, JournalStatus.ROLLING_BACK):
            return Cell(Level.RED, text, lines, run_url, journal.updated_at)
        return Cell(Level.AMBER, text, lines, run_url, journal.created_at)
    lease = holder(store, environment)
    if lease is None or lease_expired(lease, now):
        return Cell(Level.GREEN, "none pending")
    run_id = str(lease.get("run_id", ""))
    state = run_states.get(run_id, "").upper()
    what = (
        "awaiting approval" if state in ("PAUSED", "SUSPENDED") else "in progress" if state else "requested"
    )
    text = f"{lease.get('source', '?')} -> {environment}: {what}"
    lines = (f"by {lease.get('requested_by', '?')}", f"run {run_id}")
    acquired = _when(lease.get("acquired_at"))
    return Cell(Level.GREEN, text, lines, link(run_id) if run_id else None, acquired)
