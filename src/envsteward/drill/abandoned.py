"""Abandoned drills: what a killed drill leaves behind, how it is recorded, and the sweep that clears it.

A drill killed at any moment (``kill -9``, a lost worker) must not leave a scratch database behind for
ever, nor a ``drill.started`` audit record that never ends. Two records survive a SIGKILL:

* **The ledger** (state store key :data:`LEDGER_KEY`): an entry per drill that has not ended, written
  BEFORE ``drill.started`` is audited; its scratch target (kind, name, where) is added BEFORE the target is
  created, and dropped once teardown confirmed it gone; the entry is removed after the drill's outcome is
  audited. So a drill killed between any two steps leaves an entry that names everything it may have
  created. (A teardown that could not remove its target keeps the entry, marked ended, for the sweep.)
* **The marker** on a PostgreSQL scratch database (``COMMENT ON DATABASE``, set right after ``CREATE
  DATABASE``; :class:`ScratchMarker`): which drill of which installation (:func:`DrillLedger.owner`, a
  random id kept in the state store) created it and when. It finds databases whose ledger entry is gone.

The sweep (:func:`sweep_abandoned`) runs at the start of every drill, before it creates anything. It acts
only on what is certainly envsteward's and certainly dead:

* a ledger entry older than the threshold (default :data:`~.limits.DRILL_TIMEOUT_SECONDS`): its scratch
  target is removed (a database that carries another drill's marker is left alone), the entry is claimed
  (removed atomically, so two sweeps never both report it) and audited ``drill.abandoned``; a drill that
  never ended (its ``drill.started`` is orphaned) also gets a history record with status ``abandoned``;
* a database named ``envsteward_drill_...`` on the drilled environment's drill server whose marker names
  this installation, is older than the threshold and has no ledger entry: dropped and audited (claimed in
  the ledger's ``swept`` list first).

* a PITR drill's scratch cluster folder (``<home>/drill-scratch/envsteward_drill_...`` with an
  ``envsteward-drill.json`` marker of this installation) older than the threshold that no entry names: its
  postmaster stopped (:mod:`envsteward.pitr.postmaster`), the folder removed, audited.

Younger leftovers are reported and never touched (a drill may be running). A database with the prefix but
without a valid marker of this installation is reported as not ours and never touched.

External calls: the state store, the audit log, the catalog, the drill PostgreSQL server, Vault (KV v2),
the local file system.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsteward.drill.decisions import SCRATCH_PREFIX
from envsteward.drill.history import save_drill
from envsteward.drill.limits import DRILL_TIMEOUT_SECONDS
from envsteward.drill.model import DrillRecord, DrillStatus
from envsteward.errors import ConfigurationError, ConflictError, EnvstewardError

if TYPE_CHECKING:
    from envsteward.adapters.postgres import PostgresClient
    from envsteward.drill.ports import DrillServices
    from envsteward.ports import JSONValue, StateStore

LEDGER_KEY = "drill-ledger"
"""``{"owner": id, "drills": {drill_id: entry}, "swept": [scratch names claimed by a sweep]}``."""
MARKER_TAG = "envsteward-drill-scratch"
SWEPT_KEPT = 200
"""How many swept database names the ledger remembers (enough to make concurrent sweeps report once)."""
ACTION = "drill.abandoned"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# ---------------------------------------------------------------------------------------------------------
# the marker on a scratch database
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchMarker:
    """Who created a scratch target and when (the comment of a PostgreSQL scratch database)."""

    scratch: str
    drill_id: str
    environment: str
    owner: str
    created_at: datetime
    run: str | None = None

    def encode(self) -> str:
        document = {
            "scratch": self.scratch,
            "drill_id": self.drill_id,
            "environment": self.environment,
            "owner": self.owner,
            "created_at": _iso(self.created_at),
            "run": self.run,
        }
        return f"{MARKER_TAG} {json.dumps(document, sort_keys=True)}"

    @classmethod
    def parse(cls, text: str | None, name: str) -> ScratchMarker | None:
        """The marker in ``text`` when it is one, for the scratch target ``name``; None for anything else
        (no comment, another comment, a malformed one, one naming another target). Pure."""
        if not text or not text.startswith(f"{MARKER_TAG} ") or not name.startswith(SCRATCH_PREFIX):
            return None
        try:
            document = json.loads(text[len(MARKER_TAG) + 1 :])
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        fields = [document.get(key) for key in ("scratch", "drill_id", "environment", "owner")]
        created = _when(document.get("created_at"))
        run = document.get("run")
        if not all(isinstance(value, str) and value for value in fields) or created is None:
            return None
        if document["scratch"] != name or not (run is None or isinstance(run, str)):
            return None
        return cls(name, document["drill_id"], document["environment"], document["owner"], created, run)


# ---------------------------------------------------------------------------------------------------------
# the ledger
# ---------------------------------------------------------------------------------------------------------


def _ledger(value: JSONValue | None) -> dict[str, Any]:
    document = dict(value) if isinstance(value, dict) else {}
    drills = document.get("drills")
    document["drills"] = {
        key: dict(entry)
        for key, entry in (drills.items() if isinstance(drills, dict) else ())
        if isinstance(entry, dict)
    }
    swept = document.get("swept")
    document["swept"] = [name for name in swept if isinstance(name, str)] if isinstance(swept, list) else []
    return document


class DrillLedger:
    """The drills that have not ended and the scratch targets they may have created (state store key
    :data:`LEDGER_KEY`). Every change is one atomic read-modify-write. Calls the state store; raises its
    errors."""

    def __init__(self, store: StateStore, clock: Clock = utcnow) -> None:
        self.store, self.clock = store, clock

    def __repr__(self) -> str:
        return f"DrillLedger({self.store!r})"

    def _change(self, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        def apply(current: JSONValue | None) -> JSONValue:
            document = _ledger(current)
            fn(document)
            return document

        return _ledger(self.store.update(LEDGER_KEY, apply))

    def owner(self) -> str:
        """This installation's id (created on first use): markers of other installations are not ours."""

        def ensure(document: dict[str, Any]) -> None:
            if not isinstance(document.get("owner"), str) or not document["owner"]:
                document["owner"] = f"inst-{secrets.token_hex(8)}"

        return str(self._change(ensure)["owner"])

    def entries(self) -> dict[str, dict[str, Any]]:
        """The drills that have not ended (plus ended ones whose scratch target was left), by drill id."""
        drills: dict[str, dict[str, Any]] = _ledger(self.store.get(LEDGER_KEY))["drills"]
        return drills

    def begin(self, drill_id: str, **facts: str | None) -> None:
        """Record a drill that is about to start (before ``drill.started`` is audited)."""

        def add(document: dict[str, Any]) -> None:
            document["drills"][drill_id] = {"drill_id": drill_id, "recorded_at": _iso(self.clock()), **facts}

        self._change(add)

    def scratch(self, drill_id: str, *, kind: str, name: str, location: str, target: str | None) -> None:
        """Record the scratch target a drill is about to create (before creating it)."""

        def add(document: dict[str, Any]) -> None:
            entry = document["drills"].setdefault(
                drill_id, {"drill_id": drill_id, "recorded_at": _iso(self.clock())}
            )
            entry["scratch"] = {
                "kind": kind,
                "name": name,
                "location": location,
                "recorded_at": _iso(self.clock()),
            }
            if target is not None:
                entry["target"] = target

        self._change(add)

    def scratch_removed(self, drill_id: str) -> None:
        """The drill's scratch target is confirmed gone."""

        def drop(document: dict[str, Any]) -> None:
            entry = document["drills"].get(drill_id)
            if entry is not None:
                entry.pop("scratch", None)

        self._change(drop)

    def end(self, drill_id: str, status: str) -> None:
        """The drill's outcome is audited: forget it, unless its scratch target is still recorded (then it
        stays, marked ended, for a later sweep)."""

        def finish(document: dict[str, Any]) -> None:
            entry = document["drills"].get(drill_id)
            if entry is None:
                return
            if entry.get("scratch"):
                entry["ended"] = {"status": status, "at": _iso(self.clock())}
            else:
                del document["drills"][drill_id]

        self._change(finish)

    def forget(self, drill_id: str) -> None:
        self._change(lambda document: document["drills"].pop(drill_id, None))

    def claim(self, drill_id: str, recorded_at: object) -> dict[str, Any] | None:
        """Remove the entry when it is still the one the caller saw; return it (None: another sweep, or the
        drill itself, got there first)."""
        claimed: list[dict[str, Any]] = []

        def take(document: dict[str, Any]) -> None:
            claimed.clear()  # the store may re-run this after a lost race: only the committed run counts
            entry = document["drills"].get(drill_id)
            if entry is not None and entry.get("recorded_at") == recorded_at:
                claimed.append(document["drills"].pop(drill_id))

        self._change(take)
        return claimed[0] if claimed else None

    def claim_name(self, name: str) -> bool:
        """Claim a marked scratch database found without an entry; False when another sweep did."""
        won: list[bool] = []

        def take(document: dict[str, Any]) -> None:
            won.clear()  # the store may re-run this after a lost race: only the committed run counts
            if name not in document["swept"]:
                document["swept"] = [*document["swept"], name][-SWEPT_KEPT:]
                won.append(True)

        self._change(take)
        return bool(won)

    def release_name(self, name: str) -> None:
        def release(document: dict[str, Any]) -> None:
            document["swept"] = [item for item in document["swept"] if item != name]

        self._change(release)


