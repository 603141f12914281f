"""Placeholder until the retention commands land."""

import typer

app = typer.Typer(help="retention commands", no_args_is_help=True)
