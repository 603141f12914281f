"""``envsteward backup``: run, list, verify, restore and prune backups, without Prefect.

* ``backup run [--env E] [--target T]`` — back up the catalog's targets now (and replicate those with a
  ``replica_region``); exit 1 when any target failed (the others still run).
* ``backup list [--env E] [--target T] [--json] [--pitr]`` — every complete backup in either region: id,
  environment, target, time, size, verified-by-drill, replica state; then, per target with
  ``pitr.enabled``, the WAL archive: newest segment, its age against the RPO target (the live exposure),
  ``wal push`` failures, DR lag (``--pitr``: that table only; ``--pitr --json``: it as JSON).
* ``backup verify ID [--dr]`` — read the whole object, decrypt it and check every checksum.
* ``backup restore ID --to DEST [--dr]`` — verify completely, then restore. DEST by kind:
  ``postgresql://USER@HOST:PORT/DB`` (existing, empty database), a file path (sqlite, config),
  ``vault://MOUNT/PREFIX``, ``ssm:///PREFIX`` or ``ssm://REGION/PREFIX``
  (see :mod:`envsteward.backup.restore`).
* ``backup restore BASE_ID --to-time T|--to-latest --to-dir DIR [--port P] [--dr]`` — a PITR base backup
  (``ENV/TARGET.pitr/...``) restored into a new cluster at a point in time (:mod:`envsteward.pitr.restore`;
  the same as ``pitr restore``). On a logical dump, ``--to-time/--to-latest`` is an error saying so.
* ``backup prune [--dry-run] [--json]`` — print what retention removes in both regions, then remove it
  (audited as ``backup.pruned``).
* ``backup rotate-key [--env E] [--dry-run] [--json]`` — rotate the backup key-encryption key(s) and
  rewrap every retained backup's data key in both regions (see :mod:`envsteward.backup.rewrap`); a table
  of keys, versions and counts; exit 1 when a key or a backup failed (the old versions then stay usable).
* ``backup key export [--out FILE] [--passphrase-env VAR]`` / ``backup key import FILE
  [--passphrase-env VAR]`` — the local key-encryption key wrapped with a passphrase (scrypt +
  AES-256-GCM), so a copy can live apart from the backups; the passphrase is prompted for (twice for an
  export) or read from the environment variable VAR, never from the command line.

While the local key has no recorded export, ``backup run`` prints a warning on stderr.

A damaged or tampered backup (flipped byte, truncation, reordered chunks, wrong key) fails with one line
``error: ...`` and exit code 1; nothing is restored. Long transfers show a progress bar on a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from envsteward.cli._common import services_for as _services

if TYPE_CHECKING:
    from pydantic import SecretStr
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from envsteward.backup.progress import ProgressEvent
    from envsteward.services import Services

app = typer.Typer(help="Back up, list, verify, restore and prune backups.", no_args_is_help=True)
key_app = typer.Typer(
    help="Export or import the local backup key (wrapped with a passphrase), to keep a copy elsewhere.",
    no_args_is_help=True,
)
app.add_typer(key_app, name="key")

CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG).")
]
DrOption = Annotated[
    bool, typer.Option("--dr", help="Read the replica in the DR store instead of the primary copy.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class ProgressBar:
    """A ProgressCallback that drives one rich progress bar per (phase, backup)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        key = (event.phase, event.backup_id)
        task = self._tasks.get(key)
        if task is None:
            task = self.progress.add_task(f"{event.phase} {event.backup_id}", total=event.total_stored_bytes)
            self._tasks[key] = task
        self.progress.update(task, completed=event.stored_bytes, total=event.total_stored_bytes)


