"""The drill's phases: restore a backup from the DR region into a scratch target, verify it, measure RTO/RPO.

Each phase is one function over a :class:`Drill` (the state of one drill while it runs), timed with the
drill's clock (tests inject it); the drill flow runs each as its own task (retried and timed on its own),
and :func:`run_drill` runs the same phases in this process (the CLI):

1. ``prepare`` — resolve the environment's drill settings, the backup target, the region's store and the
   scratch target (nothing is created yet).
2. ``choose`` — pick the backup (:func:`~envsteward.drill.decisions.choose_backup`) among the complete
   backups of the target IN THE DRILLED REGION'S STORE (a backup without a replica cannot be chosen from
   ``dr``), and measure RPO.
3. ``fetch_verify`` — read the whole backup, authenticate every chunk and the manifest's MAC, check sizes
   and digests (:func:`~envsteward.backup.pipeline.verify_backup`). An integrity failure ends the drill
   as failed here: nothing is created or restored.
4. ``restore`` — create the scratch target, decrypt and stream the backup into it (a second pass that
   authenticates every chunk again).
5. ``verify_data`` — row counts and per-table checksums (or every secret) against the manifest.
6. ``health`` — the environment's checks pointed at the restored target, and the catalog's smoke queries.
   Its end is "verified ready": RTO = ready - drill start.
7. ``teardown`` — ALWAYS (callers run it in ``finally``): remove the scratch target (only if this drill
   created it) and confirm it is gone. A scratch target left behind fails the drill.

The first phase that fails ends the drill (the phases after it do not run; teardown does). Then
:func:`finish_drill` gives the verdict (:func:`~envsteward.drill.decisions.verdict`): failed /
target_missed / passed. A drill that restored and verified its backup (passed or target_missed) marks it
verified-by-drill in the store it was read from, so retention keeps it. Audit: ``drill.started`` before
anything happens, then one of ``drill.passed``, ``drill.target_missed``, ``drill.failed``.

Crash leftovers (:mod:`.abandoned`): :func:`start_drill` first sweeps drills killed longer ago than the
drill's total timeout (their scratch targets removed, ``drill.abandoned`` audited, an ``abandoned`` history
record), then records the drill in the ledger BEFORE auditing ``drill.started``; ``restore`` records the
scratch target BEFORE creating it (and marks a PostgreSQL database with a comment); teardown and
:func:`finish_drill` clear those records only once the target is gone / the outcome is audited.

External calls (through ``services``, a :class:`~envsteward.drill.ports.DrillServices`): the catalog,
the object store of the region, the backup's key provider (local key, Vault transit, KMS), the drill
PostgreSQL server / Vault / local files, the audit log.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.backup.drill_marks import mark_verified_by_drill
from envsteward.backup.manifest import Manifest
from envsteward.backup.pipeline import list_backups, read_manifest, restore_backup, verify_backup
from envsteward.backup.progress import ProgressCallback
from envsteward.drill.abandoned import DrillLedger, ScratchMarker, SweepReport, sweep_abandoned
from envsteward.drill.decisions import (
    LATEST,
    RANDOM,
    REGION_DR,
    BackupCandidate,
    check_targets,
    choose_backup,
    measure_rpo,
    new_drill_id,
    newest,
    parse_region,
    parse_request,
    scratch_name,
    verdict,
)
from envsteward.drill.limits import DRILL_TIMEOUT_SECONDS
from envsteward.drill.model import (
    PHASE_ORDER,
    DrillRecord,
    DrillStatus,
    DrillTargets,
    PhaseName,
    PhaseTiming,
    StepResult,
    Verification,
)
from envsteward.drill.scratch import FileScratch, PostgresScratch, Scratch, VaultKVScratch
from envsteward.errors import ConfigurationError, ConflictError, EnvstewardError, IntegrityError

if TYPE_CHECKING:
    from envsteward.backup.stores import BackupStores
    from envsteward.catalog import Catalog
    from envsteward.catalog.models import BackupTarget, DrillSpec, EnvironmentSpec
    from envsteward.drill.ports import DrillServices
    from envsteward.ports import KeyProvider, ObjectStore

Clock = Callable[[], datetime]
SUPPORTED_KINDS = ("postgres", "vault_kv", "sqlite", "config")


def utcnow() -> datetime:
    return datetime.now(UTC)


def safe_error(exc: BaseException) -> str:
    """envsteward errors carry safe messages (never secret values); anything else only its type name."""
    if isinstance(exc, EnvstewardError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__} (unexpected error; see the logs of the run)"


class DrillStepError(Exception):
    """A drill phase failed for a reason the drill itself found (no backup, data differ...). Not an
    envsteward error, so never transient: retrying cannot help."""


@dataclass(frozen=True)
class DrillSetup:
    """What ``prepare`` resolved."""

    environment: str
    target: BackupTarget
    spec: DrillSpec
    targets: DrillTargets
    region: str
    store: ObjectStore
    store_label: str
    stores: BackupStores
    catalog: Catalog
    pitr: bool = False
    """Restore the newest base backup plus the archived WAL into a scratch cluster (a postgres target
    with ``pitr.enabled``, drilling ``latest``, ``random`` or a base backup id)."""


def drill_spec(env: EnvironmentSpec) -> DrillSpec:
    """The environment's drill settings, or the defaults (RTO 15 min, RPO 5 min, no drill server)."""
    from envsteward.catalog.models import DrillSpec

    return env.drill if env.drill is not None else DrillSpec()


