"""``envsteward health``: run every health check now, without Prefect, and print the result.

Exit codes: 0 when every check is up (or only degraded: a warning is printed to stderr), 1 when any check
is down or the catalog/settings are wrong.
"""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``health`` command to the top-level app."""

    @app.command("health")
    def health(
        env: Annotated[
            list[str] | None,
            typer.Option(
                "--env", "-e", help="Environment to check (repeatable); default: every environment."
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON summary instead of a table.")
        ] = False,
        catalog: Annotated[
            Path | None,
            typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG)."),
        ] = None,
    ) -> None:
        """Run the catalog's health checks now and show environment x check status."""
        from envsteward.cli._common import handle_errors

        raise typer.Exit(handle_errors(_run)(env or [], as_json, catalog))


def _run(environments: list[str], as_json: bool, catalog: Path | None) -> int:
    """Run the checks and print them; return the exit code. Raises envsteward errors (catalog, settings)."""
    import json

    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console, services_for
    from envsteward.health.report import overall_status, rich_table, summary
    from envsteward.health.result import CheckStatus
    from envsteward.health.runner import plan_checks, run_planned

    services = services_for(catalog)
    results = run_planned(services, plan_checks(services.catalog(), environments or None))

    if as_json:
        typer.echo(json.dumps(summary(results), indent=2, ensure_ascii=False))
    elif results:
        console().print(rich_table(results))
    else:
        console().print("No health checks are defined for the selected environment(s).")

    status = overall_status(results)
    if status is CheckStatus.DOWN:
        down = sum(1 for r in results if r.status is CheckStatus.DOWN)
        err_console().print(f"[bold red]{down} check(s) down[/]")
        return EXIT_ERROR
    if status is CheckStatus.DEGRADED:
        degraded = sum(1 for r in results if r.status is CheckStatus.DEGRADED)
        err_console().print(f"[yellow]warning:[/] {degraded} check(s) degraded")
    return EXIT_OK
