"""``envsteward pitr``: point-in-time recovery for PostgreSQL targets with ``pitr.enabled``.

* ``pitr check ENV/TARGET`` — is the live server archiving here (``wal_level``, ``archive_mode``,
  ``archive_command``, ``archive_timeout``)? Exit 1 when something must change; each line says what.
* ``pitr base-backup ENV/TARGET`` — ``pg_basebackup`` through the encrypted pipeline (manifest last), then
  the DR copy when the target has a ``replica_region``. Prints the backup id.
* ``pitr restore ENV/TARGET --data-dir DIR (--to-time T | --to-latest) [--port P] [--from any|dr]
  [--backup ID] [--no-start]`` — unpack the newest base backup that ended before T into the NEW directory
  DIR, check it, write the recovery settings (``restore_command`` = ``envsteward wal fetch``), start
  PostgreSQL (as this OS user; not root), wait for the promotion, print the last replayed commit time.
* ``pitr status ENV/TARGET [--json]`` — base backups, the newest archived segment's age, streamed
  partial segments, and (``pitr.streaming``) the replication slot.
* ``pitr prune ENV/TARGET [--dry-run]`` — keep ``pitr.keep_base_backups`` base backups and the WAL they
  need, in both regions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from envsteward.cli._common import console, handle_errors, services_for

if TYPE_CHECKING:
    from envsteward.catalog.models import PostgresBackup
    from envsteward.services import Services

app = typer.Typer(
    help="Point-in-time recovery for PostgreSQL: base backups, restore to a time.", no_args_is_help=True
)

TargetArg = Annotated[str, typer.Argument(help="The catalog backup target, ENVIRONMENT/TARGET.")]
CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _target(services: Services, selector: str) -> tuple[str, PostgresBackup]:
    from envsteward.pitr.context import pitr_target

    return pitr_target(services, selector)


def _password(services: Services, spec: PostgresBackup) -> Any:
    return services.resolve_secret(spec.password) if spec.password is not None else None


def _pg_bin(spec: PostgresBackup) -> Path | None:
    return Path(spec.pitr.pg_bin) if spec.pitr.pg_bin else None


@app.command("check")
@handle_errors
def check(target: TargetArg, catalog: CatalogOption = None) -> None:
    """Explain what the live server lacks for continuous archiving into envsteward."""
    from envsteward.pitr.check import check_settings, read_settings

    services = services_for(catalog)
    environment, spec = _target(services, target)
    drill = services.catalog().environment(environment).drill
    rpo = drill.rpo_target_minutes * 60 if drill is not None else None
    findings = check_settings(
        read_settings(spec.dsn, _password(services, spec)),
        selector=target,
        rpo_seconds=rpo,
        streaming=spec.pitr.streaming,
    )
    from envsteward.pitr.status import pusher_status

    console().print(pusher_status(services.state_store(), target).line(), markup=False, soft_wrap=True)
    if not findings:
        console().print(f"{target}: the server archives WAL into envsteward", markup=False)
        return
    for finding in findings:
        console().print(
            f"{finding.level}: {finding.setting}: {finding.message}", markup=False, soft_wrap=True
        )
    if any(finding.level == "error" for finding in findings):
        raise typer.Exit(1)


@app.command("base-backup")
@handle_errors
def base_backup(
    target: TargetArg,
    catalog: CatalogOption = None,
    prune: Annotated[
        bool, typer.Option("--prune/--no-prune", help="Apply pitr.keep_base_backups after.")
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Take a base backup now, copy it to the DR store (targets with a replica), then prune."""
    from envsteward.pitr.runner import run_pitr_base_backup

    summary = run_pitr_base_backup(services_for(catalog), target, prune=prune)
    if json_output:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(summary["backup_id"])