@contextmanager
def progress_bar() -> Iterator[ProgressBar]:
    """A transient rich progress bar on stderr (silent when stderr is not a terminal)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from envsteward.cli._common import err_console

    console = err_console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield ProgressBar(progress)


def fitted_table(
    title: str,
    columns: Sequence[tuple[str, int]],
    rows: Sequence[Sequence[str]],
    width: int,
    keep_whole: Sequence[int] = (0,),
) -> Table | None:
    """A table whose first column (the backup id) is never cut or wrapped at ``width`` columns.

    ``columns`` are ``(header, priority)``: when the table would be wider than ``width``, columns are
    dropped lowest priority first (the JSON output keeps everything). Cells may hold rich markup. Returns
    None when even the id column alone does not fit (the caller then prints plain lines). Pure.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def cell_width(cell: str) -> int:
        return Text.from_markup(cell).cell_len

    natural = [
        max([cell_width(header)] + [cell_width(row[index]) for row in rows])
        for index, (header, _) in enumerate(columns)
    ]
    shown = list(range(len(columns)))

    def needed() -> int:  # box.SIMPLE without edges: one space of padding each side, one separator
        return sum(natural[index] for index in shown) + 3 * (len(shown) - 1)

    for index in sorted(range(1, len(columns)), key=lambda i: columns[i][1]):
        if needed() <= width:
            break
        shown.remove(index)
    if needed() > width:
        return None
    table = Table(title=title, box=box.SIMPLE, show_edge=False, pad_edge=False)
    for index in shown:
        header = columns[index][0]
        if index in keep_whole:
            table.add_column(header, no_wrap=True, min_width=natural[index], overflow="ignore")
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(row[index] for index in shown))
    return table


def print_table(
    title: str,
    columns: Sequence[tuple[str, int]],
    rows: Sequence[Sequence[str]],
    keep_whole: Sequence[int] = (0,),
) -> None:
    """Print :func:`fitted_table` at the console's width, or one id per line when even that is too wide.
    Columns in ``keep_whole`` (ids) are never cut or wrapped."""
    from rich.markup import escape

    from envsteward.cli._common import console

    out = console()
    table = fitted_table(title, columns, rows, out.width, keep_whole)
    if table is not None:
        out.print(table)
        return
    for row in rows:
        out.print(escape(row[0]), soft_wrap=True, highlight=False)


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------------------


