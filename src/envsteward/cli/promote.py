"""Placeholder until the promotion commands land."""

import typer


def register(app: typer.Typer) -> None:
    """Add the promote, approve and reject commands to the top-level app."""