def drill_targets(spec: DrillSpec) -> DrillTargets:
    return DrillTargets(
        rto_seconds=spec.rto_target_minutes * 60.0, rpo_seconds=spec.rpo_target_minutes * 60.0
    )


def pick_target(env: EnvironmentSpec, spec: DrillSpec, override: str | None = None) -> BackupTarget:
    """The backup target to drill: ``override``, else ``drill.target``, else the first postgres target,
    else the first target. Raises ConfigurationError naming the environment's targets."""
    names = [item.name for item in env.backups]
    wanted = override or spec.target
    if wanted is not None:
        found = next((item for item in env.backups if item.name == wanted), None)
        if found is None:
            known = ", ".join(names) or "none"
            raise ConfigurationError(
                f"environment {env.name!r} has no backup target {wanted!r} (known: {known})"
            )
        return found
    if not env.backups:
        raise ConfigurationError(f"environment {env.name!r} has no backup targets: nothing to drill")
    return next((item for item in env.backups if item.kind == "postgres"), env.backups[0])


def uses_pitr(target: BackupTarget, environment: str, requested: str) -> bool:
    """Does the drill restore by point-in-time recovery? A postgres target with ``pitr.enabled``, drilling
    ``latest``/``random`` or a base backup id (a logical dump's id still drills that dump). Pure."""
    from envsteward.pitr.walnames import archive_prefix

    if target.kind != "postgres" or not target.pitr.enabled:
        return False
    return requested in (LATEST, RANDOM) or requested.startswith(archive_prefix(environment, target.name))


