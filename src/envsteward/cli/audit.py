"""``envsteward audit verify``, ``envsteward audit checkpoint`` and ``envsteward audit show``.

Only typer is imported at module level; the audit package, settings and rich load inside the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from envsteward.cli._common import console, handle_errors, load_settings

if TYPE_CHECKING:
    from envsteward.audit import AuditLog, AuditRecord, AuditVerification

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


def _checkpointed_log() -> AuditLog:
    """The audit log with the checkpointer settings describe (``Services.audit_log()``); touches nothing."""
    from envsteward.services import Services

    return Services(load_settings()).audit_log()


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
    """Check the hash chain against the latest valid signed checkpoint; exit 1 naming the first bad record.

    Read-only: creates no key and writes no checkpoint.
    """
    import json

    from envsteward.audit import parse_anchor

    try:
        parsed_anchor = parse_anchor(anchor) if anchor else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--anchor") from None
    log = _checkpointed_log()
    outcome = log.verify_with_checkpoints(anchor=parsed_anchor)
    if json_output:
        typer.echo(json.dumps({**outcome.to_dict(), "location": log.location}, sort_keys=True))
    else:
        _print_verification(outcome, log.location)
    if not outcome.ok:
        raise typer.Exit(EXIT_BROKEN)


def _print_verification(outcome: AuditVerification, location: str) -> None:
    from rich.markup import escape

    result = outcome.chain
    report = outcome.checkpoints
    failure = outcome.failure_line()
    if failure is not None:
        console().print(f"[bold red]{escape(failure)}[/]", highlight=False, soft_wrap=True)
    if result.ok:
        console().print(
            ("[bold green]audit log OK[/]: " if failure is None else "chain OK: ")
            + f"{result.count} record(s) verified in {escape(location)}",
            highlight=False,
        )
    else:
        console().print(
            f"{result.count} record(s) before it verified; last good head: {result.anchor}",
            highlight=False,
            soft_wrap=True,
        )
    for bad in report.bad:
        where = f"record {bad.seq}" if bad.seq is not None else bad.key
        console().print(f"skipped checkpoint ({escape(where)}): {escape(bad.reason)}", highlight=False)
    if not report.enabled:
        console().print("signed checkpoints are off (audit.signer: none)", highlight=False)
    elif report.checkpoint is not None:
        cp = report.checkpoint
        console().print(
            f"checkpoint: record {cp.seq} signed by {escape(cp.signer.kind)} key {cp.key_fingerprint[:23]}"
            f" at {cp.time}",
            highlight=False,
            soft_wrap=True,
        )
        if report.unanchored_count:
            console().print(
                f"unanchored: {report.unanchored_count} record(s) after it, from record "
                f"{report.first_unanchored_seq} (protected by the chain only until the next checkpoint)",
                highlight=False,
            )
    for note in report.notes:
        console().print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if result.ok and result.count:
        console().print(
            f"head (keep it to pass as --anchor later): {result.anchor}", highlight=False, soft_wrap=True
        )


@app.command("checkpoint")
@handle_errors
def checkpoint(
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sign and store a checkpoint of the log's head (after verifying the log); a no-op when the head is
    checkpointed already. For cron or the `audit-checkpoint` deployment. May create the local signing key.
    """
    import json

    from envsteward.errors import ConfigurationError

    log = _checkpointed_log()
    if log.checkpointer is None:
        raise ConfigurationError("signed checkpoints are off (audit.signer: none)")
    outcome = log.checkpointer.checkpoint(log)
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "written": outcome.written,
                    "reason": outcome.reason,
                    "checkpoint": outcome.checkpoint.summary() if outcome.checkpoint else None,
                    "location": log.checkpointer.location,
                },
                sort_keys=True,
            )
        )
        return
    console().print(outcome.reason, highlight=False, soft_wrap=True)


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
