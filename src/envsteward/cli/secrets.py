"""``envsteward secrets …``: the secret inventory, now, without Prefect. Read-only: creates nothing.

``envsteward secrets list [--env E] [--json]`` shows every secret reference with its state, version, age
and due date (exit 0; 1 when something could not be read or on error). ``envsteward secrets check [--env E]
[--json]`` shows the findings (missing, overdue, due, orphans, plaintext, expiring certificates): exit 0
clean, 2 findings, 1 error or an incomplete inventory (never 2 for a usage error).

Only typer is imported at module level; the inventory, pydantic and rich load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envsteward.cli.drift import _UsageErrorsExitOne

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from envsteward.inventory.model import EnvironmentInventory

EXIT_FINDINGS = 2

app = typer.Typer(help="The secret inventory: references, ages, orphans, plaintext, certificates.")

EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Environment (repeatable); default: every environment."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG).")
]


@app.command("list", cls=_UsageErrorsExitOne)
def list_secrets(env: EnvOption = None, as_json: JsonOption = False, catalog: CatalogOption = None) -> None:
    """Every secret reference with its state, version, last change, age and due date."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_run)(env or [], as_json, catalog, findings_only=False))


@app.command("check", cls=_UsageErrorsExitOne)
def check_secrets(env: EnvOption = None, as_json: JsonOption = False, catalog: CatalogOption = None) -> None:
    """The findings: exit 0 clean, 2 findings, 1 error (or something could not be read)."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_run)(env or [], as_json, catalog, findings_only=True))


def _run(environments: list[str], as_json: bool, catalog: Path | None, *, findings_only: bool) -> int:
    """Run the inventory and print it; return the exit code. Raises envsteward errors (catalog, settings)."""
    import json

    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, console, err_console, services_for
    from envsteward.inventory.model import InventoryStatus
    from envsteward.inventory.report import inventory_result, overall_status
    from envsteward.inventory.runner import run_inventory

    inventories = run_inventory(services_for(catalog), environments or None)
    if as_json:
        typer.echo(json.dumps(inventory_result(inventories), indent=2, ensure_ascii=False))
    else:
        out = console()
        for inv in inventories:
            out.print(_findings_table(inv) if findings_only else _secrets_table(inv))
    status = overall_status(inventories)
    if status is InventoryStatus.UNKNOWN:
        from rich.text import Text

        for inv in inventories:
            for error in inv.errors:
                err_console().print(Text(f"{inv.environment}: {error}"), highlight=False, soft_wrap=True)
        err_console().print("[bold red]the inventory is incomplete: something could not be read[/]")
        return EXIT_ERROR
    if findings_only and status is InventoryStatus.FINDINGS:
        return EXIT_FINDINGS
    return EXIT_OK


_STYLES = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
    "ok": "green",
    "due": "yellow",
    "overdue": "red",
    "missing": "bold red",
    "unknown": "magenta",
}
_BOUNDARIES = "/#."


def id_text(text: str, width: int, style: str = "") -> Text:
    """``text`` (a reference, path or location) broken into lines of at most ``width`` only after ``/``,
    ``#`` or ``.``: an identifier's segments are never split. A single segment longer than ``width`` is
    kept whole on its line."""
    from rich.text import Text

    lines: list[str] = []
    current = ""
    segment = ""
    for char in text:
        segment += char
        if char in _BOUNDARIES:
            if current and len(current) + len(segment) > width:
                lines.append(current)
                current = ""
            current += segment
            segment = ""
    if current and len(current) + len(segment) > width:
        lines.append(current)
        current = ""
    lines.append(current + segment)
    return Text("\n".join(lines), style=style, no_wrap=True, overflow="ignore")


def _table(inv: EnvironmentInventory, title_suffix: str) -> tuple[Table, int]:
    from rich import box
    from rich.table import Table

    from envsteward.cli._common import console

    table = Table(
        title=f"{inv.environment} ({inv.tier}): {title_suffix}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
        expand=False,
    )
    return table, max(30, console().width - 20)


def _secrets_table(inv: EnvironmentInventory) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    table, width = _table(inv, f"{len(inv.statuses)} secret reference(s), {inv.status.value}")
    table.add_column("state", no_wrap=True)
    table.add_column("secret (used at)")
    for status in inv.statuses:
        facts = [status.state.value]
        if status.age_days is not None:
            limit = f"/{status.max_age_days}" if status.max_age_days else ""
            facts.append(f"{status.age_days}{limit} d")
        if status.due_at is not None:
            facts.append(f"due {status.due_at:%Y-%m-%d}")
        if status.version:
            facts.append(f"v{status.version[:8]}")
        if status.certificate is not None:
            facts.append(f"cert {status.certificate.not_after:%Y-%m-%d}")
        state = Text("\n".join(facts), style=_STYLES.get(status.state.value, ""))
        used = Text("used at " + ", ".join(status.used_at), style="dim")
        table.add_row(
            state, Group(id_text(status.reference, width), used, Text(status.reason)), end_section=True
        )
    return _with_extras(table, inv, width, include_findings=True)


def _findings_table(inv: EnvironmentInventory) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    table, width = _table(inv, f"{len(inv.findings)} finding(s), {inv.status.value}")
    table.add_column("severity", no_wrap=True)
    table.add_column("finding")
    for finding in inv.findings:
        where = Text(f"at {finding.origin}", style="dim") if finding.origin else Text("")
        table.add_row(
            Text(
                f"{finding.severity.value}\n{finding.kind.value}",
                style=_STYLES.get(finding.severity.value, ""),
            ),
            Group(id_text(finding.subject, width, "bold"), Text(finding.reason), where),
            end_section=True,
        )
    return _with_extras(table, inv, width, include_findings=False)


def _with_extras(
    table: RenderableType, inv: EnvironmentInventory, width: int, *, include_findings: bool
) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [table]
    if include_findings:
        others = [f for f in inv.findings if f.subject not in {s.reference for s in inv.statuses}]
        for finding in others:
            parts.append(
                Text(
                    f"{finding.severity.value} {finding.kind.value}: ",
                    style=_STYLES.get(finding.severity.value, ""),
                )
            )
            parts.append(id_text(finding.subject, width))
            parts.append(Text(f"  {finding.reason}" + (f" (at {finding.origin})" if finding.origin else "")))
    return Group(*parts)


def render_check(inventories: Sequence[EnvironmentInventory]) -> list[RenderableType]:
    """The ``check`` tables (exposed for tests)."""
    return [_findings_table(inv) for inv in inventories]