class Drill:
    """One drill while it runs: what its phases resolved and found, and how each phase ended.

    A plain class on purpose: the drill flow hands the same object from one phase task to the next (in
    memory; no task persists it), and retries of a phase replace that phase's timing and findings instead
    of adding to them. :func:`finish_drill` turns it into the frozen :class:`DrillRecord`.
    """

    def __init__(
        self,
        *,
        drill_id: str,
        short_id: str,
        env_spec: EnvironmentSpec,
        stores: BackupStores,
        region: str,
        requested: str,
        target: str | None,
        started: datetime,
        clock: Clock,
        ledger: DrillLedger | None = None,
        owner: str = "",
        run: str | None = None,
        sweep: SweepReport | None = None,
    ) -> None:
        self.drill_id, self.short_id = drill_id, short_id
        self.env_spec, self.stores, self.region = env_spec, stores, region
        self.requested, self.target, self.started, self.clock = requested, target, started, clock
        self.ledger, self.owner, self.run = ledger, owner, run
        self.sweep = sweep
        self.scratch_name: str | None = None
        self.setup: DrillSetup | None = None
        self.scratch: Scratch | None = None
        self.backup_id: str | None = None
        self.key_provider: KeyProvider | None = None
        self.manifest: Manifest | None = None
        self.restore_report: Any = None
        self.ready_at: datetime | None = None
        self.scratch_removed: bool | None = None
        self.facts: dict[str, Any] = {}
        self._starts: dict[PhaseName, datetime] = {}
        self._timings: dict[PhaseName, PhaseTiming] = {}
        self._verifications: dict[PhaseName, list[Verification]] = {}

    def __repr__(self) -> str:
        return f"Drill({self.drill_id!r}, environment={self.env_spec.name!r})"

    @contextmanager
    def phase(self, name: PhaseName) -> Iterator[None]:
        """Time one phase and record how it ended; an error is recorded with a safe message and re-raised.
        A retried phase keeps its first start and replaces its earlier outcome."""
        started = self._starts.setdefault(name, self.clock())
        self._verifications.pop(name, None)
        try:
            yield
        except BaseException as exc:
            message = str(exc) if isinstance(exc, DrillStepError) else safe_error(exc)
            self._timings[name] = PhaseTiming(name, started, self.clock(), StepResult.FAILED, message)
            raise
        self._timings[name] = PhaseTiming(name, started, self.clock(), StepResult.OK)

    def found(self, name: PhaseName, rows: list[Verification]) -> None:
        self._verifications[name] = rows

    @property
    def phases(self) -> tuple[PhaseTiming, ...]:
        return tuple(self._timings[name] for name in PHASE_ORDER if name in self._timings)

    @property
    def verifications(self) -> tuple[Verification, ...]:
        return tuple(row for name in PHASE_ORDER for row in self._verifications.get(name, ()))

    @property
    def failed(self) -> PhaseTiming | None:
        """The first phase (in runbook order) that ended failed, or None."""
        return next((item for item in self.phases if item.result is StepResult.FAILED), None)

    def _setup(self) -> DrillSetup:
        if self.setup is None:
            raise DrillStepError("the drill was not prepared")
        return self.setup

    def _scratch(self) -> Scratch:
        if self.scratch is None:
            raise DrillStepError("the drill has no scratch target")
        return self.scratch


def start_drill(
    services: DrillServices,
    environment: str,
    backup: str = "latest",
    region: str = REGION_DR,
    *,
    target: str | None = None,
    clock: Clock | None = None,
    token: str | None = None,
    stores: BackupStores | None = None,
    run: str | None = None,
    abandoned_after_seconds: float = DRILL_TIMEOUT_SECONDS,
) -> Drill:
    """Sweep abandoned drills (:func:`~envsteward.drill.abandoned.sweep_abandoned`: older than
    ``abandoned_after_seconds``), check the request, name the drill, record it in the drill ledger and
    audit ``drill.started``. Nothing of this drill is read or created yet. ``run``: the run that drills
    (a flow run id; default: this process), kept in the ledger and the scratch marker.

    Raises CatalogError for an unknown environment, ConfigurationError for a malformed ``backup`` or
    ``region``, the state store's errors when the drill cannot be recorded in the ledger, and the audit
    log's errors when ``drill.started`` cannot be recorded. Calls the catalog, the backup stores'
    settings, the state store, the audit log, and what the sweep calls.
    """
    now = clock or utcnow
    requested = parse_request(backup)
    env_spec = services.catalog().environment(environment)
    if stores is None:
        from envsteward.backup.stores import backup_stores

        stores = backup_stores(services)
    region_name = parse_region(region, dr_region=stores.dr_region, primary_region=stores.primary_region)
    ledger = DrillLedger(services.state_store())
    owner = ledger.owner()
    sweep = sweep_abandoned(
        services, environment, ledger, owner=owner, older_than_seconds=abandoned_after_seconds
    )
    started = now()
    drill_id, short_id = new_drill_id(started, token)
    run = run or process_label()
    wanted = target or (env_spec.drill.target if env_spec.drill else None)
    # recorded BEFORE drill.started: a drill killed from here on leaves an entry the next sweep finds
    ledger.begin(
        drill_id,
        environment=environment,
        target=wanted,
        run=run,
        started_at=started.isoformat(),
        requested=requested,
        region=region_name,
    )
    try:
        services.audit_log().append(
            "drill.started",
            target=f"{environment}/{wanted or '*'}",
            environment=environment,
            details={"drill_id": drill_id, "requested": requested, "region": region_name, "run": run},
        )
    except BaseException:
        with contextlib.suppress(EnvstewardError):
            ledger.forget(drill_id)
        raise
    return Drill(
        drill_id=drill_id,
        short_id=short_id,
        env_spec=env_spec,
        stores=stores,
        region=region_name,
        requested=requested,
        target=target,
        started=started,
        clock=now,
        ledger=ledger,
        owner=owner,
        run=run,
        sweep=sweep,
    )


