"""``envsteward drift …``: compare configurations.

``envsteward drift diff A B [--rules FILE] [--json]`` compares two YAML or JSON documents directly (A is the
desired side, B the live side). Exit codes: 0 no drift, 2 drift found, 1 error (a bad file or rules file,
or bad command-line usage: never 2, so that 2 always means drift).

Only typer is imported at module level; the engine, pydantic and rich load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from envsteward.drift import DriftReport, DriftRules

EXIT_DRIFT = 2

app = typer.Typer(
    help="Compare configurations: desired vs live, environment vs environment.", no_args_is_help=True
)


class _UsageErrorsExitOne(TyperCommand):
    """Click exits 2 on usage errors; here 2 means "drift found", so usage errors exit 1."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            # typer vendors its own click: match its UsageError by behaviour, not by class
            if getattr(exc, "exit_code", None) == EXIT_DRIFT:
                exc.exit_code = 1  # type: ignore[attr-defined]
            raise


@app.command("diff", cls=_UsageErrorsExitOne)
def diff(
    desired: Annotated[Path, typer.Argument(help="The desired document (YAML or JSON).", show_default=False)],
    live: Annotated[Path, typer.Argument(help="The live document (YAML or JSON).", show_default=False)],
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules", help="A YAML/JSON DriftRules document (severity, secret_paths, ignore, list_keys)."
        ),
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", "-e", help="Apply the ignore rules of this environment.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare two documents (A = desired, B = live). Exit 0: no drift, 2: drift, 1: error."""
    from envsteward.cli._common import fail
    from envsteward.drift import compare
    from envsteward.drift.documents import load_document
    from envsteward.errors import ConfigurationError

    try:
        drift_rules = _load_rules(rules) if rules is not None else None
        desired_data, origins = load_document(desired, label=str(desired))
        live_data, _ = load_document(live, label=str(live))
        report = compare(desired_data, live_data, drift_rules, environment=environment, origins=origins)
    except ConfigurationError as exc:
        fail(str(exc))
        return
    if as_json:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report)
    if report.items:
        raise typer.Exit(EXIT_DRIFT)


def _load_rules(path: Path) -> DriftRules:
    """Read and validate a DriftRules document.

    Raises DocumentError naming the file, the line and the field."""
    from pydantic import ValidationError

    from envsteward.drift import DriftRules
    from envsteward.drift.documents import DocumentError, load_document
    from envsteward.tree import join

    data, origins = load_document(path)
    if data is None:
        data = {}
    try:
        return DriftRules.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = ""
            for part in error["loc"]:
                field = join(field, part if isinstance(part, int) else str(part))
            line = _nearest_origin(origins, error["loc"])
            where = f"line {line}: " if line else ""
            problems.append(f"{where}field {field or '(document)'}: {error['msg']}")
        raise DocumentError(f"{path}: invalid drift rules: " + "; ".join(problems)) from None


def _nearest_origin(origins: dict[str, str], loc: tuple[Any, ...]) -> str | None:
    from envsteward.tree import join

    paths = [""]
    for part in loc:
        paths.append(join(paths[-1], part if isinstance(part, int) else str(part)))
    for candidate in reversed(paths):
        if candidate in origins:
            return origins[candidate].rsplit(":", 1)[-1]
    return None


_STYLES = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _short(value: Any, present: bool) -> str:
    import json

    if not present:
        return "—"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _print_report(report: DriftReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from envsteward.cli._common import console

    out = console()
    if report.items:
        table = Table(title="Drift", show_lines=False)
        for column in ("severity", "kind", "path"):
            table.add_column(column, no_wrap=True)
        for column in ("desired", "live", "origin", "heal"):
            table.add_column(column, overflow="fold")
        for item in report.items:
            style = _STYLES.get(item.severity.value, "")
            heal = "yes" if item.healable else "no"
            if item.ignored_by:
                heal = f"no (expired ignore {item.ignored_by})"
            table.add_row(
                f"[{style}]{item.severity.value}[/]",
                item.kind.value,
                escape(item.path or "(root)"),
                escape(_short(item.desired, item.desired_type is not None)),
                escape(_short(item.live, item.live_type is not None)),
                escape(item.origin or ""),
                escape(heal),
            )
        out.print(table)
    summary = report.summary
    if summary.total:
        counts = ", ".join(f"{n} {name}" for name, n in summary.by_severity.items() if n)
        out.print(f"{summary.total} drift item(s): {counts}", highlight=False)
    else:
        out.print("No drift.", highlight=False)
    if summary.ignored:
        out.print(f"{summary.ignored} item(s) hidden by ignore rules.", highlight=False)
    for rule in report.expired_ignores:
        out.print(
            f"[yellow]expired ignore[/] {escape(rule.path)} (expired {rule.expires}, "
            f"reason: {escape(rule.reason)}):"
            f" no longer hides drift, {rule.matched} item(s) reported",
            highlight=False,
        )


@app.command("scan", cls=_UsageErrorsExitOne)
def scan(
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment to scan (repeatable); default: every environment."),
    ] = None,
    heal: Annotated[
        bool,
        typer.Option(
            "--heal",
            help="Write back items at or below the catalog's heal threshold (re-read first, verify after, "
            "audited). Items above it need approval in the drift-scan flow.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 2 only for open drift at or above this severity (critical, high, medium, low); "
            "default: any drift.",
        ),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="Catalog folder (default: settings, ENVSTEWARD_CATALOG)."),
    ] = None,
) -> None:
    """Scan live environments against the catalog now, without Prefect (no alerts, no alert state).

    Exit 0: no drift at or above the threshold; 2: there is; 1: error, or an environment could not be read
    (and no drift at or above the threshold was found elsewhere).
    """
    from envsteward.cli._common import handle_errors

    raise typer.Exit(handle_errors(_scan)(env or [], heal, as_json, fail_on, catalog))


def _scan(
    environments: list[str], heal: bool, as_json: bool, fail_on: str | None, catalog: Path | None
) -> int:
    """Run the scan and print it; return the exit code. Raises envsteward errors (catalog, settings)."""
    import json

    from envsteward.cli._common import EXIT_ERROR, EXIT_OK, err_console, services_for
    from envsteward.errors import ConfigurationError
    from envsteward.ports import Severity
    from envsteward.scan import ScanStatus, run_scan
    from envsteward.scan.report import exceeds

    if fail_on is not None and fail_on.lower() not in {s.value for s in Severity}:
        raise ConfigurationError(
            f"--fail-on {fail_on!r} is not a severity: use critical, high, medium or low"
        )
    run = run_scan(services_for(catalog), environments or None, heal=heal)
    if as_json:
        typer.echo(json.dumps(run.to_dict(fail_on), indent=2, ensure_ascii=False))
    else:
        _print_scan(run)
    if exceeds(run.scans, run.parities, run.outcomes, fail_on):
        return EXIT_DRIFT
    unknown = [scan for scan in run.scans if scan.status is ScanStatus.UNKNOWN]
    if unknown:
        from rich.markup import escape

        for scan in unknown:
            err_console().print(
                f"[bold red]error:[/] {escape(scan.environment)} could not be scanned: "
                f"{escape(scan.reason or '')}",
                highlight=False,
                soft_wrap=True,
            )
        return EXIT_ERROR
    return EXIT_OK


def _print_scan(run: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from envsteward.cli._common import console
    from envsteward.scan.report import SEVERITIES, counts

    out = console()
    summary = Table(title="Drift scan")
    summary.add_column("scope", no_wrap=True)
    summary.add_column("status")
    for severity in SEVERITIES:
        summary.add_column(severity.value, justify="right")
    rows = [(s.environment, s.status.value, s.report) for s in run.scans]
    rows += [(f"{p.left} <-> {p.right} (parity)", p.status.value, p.report) for p in run.parities]
    for name, status, report in rows:
        c = counts(report)
        summary.add_row(escape(name), status, *(str(c[s.value]) for s in SEVERITIES))
    out.print(summary)
    for scan in run.scans:
        if scan.report.items:
            out.print(f"\n[bold]{escape(scan.environment)}[/]", highlight=False)
            _print_report(scan.report)
        if scan.reason:
            out.print(f"[yellow]{escape(scan.environment)}: {escape(scan.reason)}[/]", highlight=False)
    for pair in run.parities:
        if pair.report.items:
            out.print(f"\n[bold]parity {escape(pair.left)} <-> {escape(pair.right)}[/]", highlight=False)
            _print_report(pair.report)
    if run.outcomes:
        table = Table(title="Heal")
        for column in ("environment", "path", "severity", "result", "reason"):
            table.add_column(column, overflow="fold")
        for o in run.outcomes:
            table.add_row(
                escape(o.environment), escape(o.path), o.severity.value, o.result.value, escape(o.reason)
            )
        out.print(table)
