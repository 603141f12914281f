"""``envsteward secrets …``: the secret inventory, now, without Prefect. Read-only: creates nothing.

``envsteward secrets rotate ENV REF [--dry-run]`` runs the ``rotate-secret`` flow in this process (a
production secret waits for approval: answer with the Resume form); ``--dry-run`` prints the plan and
changes nothing. It prints the outcome, never a value.

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
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from envsteward.inventory.model import EnvironmentInventory, Finding

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


@app.command("rotate", cls=_UsageErrorsExitOne)
def rotate_secret_command(
    environment: Annotated[str, typer.Argument(help="The environment whose secret it is.")],
    reference: Annotated[
        str, typer.Argument(help="The secret reference, e.g. vault://secret/app/db#password.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to approvers, audited).")] = "",
    catalog: CatalogOption = None,
) -> None:
    """Rotate one secret now: create a pending value, set it where used, test it, make it current."""
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_rotate)(environment, reference, dry_run, reason, catalog))


def _rotate(environment: str, reference: str, dry_run: bool, reason: str, catalog: Path | None) -> int:
    """Run the rotate-secret flow locally and print its outcome. Raises envsteward errors."""
    import importlib

    from rich.markdown import Markdown

    from envsteward.cli._common import EXIT_OK, console, services_for
    from envsteward.cli.promote import _run_locally
    from envsteward.services import set_services

    if catalog is not None:
        set_services(services_for(catalog))
    # flows/ is mapped into the distribution as envsteward.flows (pyproject package-dir); imported by name
    # so that mypy, which checks src/ only, does not follow it
    rotate_secret = importlib.import_module("envsteward.flows.rotate_secret").rotate_secret
    parameters = {"environment": environment, "reference": reference, "dry_run": dry_run, "reason": reason}
    result = _run_locally(rotate_secret, parameters, "the rotation run")
    out = console()
    if result.get("plan_markdown"):
        out.print(Markdown(result["plan_markdown"]))
    out.print(f"{result['outcome']}: {result['message']}", markup=False, highlight=False)
    return EXIT_OK


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


STATE_WIDTH = 14
"""The first column of ``list`` (``due 2026-12-08``); ``check``'s is the severity."""
SEVERITY_WIDTH = 8


def _table(inv: EnvironmentInventory, title_suffix: str, first: str, first_width: int) -> tuple[Table, int]:
    """A full-width table with a fixed first column; returns it and the width left for identifiers."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from envsteward.cli._common import console

    table = Table(
        title=escape(f"{inv.environment} ({inv.tier}): {title_suffix}"),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
        expand=True,
    )
    table.add_column(first, no_wrap=True, width=first_width)
    table.add_column("secret (used at)" if first == "state" else "finding", ratio=1)
    # edges (2) and each column's padding (2 x 2), and one spare
    return table, max(20, console().width - first_width - 7)


def _finding_cell(finding: Finding, width: int, *, with_kind: bool) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = []
    if with_kind:
        parts.append(Text(finding.kind.value, style=_STYLES.get(finding.severity.value, "")))
    parts += [id_text(finding.subject, width, "bold"), Text(finding.reason)]
    if finding.origin:
        parts.append(Text(f"at {finding.origin}", style="dim"))
    return Group(*parts)


def _secrets_table(inv: EnvironmentInventory) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    suffix = f"{len(inv.statuses)} secret reference(s), {inv.status.value}"
    table, width = _table(inv, suffix, "state", STATE_WIDTH)
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
            facts.append(f"exp {status.certificate.not_after:%Y-%m-%d}")
        state = Text("\n".join(facts), style=_STYLES.get(status.state.value, ""))
        used = Text("used at " + ", ".join(status.used_at), style="dim")
        table.add_row(
            state, Group(id_text(status.reference, width), used, Text(status.reason)), end_section=True
        )
    references = {status.reference for status in inv.statuses}
    for finding in inv.findings:
        if finding.subject not in references:  # orphans and plaintext: no reference of their own
            state = Text(
                f"{finding.kind.value}\n{finding.severity.value}",
                style=_STYLES.get(finding.severity.value, ""),
            )
            table.add_row(state, _finding_cell(finding, width, with_kind=False), end_section=True)
    return table


def _findings_table(inv: EnvironmentInventory) -> RenderableType:
    from rich.text import Text

    table, width = _table(
        inv, f"{len(inv.findings)} finding(s), {inv.status.value}", "severity", SEVERITY_WIDTH
    )
    for finding in inv.findings:
        table.add_row(
            Text(finding.severity.value, style=_STYLES.get(finding.severity.value, "")),
            _finding_cell(finding, width, with_kind=True),
            end_section=True,
        )
    return table