def process_label() -> str:
    """This process, as the run that drills when no flow run is given: ``pid 123 on host``."""
    import os
    import socket

    return f"pid {os.getpid()} on {socket.gethostname()}"


# ---------------------------------------------------------------------------------------------------------
# phases: each raises on failure (after recording it in the drill); the flow runs each as its own task
# ---------------------------------------------------------------------------------------------------------


def prepare(services: DrillServices, drill: Drill) -> None:
    """Resolve the target, the region's store and the scratch target (nothing is created). Raises
    DrillStepError / ConfigurationError for an impossible drill. Reads the catalog and settings."""
    with drill.phase(PhaseName.PREPARE):
        setup = _prepare(services, drill.env_spec, drill.stores, drill.region, drill.target)
        if uses_pitr(setup.target, setup.environment, drill.requested):
            setup = replace(setup, pitr=True)
        drill.setup = setup
        drill.scratch_name = scratch_name(drill.env_spec.name, drill.short_id)
        if setup.pitr:
            from envsteward.drill.pitr_phases import pitr_scratch

            assert setup.target.kind == "postgres"
            drill.scratch = pitr_scratch(
                services,
                setup.environment,
                setup.target,
                setup.spec,
                region=setup.region,
                name=drill.scratch_name,
            )
        else:
            drill.scratch = _scratch_for(services, setup, drill.scratch_name)


def choose(drill: Drill, rng: random.Random | None = None) -> str:
    """Pick the backup (:func:`~envsteward.drill.decisions.choose_backup`) and measure RPO; the backup id.
    Raises DrillStepError when nothing can be chosen. Lists the region's object store."""
    with drill.phase(PhaseName.CHOOSE):
        setup = drill._setup()
        if setup.pitr:
            from envsteward.drill.pitr_phases import choose_base_backup

            drill.backup_id = choose_base_backup(
                setup.store,
                environment=setup.environment,
                target=setup.target.name,
                where=f"the {setup.region} store ({setup.store_label})",
                requested=drill.requested,
                rng=rng,
                facts=drill.facts,
            )
        else:
            drill.backup_id = _choose(setup, drill.requested, drill.started, rng, drill.facts)
        return drill.backup_id


def fetch_verify(services: DrillServices, drill: Drill, progress: ProgressCallback | None = None) -> None:
    """Read the whole backup and authenticate every chunk (nothing is written). Raises IntegrityError.
    Calls the object store and the backup's key provider."""
    with drill.phase(PhaseName.FETCH_VERIFY):
        setup, backup_id = drill._setup(), _chosen(drill)
        manifest = read_manifest(setup.store, backup_id)
        from envsteward.backup.restore import key_provider_for

        drill.key_provider = key_provider_for(services, manifest, setup.target)
        try:
            drill.manifest = verify_backup(setup.store, backup_id, drill.key_provider, progress)
        except IntegrityError as exc:
            if backup_id in str(exc):
                raise
            raise IntegrityError(f"backup {backup_id} failed verification: {exc}") from None


def restore(drill: Drill, progress: ProgressCallback | None = None) -> None:
    """Create the scratch target and stream the backup into it (authenticating every chunk again). A
    retry first removes what the failed attempt created. Calls the object store, the key provider and the
    scratch system."""
    with drill.phase(PhaseName.RESTORE):
        setup, scratch, backup_id = drill._setup(), drill._scratch(), _chosen(drill)
        if drill.key_provider is None:
            raise DrillStepError("the backup was not verified: nothing is restored from it")
        if scratch.created and not scratch.teardown():
            raise DrillStepError(f"scratch target {scratch.name} of a failed attempt could not be removed")
        scratch.created = False
        _create_scratch(drill, setup, scratch)
        if setup.pitr:
            from envsteward.drill.pitr_phases import restore_pitr

            drill.restore_report, measured = restore_pitr(
                scratch,
                setup.store,
                drill.key_provider,
                backup_id,
                drill_started=drill.started,
                rpo_target_seconds=setup.targets.rpo_seconds,
                clock=drill.clock,
            )
            drill.facts.update(measured)
            return
        with scratch.restore_target().begin() as writer:
            # verified completely in fetch_verify; this pass authenticates every chunk again as it restores
            restore_backup(
                setup.store,
                backup_id,
                drill.key_provider,
                scratch.wrap_sink(writer.write),
                progress,
                verify_first=False,
            )
            drill.restore_report = writer.finish()


