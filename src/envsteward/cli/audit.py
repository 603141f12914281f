"""``envsteward audit verify`` and ``envsteward audit show``.

Only typer is imported at module level; the audit package, settings and rich load inside the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from envsteward.cli._common import console, handle_errors, load_settings

if TYPE_CHECKING:
    from envsteward.audit import AuditLog, AuditRecord

app = typer.Typer(
    help="Inspect and verify the hash-chained audit log.",
    no_args_is_help=True,
)

_DETAILS_WIDTH = 60
EXIT_BROKEN = 1


def _open_log() -> AuditLog:
    """The audit log named by settings (the JSON-lines file, or the S3 object store through Services)."""
    settings = load_settings()
    if settings.storage.kind == "filesystem":
        from envsteward.audit import open_audit_log

        return open_audit_log(settings)
    from envsteward.services import Services

    return Services(settings).audit_log()


@app.command("verify")
@handle_errors
def verify(
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head recorded earlier (printed by a previous verify); detects rewrites and truncation.",
        ),
    ] = None,
) -> None:
    """Check the whole hash chain; exit 1 and name the first bad record when it is broken."""
    import json

    from rich.markup import escape

    from envsteward.audit import parse_anchor

    try:
        parsed_anchor = parse_anchor(anchor) if anchor else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--anchor") from None
    log = _open_log()
    result = log.verify(anchor=parsed_anchor)
    if json_output:
        typer.echo(json.dumps({**result.to_dict(), "location": log.location}, sort_keys=True))
    elif result.ok:
        console().print(
            f"[bold green]audit log OK[/]: {result.count} record(s) verified in {escape(log.location)}",
            highlight=False,
        )
        if result.count:
            console().print(
                f"head (keep it to pass as --anchor later): {result.anchor}", highlight=False, soft_wrap=True
            )
    else:
        console().print(
            f"[bold red]audit log BROKEN[/] at record {result.first_bad_seq}"
            + (f" (line {result.line})" if result.line else "")
            + f": {escape(result.reason or '')}",
            highlight=False,
        )
        console().print(
            f"{result.count} record(s) before it verified; last good head: {result.anchor}",
            highlight=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


@app.command("show")
@handle_errors
def show(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action: exact, dotted prefix (promotion) or glob (*.healed)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only records at or after: 2026-01-01, 2026-01-01T12:00:00Z, 24h, 7d."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON array of records.")] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the newest N matching records.")
    ] = None,
) -> None:
    """List audit records (oldest first), filtered by environment, action and time."""
    import collections
    import json
    from datetime import UTC, datetime

    from envsteward.audit import parse_since

    try:
        since_time = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    log = _open_log()
    matching = log.records(environment=env, action=action, since=since_time)
    records = list(collections.deque(matching, maxlen=limit)) if limit else list(matching)
    if json_output:
        typer.echo(json.dumps([record.model_dump(mode="json") for record in records], ensure_ascii=False))
        return
    if not records:
        console().print("no matching audit records", highlight=False)
        return
    _print_table(records)


WIDE_COLUMNS = 140
"""From this terminal width on, one table row per record; narrower, one short block per record."""


def _print_table(records: list[AuditRecord]) -> None:
    """The records as a table on a wide terminal; on a narrow one (80 columns) as blocks of short lines
    (seq, time and action; environment, target and actor; the details), so nothing is cut into one
    character per line and no id is split. ``--json`` has every field in full."""
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if out.width < WIDE_COLUMNS:
        _print_blocks(records)
        return
    table = Table(show_lines=False, header_style="bold")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("actor", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("environment", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for record in records:
        table.add_row(
            str(record.seq),
            record.time.strftime("%Y-%m-%d %H:%M:%SZ"),
            escape(record.actor),
            escape(record.action),
            escape(record.environment or "-"),
            escape(record.target),
            escape(compact_details(record.details)),
        )
    out.print(table)


def _print_blocks(records: list[AuditRecord]) -> None:
    from rich.padding import Padding
    from rich.text import Text

    out = console()
    indent = 6
    room = max(20, out.width - indent)
    for record in records:
        out.print(
            Text.assemble(
                (f"{record.seq:>4}", "bold"),
                "  ",
                record.time.strftime("%Y-%m-%d %H:%M:%SZ"),
                "  ",
                (record.action, "bold"),
            ),
            highlight=False,
        )
        lines = [
            Text(f"{record.environment or '-'}  {record.target}  by {record.actor}"),
            Text(compact_details(record.details, width=room * 2), style="dim"),
        ]
        for line in lines:
            line.overflow = "fold"
            out.print(Padding(line, (0, 0, 0, indent)), highlight=False)


def compact_details(details: dict[str, object], width: int = _DETAILS_WIDTH) -> str:
    """``key=value`` pairs (JSON values), shortened to ``width`` characters with an ellipsis."""
    import json

    text = ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)}"
        for key, value in sorted(details.items())
    )
    return text if len(text) <= width else text[: width - 1] + "…"