# ---------------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    """One abandoned (or young) drill or scratch target the sweep found."""

    drill_id: str | None
    environment: str | None
    target: str | None
    kind: str | None
    scratch: str | None
    age_seconds: float
    run: str | None = None
    orphaned_start: bool = False
    """The drill never ended: its ``drill.started`` audit record has no outcome."""
    scratch_removed: bool | None = None
    found_by: str = "ledger"

    def describe(self) -> str:
        what = f"scratch {self.kind} {self.scratch}" if self.scratch else "no scratch target"
        drill = f"drill {self.drill_id or '?'}" + (" (never ended)" if self.orphaned_start else "")
        age = f"{self.age_seconds / 3600:.2f} h old"
        return f"{drill} of {self.environment or '?'}/{self.target or '?'}: {what}, {age}"

    def audit_details(self, threshold_seconds: float) -> dict[str, Any]:
        return {
            "drill_id": self.drill_id,
            "environment": self.environment,
            "target": self.target,
            "kind": self.kind,
            "scratch": self.scratch,
            "age_seconds": round(self.age_seconds, 3),
            "threshold_seconds": threshold_seconds,
            "created_by_run": self.run,
            "orphaned_started": self.drill_id if self.orphaned_start else None,
            "scratch_removed": self.scratch_removed,
            "found_by": self.found_by,
        }


