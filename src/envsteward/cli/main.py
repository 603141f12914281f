"""The ``envsteward`` command line.

Subcommand modules import only typer at module level; everything heavy (pydantic models, boto3, hvac,
prefect) is imported inside the command functions so that ``envsteward --help`` answers in well under a
second.
"""

from __future__ import annotations

import typer

from envsteward import __version__
from envsteward.cli import (
    audit,
    backup,
    drift,
    drill,
    health,
    pitr,
    promote,
    retention,
    secrets,
    status,
    validate,
    wal,
)

app = typer.Typer(
    name="envsteward",
    help="Keep development, staging and production consistent, recoverable and safe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the envsteward version."""
    typer.echo(f"envsteward {__version__}")


validate.register(app)
health.register(app)
promote.register(app)
status.register(app)
app.add_typer(audit.app, name="audit")
app.add_typer(drift.app, name="drift")
app.add_typer(backup.app, name="backup")
app.add_typer(drill.app, name="drill")
app.add_typer(retention.app, name="retention")
app.add_typer(secrets.app, name="secrets")
app.add_typer(wal.app, name="wal")
app.add_typer(pitr.app, name="pitr")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
