"""``envsteward validate``: check a catalog and evaluate its tier rules.

Only typer is imported at module level; the catalog, the policy engine and rich load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from envsteward.catalog import Catalog, CatalogError
    from envsteward.policy import Violation


def register(app: typer.Typer) -> None:
    """Add the command to the top-level app."""
    app.command("validate")(validate)


def validate(
    catalog: Annotated[
        Path | None,
        typer.Argument(help="Catalog folder (default: the `catalog` setting, ENVSTEWARD_CATALOG)."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Only this environment (repeatable). Default: every environment."),
    ] = None,
) -> None:
    """Validate the catalog and check each environment against its tier rules.

    Exit code 0 when the catalog is valid and no tier rule is broken, 1 otherwise.
    """
    from envsteward.catalog import CatalogError, load_catalog
    from envsteward.cli._common import load_settings
    from envsteward.errors import EnvstewardError

    out = _console()
    folder = catalog if catalog is not None else load_settings().catalog
    try:
        loaded = load_catalog(folder)
    except CatalogError as exc:
        _print_problems(out, folder, exc)
        raise typer.Exit(1) from None
    except EnvstewardError as exc:  # e.g. a broken packaged default
        out.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    try:
        names = _selected(loaded, env)
    except CatalogError as exc:
        out.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    broken = _report_environments(out, loaded, names)
    if broken:
        count = sum(len(found) for found in broken.values())
        out.print(
            f"invalid: {count} tier-rule violation{'s' if count != 1 else ''} in {', '.join(broken)}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    out.print(
        f"valid: {len(names)} environment{'s' if len(names) != 1 else ''} pass their tier rules", markup=False
    )


def _console() -> Console:
    import sys

    from rich.console import Console

    # Wide when not a terminal (CI logs, pipes) so that table cells are not wrapped mid-path. No markup and
    # no emoji: a file name, key or message can contain anything ("environments.yaml:100:" is not 💯).
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False, markup=False, emoji=False)


def _selected(catalog: Catalog, wanted: list[str] | None) -> list[str]:
    if not wanted:
        return list(catalog.promotion_path)
    for name in wanted:
        catalog.environment(name)  # raises CatalogError naming the known environments
    return [name for name in catalog.promotion_path if name in wanted]


def _print_problems(out: Console, folder: Path, exc: CatalogError) -> None:
    problems = exc.problems
    if not problems:
        out.print(f"error: {exc}", markup=False)
        return
    out.print(
        f"catalog {folder} is invalid: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
        markup=False,
    )
    for problem in problems:
        out.print(f"  {problem}", markup=False, soft_wrap=True)


def _report_environments(out: Console, catalog: Catalog, names: list[str]) -> dict[str, list[Violation]]:
    from rich.table import Table
    from rich.text import Text

    from envsteward.policy import evaluate_tier_rules

    out.print(
        f"catalog {catalog.root} (platform {catalog.platform}): "
        f"promotion path {' -> '.join(catalog.promotion_path)}",
        markup=False,
    )
    broken: dict[str, list[Violation]] = {}
    for name in names:
        spec = catalog.environment(name)
        rules = catalog.tier_rules(name)
        violations = evaluate_tier_rules(rules, catalog.render(name))
        if not violations:
            out.print(f"ok  {name} ({spec.tier}): {len(rules)} tier rules pass", markup=False)
            continue
        broken[name] = violations
        table = Table(
            title=Text(
                f"{name} ({spec.tier}): {len(violations)} violation{'s' if len(violations) != 1 else ''} "
                f"of {len(rules)} tier rules"
            ),
            title_justify="left",
        )
        for column in ("rule", "severity", "path", "origin", "problem"):
            table.add_column(column, overflow="fold")
        for violation in violations:
            table.add_row(
                *(
                    Text(cell)
                    for cell in (
                        violation.rule_id,
                        violation.severity.value,
                        violation.path,
                        violation.origin or "-",
                        violation.message,
                    )
                )
            )
        out.print(table)
    return broken
