"""Placeholder until the validate command lands."""

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the top-level app."""