@app.command("run")
def run(
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Only this backup target.")] = None,
    as_json: JsonOption = False,
    catalog: CatalogOption = None,
) -> None:
    """Back up the catalog's targets now (all, or those selected) and replicate them."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_run)(env, target, as_json, catalog))


def _run(environment: str | None, target: str | None, as_json: bool, catalog: Path | None) -> int:
    import json

    from rich.markup import escape

    from envsteward.backup.keys import local_key_warning
    from envsteward.backup.runner import plan_backups, run_backup_target, run_summary
    from envsteward.backup.stores import backup_stores
    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console

    services = _services(catalog)
    planned = plan_backups(services.catalog(), environment, target)
    if not planned:
        console().print("No backup targets are defined for the selected environment(s).")
        return EXIT_OK
    warning = local_key_warning(services.settings.home, planned)
    if warning:
        err_console().print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    stores = backup_stores(services)
    results = []
    with progress_bar() as bar:
        for item in planned:
            results.append(run_backup_target(services, item, stores=stores, progress=bar))
    summary = run_summary(results)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        rows = [
            [
                escape(result.backup.backup_id if result.backup else f"{result.environment}/{result.target}"),
                "[green]ok[/]" if result.status == "ok" else "[red]failed[/]",
                result.replica_status,
                _size(result.backup.stored_bytes if result.backup else None),
                f"{result.duration_seconds:.1f}",
            ]
            for result in results
        ]
        print_table(
            "backups",
            [("backup id", 100), ("status", 90), ("replica", 80), ("stored", 50), ("seconds", 40)],
            rows,
        )
    for result in results:
        if result.error:
            err_console().print(
                f"[bold red]failed:[/] {escape(result.environment)}/{escape(result.target)}: "
                f"{escape(result.error)}"
            )
    return EXIT_OK if summary["ok"] else EXIT_ERROR


# ---------------------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------------------


@app.command("list")
def list_command(  # noqa: PLR0917 - typer options
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Only this backup target.")] = None,
    as_json: JsonOption = False,
    incomplete: Annotated[
        bool,
        typer.Option(
            "--incomplete",
            help="List what interrupted backups left behind (unfinished uploads, data without a manifest).",
        ),
    ] = False,
    pitr_only: Annotated[
        bool,
        typer.Option(
            "--pitr",
            help="Only the WAL archive status of the PITR targets (newest segment, its age against the "
            "RPO target, push failures, DR lag); with --json, as JSON.",
        ),
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """List the complete backups in both regions (by environment, target, then time), then the WAL
    archive status of every target with point-in-time recovery."""
    from envsteward.cli._common import handle_errors

    if incomplete:
        raise typer.Exit(handle_errors(_list_incomplete)(as_json, catalog))
    raise typer.Exit(handle_errors(_list)(env, target, as_json, pitr_only, catalog))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _list_incomplete(as_json: bool, catalog: Path | None) -> int:
    import json

    from rich.markup import escape

    from envsteward.backup.leftovers import find_leftovers, removable
    from envsteward.backup.limits import BACKUP_TIMEOUT_SECONDS
    from envsteward.backup.stores import backup_stores
    from envsteward.cli._common import EXIT_OK, console

    leftovers = find_leftovers(backup_stores(_services(catalog)))
    if as_json:
        typer.echo(
            json.dumps([item.as_json() | {"removable": removable(item)} for item in leftovers], indent=2)
        )
        return EXIT_OK
    if not leftovers:
        console().print("No leftovers of interrupted backups.")
        return EXIT_OK
    rows = [
        [
            escape(item.backup_id or item.key),
            item.region,
            escape(item.what),
            _age(item.age_seconds),
            _size(item.size),
        ]
        for item in leftovers
    ]
    print_table(
        "leftovers of interrupted backups",
        [("backup id", 100), ("region", 80), ("what", 70), ("age", 90), ("size", 60)],
        rows,
    )
    console().print(
        f"`envsteward backup prune` removes those older than {_age(BACKUP_TIMEOUT_SECONDS)} plus an hour "
        "(a younger one may still be running).",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


def backup_rows(services: Services, environment: str | None, target: str | None) -> list[dict[str, Any]]:
    """One JSON-able row per complete backup in either region. Calls the object stores."""
    from envsteward.backup.drill_marks import is_verified_by_drill
    from envsteward.backup.prune import collect_backups
    from envsteward.backup.replica import read_replica_record, replica_state
    from envsteward.backup.stores import backup_stores

    stores = backup_stores(services)
    rows: list[dict[str, Any]] = []
    for backup_id, found in collect_backups(stores).items():
        manifest = found.manifest
        if environment is not None and manifest.environment != environment:
            continue
        if target is not None and manifest.source.name != target:
            continue
        state = "only in DR" if "primary" not in found.regions else replica_state(stores.dr, manifest)
        record = read_replica_record(stores.primary, backup_id) if "primary" in found.regions else None
        rows.append(
            {
                "backup_id": backup_id,
                "environment": manifest.environment,
                "target": manifest.source.name,
                "kind": manifest.source.kind,
                "time": manifest.consistent_at.isoformat(),
                "size": manifest.sizes.ciphertext,
                "plaintext_size": manifest.sizes.plaintext,
                "verified_by_drill": is_verified_by_drill(stores.primary, stores.dr, backup_id=backup_id),
                "replica": state,
                # ``replica`` is a cheap look (manifest and size); this is when the copy's content was last
                # checked against the manifest's SHA-256 (at replication), and how
                "replica_verified_at": (record or {}).get("replicated_at"),
                "replica_verified_by": (record or {}).get("verified_by"),
                "regions": list(found.regions),
            }
        )
    rows.sort(key=lambda row: (row["environment"], row["target"], row["time"]))
    return rows


REPLICA_WORDS = {"ok": "present"}
"""``replica_state``'s ``ok`` only means "same manifest, same size": the table says ``present`` and shows
when the content was last verified in its own column."""


def _list_cells(row: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    state = str(row["replica"])
    word = REPLICA_WORDS.get(state, state)
    verified = row.get("replica_verified_at")
    return [
        escape(row["backup_id"]),
        f"[green]{word}[/]" if state == "ok" else f"[yellow]{escape(word)}[/]",
        _short_time(verified) if verified else "never",
        "yes" if row["verified_by_drill"] else "no",
        _size(row["size"]),
        _short_time(row["time"]),
    ]


def _short_time(iso: str) -> str:
    return iso[:16].replace("T", " ") + "Z"


def _list(
    environment: str | None, target: str | None, as_json: bool, pitr_only: bool, catalog: Path | None
) -> int:
    import json

    from rich.markup import escape

    from envsteward.cli._common import EXIT_OK, console, err_console
    from envsteward.errors import EnvstewardError
    from envsteward.pitr.status import catalog_statuses

    services = _services(catalog)
    if pitr_only:
        pitr = catalog_statuses(services, environment, target)
        if as_json:
            typer.echo(json.dumps([item.as_json() for item in pitr], indent=2))
        elif pitr:
            _print_pitr_status(pitr)
        else:
            console().print("No backup target enables pitr.")
        return EXIT_OK
    rows = backup_rows(services, environment, target)
    if as_json:  # the backups only, as always; `--pitr --json` gives the archive status
        typer.echo(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        console().print("No backups found.")
    else:
        columns = [
            ("id", 100),
            ("replica", 90),
            ("replica verified", 80),
            ("drill", 60),
            ("size", 50),
            ("time", 40),
        ]
        print_table("backups", columns, [_list_cells(row) for row in rows])
    try:  # backups list without a catalog (a new machine in a disaster); the PITR status needs one
        pitr = catalog_statuses(services, environment, target)
    except EnvstewardError as exc:
        err_console().print(
            f"[yellow]PITR archive status unavailable:[/] {escape(str(exc))}", highlight=False
        )
        return EXIT_OK
    if pitr:
        _print_pitr_status(pitr)
    return EXIT_OK


PITR_STATE_COLOURS = {"ok": "green", "failing": "bold red", "stale": "yellow", "empty": "yellow"}


def _print_pitr_status(statuses: Sequence[Any]) -> None:
    """The ``point-in-time recovery`` table: one row per PITR target, ids (target, segment) never split;
    the exposure coloured by state; a line per target that needs a person's eye."""
    from rich.markup import escape

    from envsteward.cli._common import console
    from envsteward.pitr.status import status_notes, status_row

    rows = []
    for item in statuses:
        row = status_row(item)
        colour = PITR_STATE_COLOURS.get(row["state"], "red")
        rows.append(
            [
                escape(row["target"]),
                escape(row["newest_segment"]),
                f"[{colour}]{escape(row['exposure'])}[/]",
                escape(row["failures"]),
                escape(row["dr_lag"]),
                row["state"],
            ]
        )
    print_table(
        "point-in-time recovery (WAL archive)",
        [
            ("target", 100),
            ("newest segment", 95),
            ("age/RPO", 90),
            ("fails", 70),
            ("DR lag", 80),
            ("state", 10),
        ],
        rows,
        keep_whole=(0, 1),
    )
    for item in statuses:
        for note in status_notes(item):
            console().print(escape(note), highlight=False)  # wrapped at words: a name stays whole