_TABLE_KINDS = frozenset({"postgres", "sqlite"})
"""Scratch kinds verified by per-table row counts and checksums from the manifest."""


def verify_data(drill: Drill) -> None:
    """Row counts and per-table checksums (or every secret) of the restored data against the manifest.
    Raises DrillStepError when they differ or cannot be compared (fail safe). Queries the scratch target."""
    with drill.phase(PhaseName.VERIFY_DATA):
        scratch, manifest = drill._scratch(), drill.manifest
        if manifest is None or drill.restore_report is None:
            raise DrillStepError("nothing was restored: there is nothing to verify")
        setup, backup_id, keys = drill._setup(), _chosen(drill), drill.key_provider
        if keys is not None:
            # a scratch may read the dump again to re-check a table order-independently (PostgreSQL v4)
            scratch.read_dump = lambda sink: restore_backup(
                setup.store, backup_id, keys, sink, verify_first=False
            )
        rows = scratch.verify(manifest, drill.restore_report)
        drill.found(PhaseName.VERIFY_DATA, rows)
        if scratch.kind in _TABLE_KINDS and manifest.tables is None:
            # fail safe: a restore with nothing to compare it to proves nothing about the data
            raise DrillStepError(
                "the backup has no table checksums to verify against (it was made with table_checksums: "
                "false, or by a source that records none): the restored data cannot be verified; enable "
                "table_checksums on the backup target and drill a newer backup"
            )
        bad = [row for row in rows if not row.ok]
        if bad:
            raise DrillStepError(
                f"the restored data does not match the backup's manifest: {len(bad)} of {len(rows)} "
                f"check(s) failed (first: {bad[0].kind} {bad[0].name}: expected {bad[0].expected}, "
                f"found {bad[0].actual})"
            )


def health(drill: Drill) -> None:
    """Health checks and smoke queries against the restored target; its end is "verified ready" (RTO).
    Raises DrillStepError naming the failed checks. Calls the scratch system."""
    with drill.phase(PhaseName.HEALTH):
        if drill.failed is not None or PhaseName.VERIFY_DATA not in {p.name for p in drill.phases}:
            raise DrillStepError("the restored data was not verified: the target is not ready")
        rows = drill._scratch().health()
        drill.found(PhaseName.HEALTH, rows)
        bad = [row for row in rows if not row.ok]
        if bad:
            names = ", ".join(f"{row.kind} {row.name}" for row in bad[:5])
            raise DrillStepError(
                f"{len(bad)} health check(s) / smoke query(ies) failed on the restored target: {names}"
            )
    drill.ready_at = drill.clock()


def _create_scratch(drill: Drill, setup: DrillSetup, scratch: Scratch) -> None:
    """Record the scratch target in the ledger, THEN create it (with its marker): a drill killed at any
    point leaves a record naming what it may have created. Raises ConflictError when the place exists (it
    is not ours: the record is withdrawn), the state store's and the scratch system's errors."""
    name = drill.scratch_name or scratch.name
    if drill.ledger is not None:
        drill.ledger.scratch(
            drill.drill_id, kind=scratch.kind, name=name, location=scratch.location, target=setup.target.name
        )
    marker = ScratchMarker(
        scratch=name,
        drill_id=drill.drill_id,
        environment=setup.environment,
        owner=drill.owner,
        created_at=utcnow(),  # wall clock, whatever the drill's clock: sweeps compare it with theirs
        run=drill.run,
    )
    try:
        scratch.create(marker.encode())
    except ConflictError:
        if drill.ledger is not None:
            drill.ledger.scratch_removed(drill.drill_id)
        raise


