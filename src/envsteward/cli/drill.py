"""``envsteward drill``: run disaster-recovery drills and read their history, without Prefect.

* ``drill run [--env E] [--backup ID|latest|random] [--region dr|primary] [--target T]`` — restore the
  backup from the DR region (by default) into a scratch target, verify it, run the health checks and smoke
  queries, measure RTO and RPO, tear the scratch target down; record it in the history and alert like the
  flow does (``--no-notify`` to skip alerts). Without ``--env``: every environment whose catalog entry has
  a ``drill`` section. ``--report FILE`` writes the markdown report (with the chart).
  Exit codes: 0 passed, 1 failed (or an error), 3 verified but a target missed.
  Every run first sweeps abandoned drills (killed ones; see :mod:`envsteward.drill.abandoned`) and prints
  what it found as notes.
* ``drill history [--env E] [--limit N] [--json] [--chart FILE.svg]`` — past drills, newest first,
  abandoned ones (found by a later drill's sweep) with status ``abandoned``. Read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envsteward.cli._common import services_for

if TYPE_CHECKING:
    from envsteward.drill import DrillRecord
    from envsteward.services import Services

app = typer.Typer(help="Run disaster-recovery drills and read their history.", no_args_is_help=True)

EXIT_TARGET_MISSED = 3

CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG).")
]
EnvOption = Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.2f}"


# ---------------------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------------------


@app.command("run")
def run(  # noqa: PLR0917 - typer options
    env: EnvOption = None,
    backup: Annotated[
        str, typer.Option("--backup", "-b", help="A backup id, 'latest' or 'random' (among those kept).")
    ] = "latest",
    region: Annotated[
        str, typer.Option("--region", "-r", help="'dr' (restore the replica) or 'primary'.")
    ] = "dr",
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Backup target (default: the catalog's drill.target)."),
    ] = None,
    notify: Annotated[bool, typer.Option("--notify/--no-notify", help="Send the drill's alerts.")] = True,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the markdown report here (one env only).")
    ] = None,
    as_json: JsonOption = False,
    catalog: CatalogOption = None,
) -> None:
    """Run a DR drill now: restore, verify, measure RTO/RPO, tear down."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_run)(env, backup, region, target, notify, report, as_json, catalog))


def drill_environments(services: Services, environment: str | None) -> list[str]:
    """The named environment, or every environment with a ``drill`` section. Raises CatalogError."""
    catalog = services.catalog()
    if environment is not None:
        catalog.environment(environment)
        return [environment]
    return [name for name, spec in catalog.environments.items() if spec.drill is not None]


def _run(  # noqa: PLR0917 - the command's options
    environment: str | None,
    backup: str,
    region: str,
    target: str | None,
    notify: bool,
    report: Path | None,
    as_json: bool,
    catalog: Path | None,
) -> int:
    import json

    from rich.markup import escape

    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console
    from envsteward.drill import (
        DrillStatus,
        load_history,
        previous_drill,
        render_markdown,
        run_drill,
        save_drill,
    )
    from envsteward.errors import ConfigurationError

    services = services_for(catalog)
    names = drill_environments(services, environment)
    if not names:
        console().print("No environment has a drill section in the catalog; pass --env to drill one.")
        return EXIT_OK
    if report is not None and len(names) > 1:
        raise ConfigurationError("--report writes one environment's report: add --env")
    records: list[DrillRecord] = []
    undelivered: list[str] = []
    for name in names:
        record = run_drill(services, name, backup, region, target=target)
        store = services.state_store()
        save_drill(store, record)
        history = load_history(store, name, 12)
        if notify:
            undelivered += _send_alerts(services, record, previous_drill(history, record.drill_id))
        if report is not None:
            report.write_text(render_markdown(record, history), encoding="utf-8")
        records.append(record)
    if as_json:
        typer.echo(json.dumps([record.as_json() for record in records], indent=2))
    else:
        _print_records(records)
    for line in undelivered:
        err_console().print(f"[yellow]alert not delivered:[/] {escape(line)}")
    statuses = {record.status for record in records}
    if DrillStatus.FAILED in statuses:
        return EXIT_ERROR
    if DrillStatus.TARGET_MISSED in statuses:
        return EXIT_TARGET_MISSED
    return EXIT_OK