@dataclass(frozen=True)
class SweepReport:
    """What one sweep found: removed and audited (``abandoned``), left alone because a drill may still be
    running (``young``), named like a scratch database but not ours (``foreign``), and what failed."""

    threshold_seconds: float
    abandoned: tuple[Leftover, ...] = ()
    young: tuple[Leftover, ...] = ()
    foreign: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.abandoned or self.young or self.foreign or self.problems)

    def lines(self) -> list[str]:
        """One line per finding, for the flow's log and the drill's notes."""
        hours = f"{self.threshold_seconds / 3600:.2f} h"
        lines = [f"abandoned (older than {hours}), removed: {item.describe()}" for item in self.abandoned]
        lines += [
            f"left alone (younger than {hours}, may be running): {item.describe()}" for item in self.young
        ]
        if self.foreign:
            lines.append(
                f"left alone, not created by this installation's drills: {', '.join(self.foreign[:10])}"
                + (f" and {len(self.foreign) - 10} more" if len(self.foreign) > 10 else "")
            )
        lines += [f"sweep problem: {problem}" for problem in self.problems]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold_seconds": self.threshold_seconds,
            "abandoned": [item.audit_details(self.threshold_seconds) for item in self.abandoned],
            "young": [item.audit_details(self.threshold_seconds) for item in self.young],
            "foreign": list(self.foreign),
            "problems": list(self.problems),
        }