def teardown(drill: Drill) -> bool | None:
    """Remove the scratch target if this drill created it and confirm it is gone; None when nothing was
    created (a name collision is not ours to remove). Raises DrillStepError when it is still there, and
    the scratch system's errors. Run it in a ``finally``."""
    scratch = drill.scratch
    if scratch is None or not scratch.created:
        return None
    drill.scratch_removed = False
    with drill.phase(PhaseName.TEARDOWN):
        if not scratch.teardown():
            raise DrillStepError(
                f"scratch target {scratch.name} still exists after teardown: remove it by hand"
            )
        drill.scratch_removed = True
        if drill.ledger is not None:
            # bookkeeping: a stale record only makes a later sweep confirm the target is gone
            with contextlib.suppress(EnvstewardError):
                drill.ledger.scratch_removed(drill.drill_id)
    return True


PHASES: tuple[PhaseName, ...] = (
    PhaseName.PREPARE,
    PhaseName.CHOOSE,
    PhaseName.FETCH_VERIFY,
    PhaseName.RESTORE,
    PhaseName.VERIFY_DATA,
    PhaseName.HEALTH,
)
"""The phases before teardown, in runbook order; the first failure ends the drill."""


def finish_drill(services: DrillServices, drill: Drill) -> DrillRecord:
    """The verdict (:func:`~envsteward.drill.decisions.verdict`) and the frozen record; a drill that verified
    its backup marks it verified-by-drill; audits ``drill.passed`` / ``drill.target_missed`` /
    ``drill.failed``. Never raises for the mark or the audit record (a note / the audit log's own checks
    show them). Calls the object store and the audit log."""
    record = _record(drill)
    setup = drill.setup
    if record.status is not DrillStatus.FAILED and setup is not None and record.backup_id is not None:
        record = _mark(record, setup, record.finished_at)
    _audit_outcome(services, record)
    if drill.ledger is not None:
        # after the outcome is audited: a drill killed before this line is reported abandoned (over-
        # reporting a drill that just ended beats never reporting one that did not)
        try:
            drill.ledger.end(drill.drill_id, record.status.value)
        except EnvstewardError as exc:
            record = record.with_updates(
                notes=(
                    *record.notes,
                    f"could not update the drill ledger (a later sweep may report this "
                    f"drill abandoned): {exc}",
                )
            )
    return record


def run_drill(
    services: DrillServices,
    environment: str,
    backup: str = "latest",
    region: str = REGION_DR,
    *,
    target: str | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    token: str | None = None,
    stores: BackupStores | None = None,
    progress: ProgressCallback | None = None,
    abandoned_after_seconds: float = DRILL_TIMEOUT_SECONDS,
) -> DrillRecord:
    """Run one DR drill of ``environment`` in this process (the CLI; the flow runs the same phases as
    tasks) and return its record. ``clock``, ``rng`` and ``token`` are injectable for tests.

    Raises what :func:`start_drill` raises; every failure after that is returned as a failed drill.
    """
    drill = start_drill(
        services,
        environment,
        backup,
        region,
        target=target,
        clock=clock,
        token=token,
        stores=stores,
        abandoned_after_seconds=abandoned_after_seconds,
    )
    steps: dict[PhaseName, Callable[[], object]] = {
        PhaseName.PREPARE: lambda: prepare(services, drill),
        PhaseName.CHOOSE: lambda: choose(drill, rng),
        PhaseName.FETCH_VERIFY: lambda: fetch_verify(services, drill, progress),
        PhaseName.RESTORE: lambda: restore(drill, progress),
        PhaseName.VERIFY_DATA: lambda: verify_data(drill),
        PhaseName.HEALTH: lambda: health(drill),
    }
    try:
        for name in PHASES:
            try:
                steps[name]()
            except Exception:
                if drill.failed is None:  # not a phase's recorded failure: a bug, let it surface
                    raise
                break  # the phase recorded its failure; a drill reports it, it does not crash
    finally:
        with contextlib.suppress(Exception):  # recorded by the teardown phase (scratch_removed False)
            teardown(drill)
    return finish_drill(services, drill)


def _chosen(drill: Drill) -> str:
    if drill.backup_id is None:
        raise DrillStepError("no backup was chosen")
    return drill.backup_id