# ---------------------------------------------------------------------------------------------------------
# verify and restore
# ---------------------------------------------------------------------------------------------------------


@app.command("verify")
def verify(
    backup_id: Annotated[str, typer.Argument(help="The backup id (see `envsteward backup list`).")],
    dr: DrOption = False,
    all_regions: Annotated[
        bool,
        typer.Option(
            "--all-regions",
            help="Verify the primary copy AND the DR replica (each read whole and decrypted).",
        ),
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Read the whole backup, decrypt it and check every checksum (writes nothing)."""
    from envsteward.cli._common import handle_errors

    if all_regions:
        raise typer.Exit(handle_errors(_verify_all)(backup_id, catalog))
    raise typer.Exit(handle_errors(_verify)(backup_id, dr, catalog))


def _verify_all(backup_id: str, catalog: Path | None) -> int:
    from rich.markup import escape

    from envsteward.backup.manifest import check_backup_id
    from envsteward.backup.restore import verify_all_regions
    from envsteward.backup.stores import backup_stores
    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console

    check_backup_id(backup_id)
    services = _services(catalog)
    stores = backup_stores(services)
    with progress_bar() as bar:
        checks = verify_all_regions(services, stores, backup_id, bar)
    for check in checks:
        if check.ok:
            console().print(
                f"[green]verified[/] {check.region} ({escape(check.store)}): {check.chunks} chunk(s), "
                f"{_size(check.stored_bytes)} stored; every chunk authenticated",
                highlight=False,
            )
        else:
            err_console().print(
                f"[bold red]FAILED[/] {check.region} ({escape(check.store)}): {escape(check.error or '')}",
                highlight=False,
            )
    if stores.dr is None:
        err_console().print("[yellow]no DR store is configured: only the primary copy exists[/]")
    return EXIT_OK if checks and all(check.ok for check in checks) else EXIT_ERROR


def _store(services: Services, dr: bool) -> Any:
    from envsteward.backup.stores import backup_stores
    from envsteward.errors import ConfigurationError

    stores = backup_stores(services)
    if not dr:
        return stores.primary
    if stores.dr is None:
        raise ConfigurationError("no DR store is configured (storage.dr_bucket)")
    return stores.dr


def _verify(backup_id: str, dr: bool, catalog: Path | None) -> int:
    from envsteward.backup.manifest import check_backup_id
    from envsteward.backup.restore import verify_stored_backup
    from envsteward.cli._common import EXIT_OK, console

    check_backup_id(backup_id)
    services = _services(catalog)
    with progress_bar() as bar:
        manifest = verify_stored_backup(services, _store(services, dr), backup_id, bar)
    console().print(
        f"[green]verified[/] {backup_id}: {manifest.format.chunks} chunk(s), "
        f"{_size(manifest.sizes.ciphertext)} stored, {_size(manifest.sizes.plaintext)} of data; "
        "every chunk authenticated, sizes and SHA-256 match the manifest",
        highlight=False,
    )
    return EXIT_OK


@app.command("restore")
def restore(  # noqa: PLR0917 - typer options
    backup_id: Annotated[str, typer.Argument(help="The backup id (see `envsteward backup list`).")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Destination: postgresql://USER@HOST:PORT/DB (existing, empty), a file path (sqlite, "
            "config), vault://MOUNT/PREFIX, ssm:///PREFIX or ssm://REGION/PREFIX.",
        ),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option("--to-time", help="PITR base backup: recover up to this time (ISO 8601, with zone)."),
    ] = None,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="PITR base backup: recover every archived transaction.")
    ] = False,
    to_dir: Annotated[
        Path | None,
        typer.Option("--to-dir", help="PITR base backup: a NEW or empty directory for the restored cluster."),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="PITR: port of the restored server (127.0.0.1).")
    ] = 5499,
    dr: DrOption = False,
    as_json: JsonOption = False,
    catalog: CatalogOption = None,
) -> None:
    """Verify the whole backup, then restore it into DEST (nothing is restored if verification fails).

    A PITR base backup (``ENV/TARGET.pitr/...``) restores to a point in time instead: ``--to-time T`` or
    ``--to-latest`` with ``--to-dir DIR`` (WAL from the DR store with ``--dr``)."""
    from envsteward.cli._common import handle_errors

    if to_time is not None or to_latest or to_dir is not None:
        raise typer.Exit(
            handle_errors(_restore_pitr)(
                backup_id, to, to_time, to_latest, to_dir, port, dr, as_json, catalog
            )
        )
    raise typer.Exit(handle_errors(_restore)(backup_id, to, dr, as_json, catalog))


def _restore_pitr(  # noqa: PLR0917 - the command's options
    backup_id: str,
    to: str | None,
    to_time: str | None,
    to_latest: bool,
    to_dir: Path | None,
    port: int,
    dr: bool,
    as_json: bool,
    catalog: Path | None,
) -> int:
    """``backup restore BASE_ID --to-time T|--to-latest --to-dir DIR``: the PITR restore."""
    from envsteward.cli._common import EXIT_OK
    from envsteward.cli.pitr import print_restore_result
    from envsteward.errors import ConfigurationError
    from envsteward.pitr.restore import (
        PointInTimeRequest,
        base_backup_selector,
        not_a_base_backup,
        parse_time,
        restore_to_point,
    )

    selector = base_backup_selector(backup_id)
    if selector is None:
        raise not_a_base_backup(backup_id)
    if to is not None:
        raise ConfigurationError("--to is for logical backups; a PITR restore takes --to-dir DIR")
    if (to_time is None) == (not to_latest):
        raise ConfigurationError("give exactly one of --to-time T and --to-latest")
    if to_dir is None:
        raise ConfigurationError("a PITR restore needs --to-dir DIR (a new or empty directory)")
    request = PointInTimeRequest(
        selector=selector,
        data_dir=to_dir,
        to_time=parse_time(to_time) if to_time is not None else None,
        port=port,
        source="dr" if dr else "any",
        backup_id=backup_id,
    )
    print_restore_result(restore_to_point(_services(catalog), request), json_output=as_json)
    return EXIT_OK


def _restore(backup_id: str, destination: str | None, dr: bool, as_json: bool, catalog: Path | None) -> int:
    import json

    from envsteward.backup.manifest import check_backup_id
    from envsteward.backup.restore import restore_stored_backup
    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console
    from envsteward.errors import ConfigurationError
    from envsteward.pitr.restore import base_backup_selector

    check_backup_id(backup_id)
    if base_backup_selector(backup_id) is not None:
        raise ConfigurationError(
            f"backup {backup_id} is a PITR base backup: restore it to a point in time with --to-time T or "
            "--to-latest, and --to-dir DIR (a new or empty directory)"
        )
    if destination is None:
        raise ConfigurationError(
            "give --to DEST (or, for a PITR base backup, --to-time/--to-latest --to-dir)"
        )
    services = _services(catalog)
    with progress_bar() as bar:
        outcome = restore_stored_backup(services, _store(services, dr), backup_id, destination, bar)
    if as_json:
        typer.echo(json.dumps(outcome.as_json(), indent=2))
    else:
        where = ", ".join(f"{key}={value}" for key, value in outcome.destination.items())
        console().print(
            f"[green]restored[/] {backup_id} into {where}: {outcome.report.items} item(s), "
            f"{_size(outcome.report.bytes_read)}",
            highlight=False,
        )
    if outcome.table_mismatches:
        for problem in outcome.table_mismatches:
            err_console().print(f"[bold red]table mismatch:[/] {problem}", highlight=False)
        return EXIT_ERROR
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------------------------------------


@app.command("prune")
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; remove nothing.")] = False,
    as_json: JsonOption = False,
    catalog: CatalogOption = None,
) -> None:
    """Apply each target's retention policy in both regions: print what goes, then remove it."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_prune)(dry_run, as_json, catalog))


def _prune(dry_run: bool, as_json: bool, catalog: Path | None) -> int:
    import json

    from rich.markup import escape

    from envsteward.backup.leftovers import clean_leftovers, find_leftovers, removable
    from envsteward.backup.prune import catalog_policies, execute_prune, plan_prune, prune_summary
    from envsteward.backup.stores import backup_stores
    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console

    services = _services(catalog)
    stores = backup_stores(services)
    plan = plan_prune(stores, catalog_policies(services.catalog()))
    leftovers = find_leftovers(stores)
    if not as_json:
        for line in plan.render_text():
            console().print(escape(line), highlight=False)
        console().print(
            f"{len(plan.to_remove)} backup(s) to remove from {plan.primary} and {plan.dr}"
            + (" (dry run: nothing removed)" if dry_run else ""),
            highlight=False,
        )
    result = None
    if not dry_run and plan.to_remove:
        result = execute_prune(
            plan,
            stores,
            services.audit_log(),
            on_removed=None if as_json else lambda backup_id: console().print(f"removed {escape(backup_id)}"),
        )
        for backup_id, error in result.failed:
            err_console().print(f"[bold red]error:[/] {escape(backup_id)}: {escape(error)}", highlight=False)
    to_clean = [item for item in leftovers if removable(item)]
    if not as_json:
        for item in leftovers:
            verdict = "REMOVE" if item in to_clean else "keep  "
            console().print(
                f"  {verdict} {item.what} {escape(item.key)} ({item.region}, {_size(item.size)}, "
                f"{_age(item.age_seconds)} old{'' if item in to_clean else ': may still be running'})",
                highlight=False,
            )
        console().print(
            f"{len(to_clean)} leftover(s) of interrupted backups to remove"
            + (" (dry run: nothing removed)" if dry_run else ""),
            highlight=False,
        )
    report = clean_leftovers(
        stores,
        dry_run=dry_run,
        found=leftovers,
        on_removed=None if as_json else lambda item: console().print(f"removed {escape(item.key)}"),
    )
    cleanup = report.cleanup
    if cleanup is not None:
        for item, error in cleanup.failed:
            err_console().print(f"[bold red]error:[/] {escape(item.key)}: {escape(error)}", highlight=False)
    if as_json:
        summary = prune_summary(plan, result, dry_run=dry_run)
        summary["leftovers"] = report.as_json()
        summary["ok"] = summary["ok"] and report.ok
        typer.echo(json.dumps(summary, indent=2))
    failed = (result is not None and not result.ok) or (cleanup is not None and not cleanup.ok)
    return EXIT_ERROR if failed else EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# rotate-key
# ---------------------------------------------------------------------------------------------------------


@app.command("rotate-key")
def rotate_key(
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Only the keys this environment's backups use.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be rotated and rewrapped; change nothing.")
    ] = False,
    as_json: JsonOption = False,
    catalog: CatalogOption = None,
) -> None:
    """Rotate the backup key-encryption key(s), rewrap every retained backup's data key (primary and DR;
    the data is never decrypted), then retire the old key versions."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_rotate_key)(env, dry_run, as_json, catalog))


def _rotate_key(environment: str | None, dry_run: bool, as_json: bool, catalog: Path | None) -> int:
    import json

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from envsteward.backup.rewrap import BackupRewrap, KeyRef, rotate_backup_keys
    from envsteward.backup.stores import backup_stores
    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console
    from envsteward.health.runner import select_environments

    services = _services(catalog)
    environments = select_environments(services.catalog(), [environment] if environment else None)
    stores = backup_stores(services)
    errors = err_console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as progress:
        tasks: dict[KeyRef, Any] = {}

        def start(ref: KeyRef, total: int) -> None:
            verb = "checking" if dry_run else "rewrapping"
            tasks[ref] = progress.add_task(f"{verb} backups of {ref.label()}", total=total)

        def step(ref: KeyRef, done: int, total: int, outcome: BackupRewrap) -> None:
            progress.update(tasks[ref], completed=done, total=total)

        report = rotate_backup_keys(
            services, stores, environments, dry_run=dry_run, on_start=start, on_backup=step
        )
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        rewrapped_header = "would rewrap" if dry_run else "rewrapped"
        rows = []
        for item in report.results:
            if item.to_version is None:
                versions = "-"
            elif item.rotated or (dry_run and item.from_version != item.to_version):
                versions = f"v{item.from_version} -> v{item.to_version}"
            else:
                versions = f"v{item.to_version}"
            status = "[green]ok[/]" if item.ok else "[red]failed[/]"
            retired = f"below v{item.retired_below}" if item.retired_below else "-"
            rows.append(
                [
                    escape(item.key.label()),
                    status,
                    versions,
                    str(item.count("rewrapped")),
                    str(item.count("current")),
                    str(item.count("failed")),
                    retired,
                    escape(", ".join(item.used_by)),
                ]
            )
        print_table(
            "backup key rotation" + (" (dry run: nothing changed)" if dry_run else ""),
            [
                ("key", 100),
                ("status", 90),
                ("version", 85),
                (rewrapped_header, 80),
                ("current", 70),
                ("failed", 75),
                ("retired", 60),
                ("used by", 30),
            ],
            rows,
        )
        for item in report.results:
            if item.note:
                console().print(f"{item.key.label()}: {item.note}", markup=False, highlight=False)
            if item.not_retired_because:
                errors.print(
                    f"warning: {item.key.label()}: old versions not retired: {item.not_retired_because}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            if item.foreign:
                errors.print(
                    f"warning: {item.key.label()}: {item.foreign} backup(s) name a key this one does not "
                    "hold; they were left alone",
                    markup=False,
                    highlight=False,
                )
    for item in report.results:
        if item.error:
            errors.print(f"[bold red]error:[/] {escape(item.key.label())}: {escape(item.error)}")
        for backup in item.backups:
            if backup.error:
                errors.print(f"[bold red]failed:[/] {escape(backup.backup_id)}: {escape(backup.error)}")
    return EXIT_OK if report.ok else EXIT_ERROR


# ---------------------------------------------------------------------------------------------------------
# key export / import
# ---------------------------------------------------------------------------------------------------------

PassphraseEnvOption = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Read the passphrase from this environment variable (default: ask on the terminal).",
    ),
]
MAX_EXPORT_FILE_BYTES = 64 * 1024


def _passphrase(env_var: str | None, *, confirm: bool) -> SecretStr:
    """The passphrase: from ``$env_var`` when given, else prompted (hidden; twice when ``confirm``).
    Raises ConfigurationError when the variable is unset or empty."""
    import os

    from pydantic import SecretStr

    from envsteward.errors import ConfigurationError

    if env_var is not None:
        value = os.environ.get(env_var)
        if not value:
            raise ConfigurationError(
                f"--passphrase-env {env_var}: the environment variable is not set or empty"
            )
        return SecretStr(value)
    prompted = typer.prompt(
        "Passphrase for the backup key export",
        hide_input=True,
        confirmation_prompt="Repeat the passphrase" if confirm else False,
    )
    return SecretStr(str(prompted))


def _write_new_file(path: Path, text: str) -> None:
    """Create ``path`` (mode 0600) holding ``text``; never overwrite. Raises ConfigurationError."""
    import os

    from envsteward.errors import ConfigurationError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{path} already exists: choose another name (an export is never overwritten)"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@key_app.command("export")
def key_export(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the export to this new file (mode 0600) instead of stdout."),
    ] = None,
    passphrase_env: PassphraseEnvOption = None,
) -> None:
    """Print (or write) the local backup key wrapped with a passphrase; keep it apart from the backups."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_key_export)(out, passphrase_env))


def _key_export(out: Path | None, passphrase_env: str | None) -> int:
    from envsteward.adapters.local_keys import LocalKeyProvider, export_key, record_export
    from envsteward.backup.keys import local_key_file
    from envsteward.cli._common import EXIT_OK, err_console, load_settings

    key_file = local_key_file(load_settings().home)
    key_id = LocalKeyProvider(key_file, create=False).key_id  # a missing key: clear error before prompting
    text = export_key(key_file, _passphrase(passphrase_env, confirm=True))
    if out is not None:
        _write_new_file(out, text)
    else:
        typer.echo(text, nl=False)
    record_export(key_file, key_id)
    err_console().print(
        f"exported backup key {key_id} from {key_file}"
        + (f" to {out}" if out is not None else "")
        + ", wrapped with your passphrase. Keep the export and the passphrase apart from the backups "
        "(another site or a password manager), and try `envsteward backup key import` with them once.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


@key_app.command("import")
def key_import(
    file: Annotated[Path, typer.Argument(help="A file written by `envsteward backup key export`.")],
    passphrase_env: PassphraseEnvOption = None,
) -> None:
    """Install an exported backup key as the local key (refused if a different key is already there)."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_key_import)(file, passphrase_env))


def _key_import(file: Path, passphrase_env: str | None) -> int:
    from envsteward.adapters.local_keys import import_key
    from envsteward.backup.keys import local_key_file
    from envsteward.cli._common import EXIT_OK, console, load_settings
    from envsteward.errors import ConfigurationError

    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_EXPORT_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {file}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_EXPORT_FILE_BYTES:
        raise ConfigurationError(f"{file} is larger than any key export ({MAX_EXPORT_FILE_BYTES} bytes)")
    key_file = local_key_file(load_settings().home)
    result = import_key(
        key_file,
        data.decode("utf-8", errors="replace"),
        _passphrase(passphrase_env, confirm=False),
        source=str(file),
    )
    if result.installed:
        message = f"installed backup key {result.key_id} as {key_file}"
    else:
        message = f"{key_file} already holds backup key {result.key_id}: nothing changed"
    console().print(message, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK
