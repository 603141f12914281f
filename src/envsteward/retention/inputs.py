"""Backup lists from JSON (``[{"id": ..., "time": RFC 3339, "verified_by_drill": bool}]``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from envsteward.retention.duration import RetentionInputError
from envsteward.retention.engine import Backup

_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<off_hour>\d{2}):(?P<off_minute>\d{2}))",
    re.ASCII,
)
_RFC3339_EXAMPLE = "e.g. 2024-05-01T02:30:00Z or 2024-05-01T04:30:00+02:00"
_ENTRY_KEYS = {"id", "time", "verified_by_drill"}


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp, keeping its own UTC offset (``Z`` and ``-00:00`` become UTC).

    Fractions of a second beyond microseconds are truncated. Leap seconds (``:60``) are refused, as Go's
    parser refuses them.

    Raises:
        RetentionInputError: not an RFC 3339 date-time with an offset; the message says what is expected.
    """
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise RetentionInputError(f"{text!r} is not an RFC 3339 time with a UTC offset ({_RFC3339_EXAMPLE})")
    fields = {name: int(match.group(name)) for name in ("year", "month", "day", "hour", "minute", "second")}
    microsecond = int((match.group("fraction") or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if match.group("sign"):
        off_hour, off_minute = int(match.group("off_hour")), int(match.group("off_minute"))
        if off_hour > 23 or off_minute > 59:
            raise RetentionInputError(f"{text!r} has an impossible UTC offset ({_RFC3339_EXAMPLE})")
        offset = timedelta(hours=off_hour, minutes=off_minute) * (-1 if match.group("sign") == "-" else 1)
    try:
        return datetime(**fields, microsecond=microsecond, tzinfo=timezone(offset))
    except ValueError as exc:
        raise RetentionInputError(f"{text!r} is not a valid date and time: {exc}") from exc


def backups_from_json(data: Any, *, source: str = "input") -> list[Backup]:
    """Turn decoded JSON into backups, refusing anything ambiguous.

    ``data`` must be a list of objects with a non-empty string ``id``, an RFC 3339 ``time`` with an offset
    and optionally a boolean ``verified_by_drill``. Unknown keys are refused (a misspelt
    ``verified_by_drill`` must not silently drop the safety floor), and so are duplicate ids.

    Raises:
        RetentionInputError: naming ``source`` and the entry index (0-based) that is wrong.
    """
    if not isinstance(data, list):
        raise RetentionInputError(
            f'{source}: expected a JSON list of {{"id", "time"}} objects, got {_json_type(data)}'
        )
    backups: list[Backup] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(data):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise RetentionInputError(
                f'{where}: expected an object with "id" and "time", got {_json_type(entry)}'
            )
        missing = [key for key in ("id", "time") if key not in entry]
        if missing:
            raise RetentionInputError(f"{where}: missing {' and '.join(repr(key) for key in missing)}")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise RetentionInputError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                "allowed: id, time, verified_by_drill"
            )
        backup_id = entry["id"]
        if not isinstance(backup_id, str) or not backup_id:
            raise RetentionInputError(f"{where}: 'id' must be a non-empty string, got {backup_id!r}")
        if backup_id in first_index:
            raise RetentionInputError(
                f"{where}: duplicate id {backup_id!r} (already used by entry {first_index[backup_id]})"
            )
        try:
            moment = parse_rfc3339(entry["time"])
        except RetentionInputError as exc:
            raise RetentionInputError(f"{where} (id {backup_id!r}): 'time': {exc}") from exc
        verified = entry.get("verified_by_drill", False)
        if not isinstance(verified, bool):
            raise RetentionInputError(
                f"{where} (id {backup_id!r}): 'verified_by_drill' must be true or false, got {verified!r}"
            )
        first_index[backup_id] = index
        backups.append(Backup(id=backup_id, time=moment, verified_by_drill=verified))
    return backups


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