def _record(drill: Drill) -> DrillRecord:
    """The frozen record of a finished drill, with its verdict."""
    finished = drill.clock()
    setup, scratch, facts, env_spec = drill.setup, drill.scratch, drill.facts, drill.env_spec
    targets = setup.targets if setup is not None else drill_targets(drill_spec(env_spec))
    ready_at = drill.ready_at
    rto_seconds = (ready_at - drill.started).total_seconds() if ready_at is not None else None
    rto, rpo = check_targets(rto_seconds, facts.get("rpo_seconds"), targets)
    failed = drill.failed
    status, reason = verdict(failed is not None, [rto, rpo])
    error = failed.detail if failed is not None else None
    return DrillRecord(
        drill_id=drill.drill_id,
        environment=env_spec.name,
        target=setup.target.name
        if setup
        else (drill.target or (env_spec.drill.target if env_spec.drill else None)),
        kind=setup.target.kind if setup else None,
        region=drill.region,
        store=setup.store_label if setup else "",
        requested=drill.requested,
        started_at=drill.started,
        finished_at=finished,
        status=status,
        backup_id=facts.get("backup_id"),
        choice_reason=str(facts.get("choice_reason", "")),
        backup_consistent_at=facts.get("consistent_at"),
        newest_backup_id=facts.get("newest_backup_id"),
        newest_consistent_at=facts.get("newest_consistent_at"),
        scratch=scratch.name if scratch is not None else None,
        scratch_removed=drill.scratch_removed,
        ready_at=ready_at,
        rto=rto,
        rpo=rpo,
        restore_point_age_seconds=facts.get("restore_point_age_seconds"),
        phases=drill.phases,
        verifications=drill.verifications,
        failed_phase=failed.name if failed is not None else None,
        error=error if error is not None or status is not DrillStatus.FAILED else reason,
        notes=tuple(drill.sweep.lines()) if drill.sweep is not None else (),
        method="pitr" if setup is not None and setup.pitr else "dump",
        recovered_to=facts.get("recovered_to"),
    )


# ---------------------------------------------------------------------------------------------------------
# helpers of the phases
# ---------------------------------------------------------------------------------------------------------


def _prepare(
    services: DrillServices, env: EnvironmentSpec, stores: BackupStores, region: str, override: str | None
) -> DrillSetup:
    from envsteward.backup.stores import describe_store

    spec = drill_spec(env)
    target = pick_target(env, spec, override)
    if target.kind not in SUPPORTED_KINDS:
        raise DrillStepError(
            f"backup target {target.name!r} is of kind {target.kind!r}; drills restore "
            f"{', '.join(SUPPORTED_KINDS)}"
        )
    if region == REGION_DR:
        if stores.dr is None:
            raise DrillStepError(
                "no DR store is configured (storage.dr_bucket): a drill from the DR region is impossible"
            )
        store = stores.dr
    else:
        store = stores.primary
    return DrillSetup(
        environment=env.name,
        target=target,
        spec=spec,
        targets=drill_targets(spec),
        region=region,
        store=store,
        store_label=describe_store(store),
        stores=stores,
        catalog=services.catalog(),
    )


def _scratch_for(services: DrillServices, setup: DrillSetup, name: str) -> Scratch:
    """The scratch target for the setup's kind (not created yet). Raises DrillStepError for missing
    settings, and the secret store's errors for the drill server's password reference."""
    target, spec = setup.target, setup.spec
    if target.kind == "postgres":
        return _postgres_scratch(services, setup, name)
    if target.kind == "vault_kv":
        from envsteward.adapters.vault import split_mount_path

        mount = spec.vault_mount or split_mount_path(target.path)[0]
        return VaultKVScratch(services.vault_client(), mount, name)
    folder = services.settings.home / "drill-scratch" / name
    return FileScratch(target.kind, folder, smoke_queries=spec.smoke_queries)


def _postgres_scratch(services: DrillServices, setup: DrillSetup, name: str) -> PostgresScratch:
    from envsteward.adapters.postgres import dsn_for_database
    from envsteward.health.checks import run_check
    from envsteward.health.runner import context_from_services
    from envsteward.health.specs import PostgresCheck

    spec = setup.spec
    if spec.server_dsn is None:
        raise DrillStepError(
            f"environment {setup.environment!r} has no drill.server_dsn: a postgres drill needs a "
            "PostgreSQL server for its scratch database (never the production server); set it in the catalog"
        )
    password = services.resolve_secret(spec.password) if spec.password is not None else None
    scratch_dsn = dsn_for_database(spec.server_dsn, name)
    env = services.catalog().environment(setup.environment)
    checks = [
        check.model_copy(update={"dsn": scratch_dsn, "password": spec.password})
        for check in env.health_checks
        if isinstance(check, PostgresCheck)
    ] or [PostgresCheck(name="scratch-connect", kind="postgres", dsn=scratch_dsn, query="SELECT 1")]
    context = context_from_services(services, setup.environment)
    return PostgresScratch(
        spec.server_dsn,
        name,
        password=password,
        checks=checks,
        run_check=lambda check: run_check(check, context),
        smoke_queries=spec.smoke_queries,
        smoke_timeout_seconds=spec.smoke_timeout_seconds,
    )