@app.command("restore")
@handle_errors
def restore(  # noqa: PLR0917
    target: TargetArg,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="A NEW or empty directory for the restored cluster.")
    ],
    to_time: Annotated[
        str | None, typer.Option("--to-time", help="Recover up to this time (ISO 8601, with zone).")
    ] = None,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="Recover every archived transaction.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port of the restored server (127.0.0.1).")] = 5499,
    source: Annotated[
        str, typer.Option("--from", help="WAL from: any (primary, then DR), primary or dr.")
    ] = "any",
    backup_id: Annotated[
        str | None, typer.Option("--backup", help="Base backup id (default: newest usable).")
    ] = None,
    start: Annotated[
        bool, typer.Option("--start/--no-start", help="Start PostgreSQL and wait for the promotion.")
    ] = True,
    catalog: CatalogOption = None,
    json_output: JsonOption = False,
) -> None:
    """Restore the target into a new cluster at a point in time (same as ``backup restore BASE_ID
    --to-time/--to-latest --to-dir DIR``)."""
    from envsteward.errors import ConfigurationError
    from envsteward.pitr.restore import PointInTimeRequest, parse_time, restore_to_point

    if (to_time is None) == (not to_latest):
        raise ConfigurationError("give exactly one of --to-time T and --to-latest")
    request = PointInTimeRequest(
        selector=target,
        data_dir=data_dir,
        to_time=parse_time(to_time) if to_time is not None else None,
        port=port,
        source=source,
        backup_id=backup_id,
        start=start,
    )
    result = restore_to_point(services_for(catalog), request)
    print_restore_result(result, json_output=json_output)


def print_restore_result(result: dict[str, Any], *, json_output: bool) -> None:
    """The outcome of a point-in-time restore, as JSON or two lines (shared with ``backup restore``)."""
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    console().print(f"restored {result['backup_id']} into {result['data_dir']}", markup=False)
    if "port" in result:
        console().print(
            f"recovered and promoted on 127.0.0.1:{result['port']}; "
            f"last replayed commit: {result['last_replayed_commit'] or 'none after the base backup'}",
            markup=False,
        )
    else:
        console().print(
            "recovery settings written; start it with pg_ctl -D DIR start (not as root)", markup=False
        )


@app.command("status")
@handle_errors
def status(target: TargetArg, catalog: CatalogOption = None, json_output: JsonOption = False) -> None:
    """Base backups and the WAL archive: newest segment, its age against the RPO target (the live RPO
    exposure), wal push failures, DR lag, streamed partial segments and (pitr.streaming) the replication
    slot. JSON (always; ``--json`` is accepted for symmetry)."""
    from envsteward.pitr.base import list_base_backups
    from envsteward.pitr.context import target_stores
    from envsteward.pitr.rpo import archive_status
    from envsteward.pitr.status import catalog_statuses
    from envsteward.pitr.walnames import archive_prefix

    services = services_for(catalog)
    environment, spec = _target(services, target)
    stores = target_stores(services, spec)
    prefix = archive_prefix(environment, spec.name)
    document: dict[str, Any] = {
        "base_backups": [
            {"backup_id": b.backup_id, "end_time": b.end_time.isoformat(), "start_wal_file": b.start_wal_file}
            for b in list_base_backups(stores.primary, prefix)
        ],
        "primary": archive_status(stores.primary, prefix).as_json(),
    }
    if spec.replica_region is not None and stores.dr is not None:
        document["dr"] = archive_status(stores.dr, prefix).as_json()
    (archive,) = catalog_statuses(services, environment, spec.name)
    document["archive"] = archive.as_json()
    if spec.pitr.streaming:  # wal stream's replication slot (read-only: SELECT on pg_replication_slots)
        from envsteward.pitr.slot_watch import slot_status

        document["slot"] = slot_status(services, services.state_store(), environment, spec)
    typer.echo(json.dumps(document, indent=2))
    _ = json_output


@app.command("prune")
@handle_errors
def prune(
    target: TargetArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    catalog: CatalogOption = None,
) -> None:
    """Remove base backups beyond pitr.keep_base_backups and the WAL only they needed (both regions)."""
    from envsteward.pitr.base import list_base_backups
    from envsteward.pitr.context import target_stores
    from envsteward.pitr.retention import archived_wal, execute_pitr_prune, plan_pitr_prune
    from envsteward.pitr.walnames import archive_prefix

    services = services_for(catalog)
    environment, spec = _target(services, target)
    stores = target_stores(services, spec)
    prefix = archive_prefix(environment, spec.name)
    plan = plan_pitr_prune(
        list_base_backups(stores.primary, prefix),
        spec.pitr.keep_base_backups,
        archived_wal(stores.primary, prefix),
    )
    typer.echo(json.dumps(plan.as_json(), indent=2))
    if dry_run:
        return
    regions = [stores.primary] + (
        [stores.dr] if stores.dr is not None and spec.replica_region is not None else []
    )
    deleted = execute_pitr_prune(regions, prefix, plan)
    typer.echo(f"deleted {deleted} objects")
