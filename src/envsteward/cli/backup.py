"""Placeholder until the backup commands land."""

import typer

app = typer.Typer(help="backup commands", no_args_is_help=True)
