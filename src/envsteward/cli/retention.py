"""``envsteward retention preview``: show what a retention policy would keep and remove.

Only typer is imported at module level; the retention core and rich load inside the command.

With no ``--keep-*`` option at all the policy is empty, and an empty policy deletes nothing (fail-safe, as
prune does): preview then keeps everything and says so on stderr. ``--default-policy`` previews envsteward's
default policy (daily 7, weekly 4, monthly 6, yearly 2) instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envsteward.cli._common import console, err_console, handle_errors

if TYPE_CHECKING:
    from envsteward.retention import Backup, Duration, RetentionDecision, RetentionPolicy

app = typer.Typer(help="Preview backup retention policies (restic forget semantics).", no_args_is_help=True)

_LAST_HELP = "Keep the N newest backups (-1 or 'unlimited': all)."
_WITHIN_ALL_HELP = "Keep every backup strictly newer than the newest backup minus D (e.g. 1y2m3d4h)."


def _count_help(periods: str) -> str:
    return f"Keep the newest backup of each of the N most recent {periods} (-1 or 'unlimited': all)."


def _within_help(period: str) -> str:
    return f"Keep the newest backup of every {period} within D of the newest backup (e.g. 1y2m3d4h)."


_PREVIEW_HELP = (
    "Show which backups a policy keeps and removes, and why, without touching any backup.\n\n"
    "The policy has restic's forget semantics, with the safety floor prune applies: the newest backup and "
    "the newest drill-verified backup are always kept. Without any --keep-* option the policy is empty and "
    "nothing is removed."
)
EMPTY_POLICY_NOTICE = (
    "the policy is empty (no --keep-* option with a non-zero value), and an empty policy deletes nothing "
    "(fail-safe), so every backup is kept. Pass --keep-* options, or --default-policy to preview the "
    "default policy."
)


def _parse_count(option: str, value: str | None) -> int:
    """``N`` (0 or more), ``-1`` or ``unlimited``; anything else is an error naming ``option``."""
    from envsteward.retention import RetentionInputError

    if value is None:
        return 0
    text = value.strip()
    if text.lower() == "unlimited":
        return -1
    try:
        count = int(text)
    except ValueError:
        raise RetentionInputError(
            f"{option}: expected a whole number, -1 or 'unlimited', got {value!r}"
        ) from None
    if count < -1:
        raise RetentionInputError(
            f"{option}: negative values other than -1 are not allowed (got {count}); use -1 or 'unlimited'"
            " to keep every period"
        )
    return count


def _parse_within(option: str, value: str | None) -> Duration | None:
    from envsteward.retention import RetentionInputError, parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except RetentionInputError as exc:
        raise RetentionInputError(f"{option}: {exc}") from None


def _read_backups(path: Path) -> list[Backup]:
    import json
    import sys

    from envsteward.retention import RetentionInputError, backups_from_json

    source = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if source == "stdin" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RetentionInputError(f"{source}: cannot read the backup list: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RetentionInputError(
            f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    return backups_from_json(data, source=source)


def _print_table(decision: RetentionDecision, policy: RetentionPolicy) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"retention preview: keep {len(decision.keep)}, remove {len(decision.remove)}",
        caption=escape(policy.describe()),
    )
    table.add_column("id", overflow="fold")
    table.add_column("time", overflow="fold")
    table.add_column("decision")
    table.add_column("reasons", overflow="fold")
    kept = {backup.id for backup in decision.keep}
    everything = sorted([*decision.keep, *decision.remove], key=lambda backup: backup.time, reverse=True)
    for backup in everything:
        is_kept = backup.id in kept
        table.add_row(
            escape(backup.id),
            backup.time.isoformat(),
            "[green]keep[/]" if is_kept else "[red]remove[/]",
            escape(", ".join(decision.reasons.get(backup.id, []))),
        )
    console().print(table)


@app.command("preview", help=_PREVIEW_HELP)
@handle_errors
def preview(
    *,
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            metavar="FILE",
            help='JSON list of {"id", "time" (RFC 3339), "verified_by_drill" (optional)}; - reads stdin.',
            show_default=False,
        ),
    ],
    keep_last: Annotated[str | None, typer.Option("--keep-last", metavar="N", help=_LAST_HELP)] = None,
    keep_hourly: Annotated[
        str | None, typer.Option("--keep-hourly", metavar="N", help=_count_help("hours"))
    ] = None,
    keep_daily: Annotated[
        str | None, typer.Option("--keep-daily", metavar="N", help=_count_help("days"))
    ] = None,
    keep_weekly: Annotated[
        str | None, typer.Option("--keep-weekly", metavar="N", help=_count_help("ISO weeks"))
    ] = None,
    keep_monthly: Annotated[
        str | None, typer.Option("--keep-monthly", metavar="N", help=_count_help("months"))
    ] = None,
    keep_yearly: Annotated[
        str | None, typer.Option("--keep-yearly", metavar="N", help=_count_help("years"))
    ] = None,
    keep_within: Annotated[
        str | None, typer.Option("--keep-within", metavar="D", help=_WITHIN_ALL_HELP)
    ] = None,
    keep_within_hourly: Annotated[
        str | None, typer.Option("--keep-within-hourly", metavar="D", help=_within_help("hour"))
    ] = None,
    keep_within_daily: Annotated[
        str | None, typer.Option("--keep-within-daily", metavar="D", help=_within_help("day"))
    ] = None,
    keep_within_weekly: Annotated[
        str | None, typer.Option("--keep-within-weekly", metavar="D", help=_within_help("ISO week"))
    ] = None,
    keep_within_monthly: Annotated[
        str | None, typer.Option("--keep-within-monthly", metavar="D", help=_within_help("month"))
    ] = None,
    keep_within_yearly: Annotated[
        str | None, typer.Option("--keep-within-yearly", metavar="D", help=_within_help("year"))
    ] = None,
    default_policy: Annotated[
        bool,
        typer.Option(
            "--default-policy",
            help="Preview the default policy (daily 7, weekly 4, monthly 6, yearly 2); no --keep-* with it.",
        ),
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="TIME",
            help="Decide as if it were this RFC 3339 time (which backups are in the future). Default: now.",
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print JSON: keep and remove (ids, newest first) and the reasons for each kept id."
        ),
    ] = False,
) -> None:
    """Show which backups a policy keeps and removes, and why, without touching any backup.

    Raises (turned into one line on stderr and exit 1 by ``handle_errors``):
        RetentionInputError: a bad option value, an unreadable or malformed FILE (naming the entry index).
    """
    import json

    from envsteward.retention import (
        DEFAULT_POLICY,
        RetentionInputError,
        RetentionPolicy,
        apply_retention,
        parse_rfc3339,
    )

    counts = {
        "last": _parse_count("--keep-last", keep_last),
        "hourly": _parse_count("--keep-hourly", keep_hourly),
        "daily": _parse_count("--keep-daily", keep_daily),
        "weekly": _parse_count("--keep-weekly", keep_weekly),
        "monthly": _parse_count("--keep-monthly", keep_monthly),
        "yearly": _parse_count("--keep-yearly", keep_yearly),
    }
    windows = {
        "within": _parse_within("--keep-within", keep_within),
        "within_hourly": _parse_within("--keep-within-hourly", keep_within_hourly),
        "within_daily": _parse_within("--keep-within-daily", keep_within_daily),
        "within_weekly": _parse_within("--keep-within-weekly", keep_within_weekly),
        "within_monthly": _parse_within("--keep-within-monthly", keep_within_monthly),
        "within_yearly": _parse_within("--keep-within-yearly", keep_within_yearly),
    }
    options_given = any(
        value is not None
        for value in (
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            keep_within_hourly,
            keep_within_daily,
            keep_within_weekly,
            keep_within_monthly,
            keep_within_yearly,
        )
    )
    if default_policy and options_given:
        raise RetentionInputError("--default-policy cannot be combined with --keep-* options; pick one")
    policy = DEFAULT_POLICY if default_policy else RetentionPolicy.model_validate({**counts, **windows})

    try:
        moment = parse_rfc3339(now) if now is not None else None
    except RetentionInputError as exc:
        raise RetentionInputError(f"--now: {exc}") from None
    backups = _read_backups(input_file)
    decision = apply_retention(backups, policy, now=moment)

    if policy.is_empty:
        err_console().print(f"[yellow]note:[/] {EMPTY_POLICY_NOTICE}", highlight=False)
    if json_output:
        typer.echo(json.dumps(decision.as_json(), indent=2))
    else:
        _print_table(decision, policy)
