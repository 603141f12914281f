"""``envsteward status``: every environment at a glance, from the state the flows keep. Read-only.

Exit codes: 0 when every environment is green, 1 when any is red (or the catalog/settings are wrong);
amber alone exits 0 with a warning on stderr. ``--watch`` redraws the table in place every few seconds
(rich Live) until Ctrl-C, then exits like a single run would on the last view.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from envsteward.status.model import PlatformStatus

AREA_WIDTH = 10
ENV_WIDTH = 11


def register(app: typer.Typer) -> None:
    """Add the ``status`` command to the top-level app."""

    @app.command("status")
    def status(
        env: Annotated[
            list[str] | None,
            typer.Option("--env", "-e", help="Environment to show (repeatable); default: every environment."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
        watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
        interval: Annotated[
            float, typer.Option("--interval", min=1.0, help="Seconds between refreshes with --watch.")
        ] = 5.0,
        catalog: Annotated[
            Path | None,
            typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG)."),
        ] = None,
    ) -> None:
        """Show health, drift, backups, DR drills, secrets and promotions of every environment."""
        from envsteward.cli._common import handle_errors

        raise typer.Exit(handle_errors(_run)(env or [], as_json, watch, interval, catalog))


def _gather(environments: list[str], catalog: Path | None) -> PlatformStatus:
    """The same function as the ``platform-status`` artifact (Prefect is asked only about a promotion
    that holds a lease, and only when ``PREFECT_API_URL`` is set)."""
    import importlib

    from envsteward.cli._common import services_for

    # tasks/ is mapped into the distribution as envsteward.tasks (pyproject package-dir); imported by name
    current_status = importlib.import_module("envsteward.tasks.status_view").current_status
    status: PlatformStatus = current_status(services_for(catalog), environments=environments or None)
    return status


def _run(environments: list[str], as_json: bool, watch: bool, interval: float, catalog: Path | None) -> int:
    """Print the status (once, or until Ctrl-C with ``watch``); return the exit code."""
    import json
    import time

    from envsteward.cli._common import console

    status = _gather(environments, catalog)
    if as_json:
        typer.echo(json.dumps(status.as_json(), indent=2, ensure_ascii=False))
        return _exit_code(status, quiet=True)
    if not watch:
        console().print(status_table(status, console().width))
        return _exit_code(status)
    from rich.live import Live

    try:
        with Live(status_table(status, console().width), console=console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                status = _gather(environments, catalog)
                live.update(status_table(status, console().width), refresh=True)
    except KeyboardInterrupt:
        pass
    return _exit_code(status)


def _exit_code(status: PlatformStatus, *, quiet: bool = False) -> int:
    from rich.markup import escape

    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, err_console
    from envsteward.status.model import Level

    if quiet:
        return EXIT_ERROR if status.red else EXIT_OK
    for error in status.errors:
        err_console().print(f"[yellow]could not read:[/] {escape(error)}", highlight=False)
    if status.red:
        err_console().print(f"[bold red]red:[/] {escape(', '.join(status.red))}", highlight=False)
        return EXIT_ERROR
    amber = [row.environment for row in status.rows if row.verdict is not Level.GREEN]
    if amber:
        err_console().print(f"[yellow]warning:[/] needs a look: {escape(', '.join(amber))}", highlight=False)
    return EXIT_OK


def status_table(status: PlatformStatus, width: int) -> Table:
    """One block of rows per environment: its verdict, then an area per row (state, details, run link).
    Three columns, so it reads at 80 columns; texts wrap at spaces only, so an id is never split."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from envsteward.status.model import AREAS
    from envsteward.status.render import STYLES, TITLES

    table = Table(
        title=f"platform status, {status.generated_at.strftime('%Y-%m-%d %H:%M:%S')} UTC",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
        expand=width >= 60,
    )
    # an environment name is an id: its column is as wide as the longest one (the verdict fits under it)
    env_width = max([ENV_WIDTH, *(len(row.environment) for row in status.rows)])
    table.add_column("environment", width=env_width, no_wrap=True)
    table.add_column("area", width=AREA_WIDTH, no_wrap=True)
    table.add_column("state", ratio=1)  # wraps at spaces; a single word longer than the column folds
    room = max(20, width - env_width - AREA_WIDTH - 8)
    for index, row in enumerate(status.rows):
        for position, area in enumerate(AREAS):
            cell = row.cells[area]
            first = Text()
            if position == 0:
                first = Text(row.environment, style="bold")
            elif position == 1:
                first = Text(row.verdict.value.upper(), style=STYLES[row.verdict])
            state = Text(cell.text, style=STYLES[cell.level])
            for line in cell.lines:
                state.append("\n  " + line, style="dim")
            if cell.link:
                # a URL is an id: shown whole, or as the run id it ends with when it would not fit
                shown = (
                    cell.link if len(cell.link) + 2 <= room else "run " + cell.link.rstrip("/").split("/")[-1]
                )
                state.append("\n  " + shown, style="dim")
            table.add_row(
                first,
                TITLES[area],
                state,
                end_section=position == len(AREAS) - 1 and index < len(status.rows) - 1,
            )
    return table