def _candidates(setup: DrillSetup) -> list[BackupCandidate]:
    prefix = f"{setup.environment}/{setup.target.name}/"
    return [
        BackupCandidate(manifest.backup_id, manifest.consistent_at)
        for manifest in list_backups(setup.store, prefix)
        if manifest.environment == setup.environment and manifest.source.name == setup.target.name
    ]


def _kept_ids(setup: DrillSetup, moment: datetime) -> set[str]:
    """The ids retention keeps for the target (prune's plan over both regions, with the safety floor)."""
    from envsteward.backup.prune import catalog_policies, plan_prune

    plan = plan_prune(setup.stores, catalog_policies(setup.catalog), moment)
    for group in plan.groups:
        if group.environment == setup.environment and group.target == setup.target.name:
            return {item.backup_id for item in group.keep}
    return set()


def _choose(
    setup: DrillSetup | None,
    requested: str,
    started: datetime,
    rng: random.Random | None,
    facts: dict[str, Any],
) -> str:
    assert setup is not None
    candidates = _candidates(setup)
    where = f"the {setup.region} store ({setup.store_label})"
    kept: set[str] | None = None
    if requested == RANDOM:
        kept = _kept_ids(setup, started)
    choice = choose_backup(candidates, requested, kept_ids=kept, rng=rng, where=where)
    latest = newest(candidates)
    if latest is not None:
        facts["newest_backup_id"] = latest.backup_id
        facts["newest_consistent_at"] = latest.consistent_at
    if choice.backup_id is None or choice.consistent_at is None:
        raise DrillStepError(choice.reason)
    assert latest is not None
    measure = measure_rpo(started, choice.consistent_at, latest.consistent_at)
    facts.update(
        backup_id=choice.backup_id,
        choice_reason=choice.reason,
        consistent_at=choice.consistent_at,
        rpo_seconds=measure.rpo_seconds,
        restore_point_age_seconds=measure.restore_point_age_seconds,
    )
    return choice.backup_id


def _mark(record: DrillRecord, setup: DrillSetup, at: datetime) -> DrillRecord:
    assert record.backup_id is not None
    try:
        mark_verified_by_drill(setup.store, record.backup_id, record.drill_id, at)
    except EnvstewardError as exc:
        return record.with_updates(
            notes=(*record.notes, f"could not mark the backup verified-by-drill: {exc}")
        )
    return record.with_updates(marked_verified=True)


def audit_details(record: DrillRecord) -> dict[str, Any]:
    """What the audit log keeps about a drill (no verification rows; nothing secret)."""
    document = record.as_json(verifications=False)
    document["verification_failures"] = [
        f"{row.kind} {row.name}" for row in record.verifications if not row.ok and not row.skipped
    ][:20]
    return document


def _audit_outcome(services: DrillServices, record: DrillRecord) -> None:
    action = {
        DrillStatus.PASSED: "drill.passed",
        DrillStatus.TARGET_MISSED: "drill.target_missed",
        DrillStatus.FAILED: "drill.failed",
    }[record.status]
    # the drill's own outcome is what matters; an audit failure shows in the audit log's own checks
    with contextlib.suppress(EnvstewardError):
        services.audit_log().append(
            action,
            target=record.backup_id or record.label(),
            environment=record.environment,
            details=audit_details(record),
        )


__all__ = [
    "PHASES",
    "SUPPORTED_KINDS",
    "Drill",
    "DrillSetup",
    "DrillStepError",
    "audit_details",
    "choose",
    "drill_spec",
    "drill_targets",
    "fetch_verify",
    "finish_drill",
    "health",
    "pick_target",
    "prepare",
    "process_label",
    "restore",
    "run_drill",
    "safe_error",
    "start_drill",
    "teardown",
    "verify_data",
]