def _send_alerts(services: Services, record: DrillRecord, previous: DrillRecord | None) -> list[str]:
    """Send the drill's alerts; return a line per notification that could not be delivered."""
    from envsteward.drill import drill_alerts
    from envsteward.drill.alerts import channel_kinds
    from envsteward.errors import EnvstewardError

    catalog = services.catalog()
    pairs = drill_alerts(
        record,
        catalog.environment(record.environment).notify,
        channel_kinds(catalog.channels),
        previous,
    )
    problems: list[str] = []
    for channel, notification in pairs:
        try:
            (notifier,) = services.notifiers([channel])
            notifier.send(notification)
        except EnvstewardError as exc:
            problems.append(f"{channel}: {exc}")
    return problems


def _print_records(records: list[DrillRecord]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from envsteward.cli._common import console, err_console
    from envsteward.drill import DrillStatus

    colours = {DrillStatus.PASSED: "green", DrillStatus.TARGET_MISSED: "yellow", DrillStatus.FAILED: "red"}
    for record in records:
        table = Table(title=f"DR drill {record.label()} ({record.drill_id})")
        for column in ("phase", "seconds", "result", "detail"):
            table.add_column(column, overflow="fold")
        for phase in record.phases:
            table.add_row(phase.name.value, f"{phase.seconds:.2f}", phase.result.value, escape(phase.detail))
        console().print(table)
        colour = colours[record.status]
        console().print(
            f"[{colour}]{record.status.value}[/]  backup {escape(record.backup_id or '-')} "
            f"({record.region})  RTO {_minutes(record.rto_seconds)} min "
            f"(target {_minutes(record.rto.target_seconds if record.rto else None)})  "
            f"RPO {_minutes(record.rpo_seconds)} min "
            f"(target {_minutes(record.rpo.target_seconds if record.rpo else None)})",
            highlight=False,
        )
        if record.error:
            err_console().print(f"[bold red]failed:[/] {escape(record.error)}", soft_wrap=True)
        if record.scratch_removed is False:
            err_console().print(f"[bold red]scratch target NOT removed:[/] {escape(record.scratch or '')}")
        for note in record.notes:  # what the sweep of abandoned drills found, a mark that failed
            err_console().print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)


# ---------------------------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------------------------


@app.command("history")
def history(
    env: EnvOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many per environment.")
    ] = 20,
    as_json: JsonOption = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write an SVG chart of RTO/RPO (one env only).")
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Show past drills, newest first."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_history)(env, limit, as_json, chart, catalog))


def _history(
    environment: str | None, limit: int, as_json: bool, chart: Path | None, catalog: Path | None
) -> int:
    import json

    from rich.table import Table

    from envsteward.cli._common import EXIT_OK, console
    from envsteward.drill import history_rows, load_history, render_svg
    from envsteward.errors import ConfigurationError

    services = services_for(catalog)
    if environment is not None:
        services.catalog().environment(environment)
        names = [environment]
    else:
        names = list(services.catalog().environments)
    if chart is not None and len(names) != 1:
        raise ConfigurationError("--chart draws one environment: add --env")
    store = services.state_store()
    per_env = {name: load_history(store, name, limit) for name in names}
    if chart is not None:
        chart.write_text(render_svg(per_env[names[0]]), encoding="utf-8")
    rows = [{"environment": name, **row} for name in names for row in history_rows(per_env[name])]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        console().print("No drills recorded yet.")
        return EXIT_OK
    table = Table(title="DR drills")
    for column in ("started", "env", "target", "status", "RTO min", "RPO min", "backup", "failed phase"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["status"]
        colour = {"passed": "green", "target_missed": "yellow", "abandoned": "magenta"}.get(status, "red")
        table.add_row(
            row["started"],
            row["environment"],
            row["target"],
            f"[{colour}]{status}[/]",
            "-" if row["rto_minutes"] is None else f"{row['rto_minutes']:.2f}",
            "-" if row["rpo_minutes"] is None else f"{row['rpo_minutes']:.2f}",
            row["backup_id"],
            row["failed_phase"] or "",
        )
    console().print(table)
    return EXIT_OK