@dataclass
class _Sweep:
    services: DrillServices
    ledger: DrillLedger
    owner: str
    threshold: float
    now: datetime
    abandoned: list[Leftover] = field(default_factory=list)
    young: list[Leftover] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def report(self) -> SweepReport:
        return SweepReport(
            self.threshold,
            tuple(self.abandoned),
            tuple(self.young),
            tuple(self.foreign),
            tuple(self.problems),
        )


def sweep_abandoned(
    services: DrillServices,
    environment: str,
    ledger: DrillLedger,
    *,
    owner: str,
    older_than_seconds: float = DRILL_TIMEOUT_SECONDS,
    now: datetime | None = None,
) -> SweepReport:
    """Remove and audit (``drill.abandoned``) the drills and scratch targets of this installation older
    than ``older_than_seconds``; report younger ones and foreign look-alikes without touching them. Never
    raises for what it cannot do (each failure is a line of the report; the next sweep tries again).

    Calls the state store, the audit log, the catalog, the drill PostgreSQL server of ``environment`` and of
    each recorded scratch database, Vault and the local file system.
    """
    sweep = _Sweep(services, ledger, owner, float(older_than_seconds), now or utcnow())
    try:
        entries = ledger.entries()
    except EnvstewardError as exc:
        return SweepReport(sweep.threshold, problems=(f"the drill ledger could not be read: {exc}",))
    for drill_id, entry in sorted(entries.items()):
        try:
            _sweep_entry(sweep, drill_id, entry)
        except EnvstewardError as exc:
            sweep.problems.append(f"drill {drill_id}: {exc}")
    known = {
        str(entry["scratch"].get("name"))
        for entry in entries.values()
        if isinstance(entry.get("scratch"), dict)
    }
    try:
        _sweep_server(sweep, environment, known)
    except EnvstewardError as exc:
        sweep.problems.append(f"the drill server of {environment} could not be swept: {exc}")
    try:
        _sweep_clusters(sweep, known)
    except (EnvstewardError, OSError) as exc:
        sweep.problems.append(f"the scratch clusters under drill-scratch could not be swept: {exc}")
    return sweep.report()


def _sweep_entry(sweep: _Sweep, drill_id: str, entry: dict[str, Any]) -> None:
    recorded = _when(entry.get("recorded_at"))
    if recorded is None:
        raise ConfigurationError(
            f"state {LEDGER_KEY}: the entry of drill {drill_id} has no valid recorded_at"
        )
    scratch = entry.get("scratch") if isinstance(entry.get("scratch"), dict) else None
    age = (sweep.now - recorded).total_seconds()
    leftover = Leftover(
        drill_id=drill_id,
        environment=_text(entry.get("environment")),
        target=_text(entry.get("target")),
        kind=_text(scratch.get("kind")) if scratch else None,
        scratch=_text(scratch.get("name")) if scratch else None,
        age_seconds=age,
        run=_text(entry.get("run")),
        orphaned_start=not entry.get("ended"),
    )
    if age < sweep.threshold:
        sweep.young.append(leftover)
        return
    removed = _remove_recorded(sweep.services, drill_id, scratch, leftover.environment) if scratch else None
    if removed is False:
        raise ConflictError(f"scratch target {leftover.scratch} is still there after removal", system="drill")
    if sweep.ledger.claim(drill_id, entry.get("recorded_at")) is None:
        return  # another sweep (or the drill itself) got there first: it reports it
    # claimed, then audited: a sweep killed in between loses the report (at most once, never twice)
    leftover = replace(leftover, scratch_removed=removed)
    _audit(sweep, leftover)
    if leftover.orphaned_start and leftover.environment:
        _save_abandoned(sweep, leftover, entry)
    sweep.abandoned.append(leftover)


def _sweep_server(sweep: _Sweep, environment: str, known: set[str]) -> None:
    """Marked databases of this installation on ``environment``'s drill server that no entry names."""
    env = sweep.services.catalog().environment(environment)
    spec = env.drill
    if spec is None or spec.server_dsn is None:
        return
    server = _server(sweep.services, spec.server_dsn, environment)
    for name, comment in server.databases_with_prefix(SCRATCH_PREFIX):
        if name in known:
            continue
        marker = ScratchMarker.parse(comment, name)
        if marker is None or marker.owner != sweep.owner:
            sweep.foreign.append(name)
            continue
        leftover = _old_enough(sweep, marker, "postgres", name)
        if leftover is None:
            continue
        if not sweep.ledger.claim_name(name):
            continue
        try:
            server.drop_database(name, force=True, missing_ok=True)
            gone = not server.database_exists(name)
        except EnvstewardError as exc:
            sweep.ledger.release_name(name)
            sweep.problems.append(f"scratch database {name}: {exc}")
            continue
        leftover = replace(leftover, scratch_removed=gone)
        _audit(sweep, leftover)
        sweep.abandoned.append(leftover)


def _server(services: DrillServices, server_dsn: str, environment: str | None) -> PostgresClient:
    """A client of a drill server, with the password of ``environment``'s drill settings (none when the
    environment is gone from the catalog). Raises the secret store's errors."""
    from envsteward.adapters.postgres import PostgresClient

    environments = services.catalog().environments
    spec = environments[environment].drill if environment and environment in environments else None
    password = services.resolve_secret(spec.password) if spec is not None and spec.password else None
    return PostgresClient(server_dsn, password=password, connect_timeout=10)


def _remove_recorded(
    services: DrillServices, drill_id: str, scratch: dict[str, Any], environment: str | None
) -> bool:
    """Remove the scratch target an entry records (only what is certainly that drill's); True when gone.
    Raises ConfigurationError for an entry that does not name one of envsteward's scratch targets,
    ConflictError for a database carrying another marker, and the system's errors."""
    kind, name, location = (_text(scratch.get(key)) for key in ("kind", "name", "location"))
    if not name or not location or not name.startswith(SCRATCH_PREFIX) or "/" in name:
        raise ConfigurationError(f"state {LEDGER_KEY}: drill {drill_id} records no valid scratch target")
    if kind == "postgres":
        server = _server(services, location, environment)
        found = dict(server.databases_with_prefix(name))
        if name in found:
            comment = found[name]
            marker = ScratchMarker.parse(comment, name)
            # no comment: killed between CREATE DATABASE and COMMENT; the entry, written first, names it
            if comment is not None and (marker is None or marker.drill_id != drill_id):
                raise ConflictError(f"database {name} carries another marker: left alone", system="drill")
            server.drop_database(name, force=True, missing_ok=True)
        return not server.database_exists(name)
    if kind == "vault_kv":
        from envsteward.drill.scratch import VaultKVScratch

        vault = VaultKVScratch(services.vault_client(), location, name)
        vault.created = True
        return vault.teardown()
    if kind == "pitr_cluster":
        return _remove_cluster(services, drill_id, Path(location), name)
    if kind in ("sqlite", "config"):
        from envsteward.drill.scratch import FileScratch

        folder = Path(location)
        if folder.name != name or folder.parent != services.settings.home / "drill-scratch":
            raise ConfigurationError(
                f"state {LEDGER_KEY}: drill {drill_id} records a folder outside drill-scratch"
            )
        files = FileScratch(kind, folder)
        files.created = True
        return files.teardown()
    raise ConfigurationError(
        f"state {LEDGER_KEY}: drill {drill_id} records a scratch target of kind {kind!r}"
    )


def _remove_cluster(services: DrillServices, drill_id: str, folder: Path, name: str) -> bool:
    """Stop and remove the scratch cluster of a PITR drill (only in ``<home>/drill-scratch``, only when its
    marker is this drill's or it has none yet). Raises ConfigurationError / ConflictError."""
    from envsteward.drill.pitr_scratch import MARKER_FILE, remove_cluster_folder

    if folder.name != name or folder.parent != _scratch_root(services):
        raise ConfigurationError(
            f"state {LEDGER_KEY}: drill {drill_id} records a folder outside drill-scratch"
        )
    marker_file = folder / MARKER_FILE
    if marker_file.exists():
        marker = ScratchMarker.parse(marker_file.read_text(errors="replace").strip(), name)
        if marker is None or marker.drill_id != drill_id:
            raise ConflictError(
                f"scratch cluster {folder} carries another marker: left alone", system="drill"
            )
    return remove_cluster_folder(folder)


def _scratch_root(services: DrillServices) -> Path:
    return Path(services.settings.home).resolve() / "drill-scratch"


def _sweep_clusters(sweep: _Sweep, known: set[str]) -> None:
    """Scratch clusters of PITR drills (folders with a marker file) that no ledger entry names: those of
    this installation older than the threshold are stopped and removed; others are reported."""
    from envsteward.drill.pitr_scratch import MARKER_FILE, remove_cluster_folder

    root = _scratch_root(sweep.services)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        name = folder.name
        marker_file = folder / MARKER_FILE
        if name in known or not name.startswith(SCRATCH_PREFIX) or not marker_file.is_file():
            continue
        marker = ScratchMarker.parse(marker_file.read_text(errors="replace").strip(), name)
        if marker is None or marker.owner != sweep.owner:
            sweep.foreign.append(str(folder))
            continue
        leftover = _old_enough(sweep, marker, "pitr_cluster", name)
        if leftover is None:
            continue
        if not sweep.ledger.claim_name(name):
            continue
        gone = remove_cluster_folder(folder)
        if not gone:
            sweep.ledger.release_name(name)
            sweep.problems.append(f"scratch cluster {folder}: could not be stopped or removed")
            continue
        leftover = replace(leftover, scratch_removed=True)
        _audit(sweep, leftover)
        sweep.abandoned.append(leftover)


def _old_enough(sweep: _Sweep, marker: ScratchMarker, kind: str, name: str) -> Leftover | None:
    """The leftover a marker names, when it is older than the sweep's threshold; a younger one (maybe a
    drill still running) is noted in ``sweep.young`` and None is returned."""
    age = (sweep.now - marker.created_at).total_seconds()
    leftover = Leftover(
        drill_id=marker.drill_id,
        environment=marker.environment,
        target=None,
        kind=kind,
        scratch=name,
        age_seconds=age,
        run=marker.run,
        found_by="marker",
    )
    if age < sweep.threshold:
        sweep.young.append(leftover)
        return None
    return leftover


def _audit(sweep: _Sweep, leftover: Leftover) -> None:
    sweep.services.audit_log().append(
        ACTION,
        target=f"{leftover.environment or '?'}/{leftover.target or '*'}",
        environment=leftover.environment,
        details=leftover.audit_details(sweep.threshold),
    )


def _save_abandoned(sweep: _Sweep, leftover: Leftover, entry: dict[str, Any]) -> None:
    """The history record of a drill that never ended (status ``abandoned``)."""
    assert leftover.drill_id is not None
    assert leftover.environment is not None
    started = _when(entry.get("started_at")) or _when(entry.get("recorded_at")) or sweep.now
    where = f"scratch {leftover.scratch} removed" if leftover.scratch else "it had created no scratch target"
    record = DrillRecord(
        drill_id=leftover.drill_id,
        environment=leftover.environment,
        target=leftover.target,
        kind=leftover.kind,
        region=_text(entry.get("region")) or "dr",
        store="",
        requested=_text(entry.get("requested")) or "",
        started_at=started,
        finished_at=sweep.now,
        status=DrillStatus.ABANDONED,
        scratch=leftover.scratch,
        scratch_removed=leftover.scratch_removed,
        error=(
            f"the drill never ended (killed?); found by a sweep after "
            f"{leftover.age_seconds / 3600:.2f} h; {where}"
        ),
    )
    try:
        save_drill(sweep.services.state_store(), record)
    except EnvstewardError as exc:
        sweep.problems.append(f"drill {leftover.drill_id}: audited, but not added to the history: {exc}")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


__all__ = [
    "ACTION",
    "LEDGER_KEY",
    "MARKER_TAG",
    "DrillLedger",
    "Leftover",
    "ScratchMarker",
    "SweepReport",
    "sweep_abandoned",
]
