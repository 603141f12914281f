"""The drill engine: restore a backup from the DR region into a scratch target, verify it, measure RTO/RPO.

Steps (each timed with the drill's clock, which tests inject):

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
7. ``teardown`` — ALWAYS, in ``finally``: remove the scratch target (only if this drill created it) and
   confirm it is gone. A scratch target left behind fails the drill.

Then the verdict (:func:`~envsteward.drill.decisions.verdict`): failed / target_missed / passed. A drill
that restored and verified its backup (passed or target_missed) marks it verified-by-drill in the store it
was read from, so retention keeps it. Audit: ``drill.started`` before anything happens, then one of
``drill.passed``, ``drill.target_missed``, ``drill.failed``.

:func:`run_drill` raises only for an unknown environment, a malformed request, or an audit log that cannot
record ``drill.started``; every failure after that is a failed drill, returned as a :class:`DrillRecord`.

External calls (through ``services``): the catalog, the object store of the region, the backup's key
provider (local key, Vault transit, KMS), the drill PostgreSQL server / Vault / local files, the audit log.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from envsteward.backup.drill_marks import mark_verified_by_drill
from envsteward.backup.manifest import Manifest
from envsteward.backup.pipeline import list_backups, read_manifest, restore_backup, verify_backup
from envsteward.backup.progress import ProgressCallback
from envsteward.drill.decisions import (
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
from envsteward.drill.model import (
    DrillRecord,
    DrillStatus,
    DrillTargets,
    PhaseName,
    PhaseTiming,
    StepResult,
    Verification,
)
from envsteward.drill.scratch import FileScratch, PostgresScratch, Scratch, VaultKVScratch
from envsteward.errors import ConfigurationError, EnvstewardError, IntegrityError

if TYPE_CHECKING:
    from envsteward.backup.stores import BackupStores
    from envsteward.catalog import Catalog
    from envsteward.catalog.models import BackupTarget, DrillSpec, EnvironmentSpec
    from envsteward.ports import KeyProvider, ObjectStore
    from envsteward.services import Services

T = TypeVar("T")
Clock = Callable[[], datetime]
SUPPORTED_KINDS = ("postgres", "vault_kv", "sqlite", "config")


def utcnow() -> datetime:
    return datetime.now(UTC)


def safe_error(exc: BaseException) -> str:
    """envsteward errors carry safe messages (never secret values); anything else only its type name."""
    if isinstance(exc, EnvstewardError):
        return str(exc)
    return f"{type(exc).__name__} (unexpected error; see the logs of the run)"


class DrillStepError(Exception):
    """A drill step failed for a reason the drill itself found (no backup, data differ...)."""


@dataclass
class _Run:
    """The mutable state of one drill while it runs (turned into a frozen DrillRecord at the end)."""

    clock: Clock
    phases: list[PhaseTiming] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_phase: PhaseName | None = None
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    setup: DrillSetup | None = None
    scratch: Scratch | None = None
    ready_at: datetime | None = None
    scratch_removed: bool | None = None

    def step(self, name: PhaseName, action: Callable[[], T]) -> T:
        """Run one step, timed. On failure the step and its error are recorded and the error re-raised."""
        started = self.clock()
        try:
            value = action()
        except BaseException as exc:
            message = str(exc) if isinstance(exc, DrillStepError) else safe_error(exc)
            self.phases.append(PhaseTiming(name, started, self.clock(), StepResult.FAILED, message))
            if self.failed_phase is None:
                self.failed_phase, self.error = name, message
            raise
        self.phases.append(PhaseTiming(name, started, self.clock(), StepResult.OK))
        return value


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


def run_drill(
    services: Services,
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
) -> DrillRecord:
    """Run one DR drill of ``environment`` (see the module docstring) and return its record.

    ``backup``: an id, ``latest`` or ``random`` (among the backups retention keeps); ``region``: ``dr``
    (default: rehearse losing the primary) or ``primary`` (or the region's name); ``target``: the backup
    target (default: the catalog's ``drill.target``...). ``clock``, ``rng`` and ``token`` (the drill id's
    hex part) are injectable for tests.

    Raises CatalogError for an unknown environment, ConfigurationError for a malformed ``backup`` or
    ``region``, and the audit log's errors when ``drill.started`` cannot be recorded. Every other failure
    is returned as a failed drill.
    """
    now = clock or utcnow
    requested = parse_request(backup)
    env_spec = services.catalog().environment(environment)
    if stores is None:
        from envsteward.backup.stores import backup_stores

        stores = backup_stores(services)
    region_name = parse_region(region, dr_region=stores.dr_region, primary_region=stores.primary_region)
    started = now()
    drill_id, short_id = new_drill_id(started, token)
    audit = services.audit_log()
    audit.append(
        "drill.started",
        target=f"{environment}/{target or (env_spec.drill.target if env_spec.drill else None) or '*'}",
        environment=environment,
        details={"drill_id": drill_id, "requested": requested, "region": region_name},
    )

    run = _Run(clock=now)
    _execute(
        run, services, env_spec, stores, region_name, requested, target, started, short_id, rng, progress
    )
    record = _record(
        run,
        drill_id=drill_id,
        env_spec=env_spec,
        region=region_name,
        requested=requested,
        target=target,
        started=started,
    )
    setup = run.setup
    if record.status is not DrillStatus.FAILED and setup is not None and record.backup_id is not None:
        record = _mark(record, setup, record.finished_at)
    _audit_outcome(services, record)
    return record


def _execute(  # noqa: PLR0917 - internal: the resolved arguments of run_drill
    run: _Run,
    services: Services,
    env_spec: EnvironmentSpec,
    stores: BackupStores,
    region: str,
    requested: str,
    target: str | None,
    started: datetime,
    short_id: str,
    rng: random.Random | None,
    progress: ProgressCallback | None,
) -> None:
    """The steps, in order, stopping at the first failure; teardown always (see the module docstring)."""
    keys: dict[str, KeyProvider] = {}

    def prepare() -> None:
        setup = _prepare(services, env_spec, stores, region, target)
        run.setup = setup
        run.scratch = _scratch_for(services, setup, scratch_name(env_spec.name, short_id))

    try:
        run.step(PhaseName.PREPARE, prepare)
        setup = run.setup
        assert setup is not None
        scratch = run.scratch
        chosen = run.step(PhaseName.CHOOSE, lambda: _choose(setup, requested, started, rng, run.facts))
        manifest = run.step(
            PhaseName.FETCH_VERIFY, lambda: _fetch_verify(services, setup, chosen, keys, progress)
        )
        report = run.step(
            PhaseName.RESTORE, lambda: _restore(setup, scratch, chosen, keys["provider"], progress)
        )
        run.step(PhaseName.VERIFY_DATA, lambda: _verify(run, scratch, manifest, report))
        run.step(PhaseName.HEALTH, lambda: _health(run, scratch))
        run.ready_at = run.clock()
    except Exception:  # noqa: BLE001, S110 - recorded by run.step; a drill reports, it does not crash
        pass
    finally:
        run.scratch_removed = _teardown(run, run.scratch)


def _record(
    run: _Run,
    *,
    drill_id: str,
    env_spec: EnvironmentSpec,
    region: str,
    requested: str,
    target: str | None,
    started: datetime,
) -> DrillRecord:
    """The frozen record of a finished run, with its verdict."""
    finished = run.clock()
    setup, scratch, facts = run.setup, run.scratch, run.facts
    targets = setup.targets if setup is not None else drill_targets(drill_spec(env_spec))
    rto_seconds = (run.ready_at - started).total_seconds() if run.ready_at is not None else None
    rto, rpo = check_targets(rto_seconds, facts.get("rpo_seconds"), targets)
    status, reason = verdict(run.failed_phase is not None, [rto, rpo])
    return DrillRecord(
        drill_id=drill_id,
        environment=env_spec.name,
        target=setup.target.name
        if setup
        else (target or (env_spec.drill.target if env_spec.drill else None)),
        kind=setup.target.kind if setup else None,
        region=region,
        store=setup.store_label if setup else "",
        requested=requested,
        started_at=started,
        finished_at=finished,
        status=status,
        backup_id=facts.get("backup_id"),
        choice_reason=str(facts.get("choice_reason", "")),
        backup_consistent_at=facts.get("consistent_at"),
        newest_backup_id=facts.get("newest_backup_id"),
        newest_consistent_at=facts.get("newest_consistent_at"),
        scratch=scratch.name if scratch is not None else None,
        scratch_removed=run.scratch_removed,
        ready_at=run.ready_at,
        rto=rto,
        rpo=rpo,
        restore_point_age_seconds=facts.get("restore_point_age_seconds"),
        phases=tuple(run.phases),
        verifications=tuple(run.verifications),
        failed_phase=run.failed_phase,
        error=run.error if run.error is not None or status is not DrillStatus.FAILED else reason,
        notes=tuple(run.notes),
    )


# ---------------------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------------------


def _prepare(
    services: Services, env: EnvironmentSpec, stores: BackupStores, region: str, override: str | None
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


def _scratch_for(services: Services, setup: DrillSetup, name: str) -> Scratch:
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


def _postgres_scratch(services: Services, setup: DrillSetup, name: str) -> PostgresScratch:
    from psycopg.conninfo import make_conninfo

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
    scratch_dsn = make_conninfo(spec.server_dsn, dbname=name)
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


def _fetch_verify(
    services: Services,
    setup: DrillSetup | None,
    backup_id: str,
    keys: dict[str, KeyProvider],
    progress: ProgressCallback | None,
) -> Manifest:
    from envsteward.backup.restore import key_provider_for

    assert setup is not None
    manifest = read_manifest(setup.store, backup_id)
    provider = key_provider_for(services, manifest, setup.target)
    keys["provider"] = provider
    try:
        return verify_backup(setup.store, backup_id, provider, progress)
    except IntegrityError as exc:
        if backup_id in str(exc):
            raise
        raise IntegrityError(f"backup {backup_id} failed verification: {exc}") from None


def _restore(
    setup: DrillSetup | None,
    scratch: Scratch | None,
    backup_id: str,
    provider: KeyProvider,
    progress: ProgressCallback | None,
) -> Any:
    assert setup is not None
    assert scratch is not None
    scratch.create()
    with scratch.restore_target().begin() as writer:
        # verified completely in fetch_verify; this pass authenticates every chunk again as it restores
        restore_backup(
            setup.store, backup_id, provider, scratch.wrap_sink(writer.write), progress, verify_first=False
        )
        return writer.finish()


_TABLE_KINDS = frozenset({"postgres", "sqlite"})
"""Scratch kinds verified by per-table row counts and checksums from the manifest."""


def _verify(run: _Run, scratch: Scratch | None, manifest: Manifest, report: Any) -> None:
    assert scratch is not None
    rows = scratch.verify(manifest, report)
    run.verifications.extend(rows)
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


def _health(run: _Run, scratch: Scratch | None) -> None:
    assert scratch is not None
    rows = scratch.health()
    run.verifications.extend(rows)
    bad = [row for row in rows if not row.ok]
    if bad:
        names = ", ".join(f"{row.kind} {row.name}" for row in bad[:5])
        raise DrillStepError(
            f"{len(bad)} health check(s) / smoke query(ies) failed on the restored target: {names}"
        )


def _teardown(run: _Run, scratch: Scratch | None) -> bool | None:
    """Remove the scratch target if this drill created it; never raises. None when nothing was created
    (a name collision is not ours to remove)."""
    if scratch is None or not scratch.created:
        return None

    def remove() -> bool:
        if not scratch.teardown():
            raise DrillStepError(
                f"scratch target {scratch.name} still exists after teardown: remove it by hand"
            )
        return True

    try:
        return run.step(PhaseName.TEARDOWN, remove)
    except Exception:  # noqa: BLE001 - recorded by run.step
        return False


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


def _audit_outcome(services: Services, record: DrillRecord) -> None:
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
    "SUPPORTED_KINDS",
    "DrillSetup",
    "DrillStepError",
    "audit_details",
    "drill_spec",
    "drill_targets",
    "pick_target",
    "run_drill",
    "safe_error",
]
