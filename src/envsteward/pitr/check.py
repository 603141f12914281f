"""Is a live PostgreSQL server set up for continuous archiving into envsteward? (``envsteward pitr check``)

:func:`check_settings` is pure over the server's ``pg_settings`` values and returns one finding per
problem, each saying what to set; :func:`read_settings` asks the server. External calls: PostgreSQL
(read_settings only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

SETTINGS = (
    "wal_level",
    "archive_mode",
    "archive_command",
    "archive_timeout",
    "archive_library",
    "max_wal_senders",
    "max_replication_slots",
    "max_slot_wal_keep_size",
)


@dataclass(frozen=True)
class Finding:
    setting: str
    level: Literal["error", "warning"]
    message: str


def recommended_archive_command(envsteward: str, selector: str) -> str:
    """The ``archive_command`` for a target ``ENV/TARGET``."""
    return f"{envsteward} wal push --target {selector} %p"


def check_settings(
    values: Mapping[str, str], *, selector: str, rpo_seconds: float | None = None, streaming: bool = False
) -> list[Finding]:
    """Problems in ``values`` (setting -> text as ``pg_settings`` shows it); with ``streaming`` (``wal
    stream``) also what its replication slot needs. Pure."""
    findings: list[Finding] = []
    if values.get("wal_level") not in ("replica", "logical"):
        findings.append(
            Finding(
                "wal_level",
                "error",
                f"wal_level is {values.get('wal_level')!r}: set wal_level = replica (needs a restart); "
                "'minimal' WAL cannot be replayed onto a base backup",
            )
        )
    if values.get("archive_mode") not in ("on", "always"):
        findings.append(
            Finding(
                "archive_mode",
                "error",
                f"archive_mode is {values.get('archive_mode')!r}: set archive_mode = on (needs a restart)",
            )
        )
    command = values.get("archive_command") or ""
    if values.get("archive_library"):
        findings.append(
            Finding(
                "archive_library", "error", "archive_library is set: it overrides archive_command; clear it"
            )
        )
    if "wal push" not in command or "envsteward" not in command:
        findings.append(
            Finding(
                "archive_command",
                "error",
                f"archive_command is {command or 'empty'!r}: set archive_command = "
                f"'{recommended_archive_command('envsteward', selector)}' (reload is enough)",
            )
        )
    elif selector not in command:
        findings.append(
            Finding("archive_command", "error", f"archive_command archives to another target than {selector}")
        )
    timeout = int(values.get("archive_timeout") or 0)
    if timeout == 0:
        findings.append(
            Finding(
                "archive_timeout",
                "warning",
                "archive_timeout is 0: a quiet server may keep a transaction out of the archive "
                "indefinitely; set it below the RPO target (e.g. 60s)",
            )
        )
    elif rpo_seconds is not None and timeout > rpo_seconds:
        findings.append(
            Finding(
                "archive_timeout",
                "warning",
                f"archive_timeout is {timeout}s, longer than the RPO target of {rpo_seconds:g}s",
            )
        )
    if streaming:
        findings += _streaming_findings(values)
    return findings


def _streaming_findings(values: Mapping[str, str]) -> list[Finding]:
    """``wal stream`` needs a WAL sender and a replication slot; a slot whose streamer is down keeps WAL
    without limit unless ``max_slot_wal_keep_size`` caps it (the health-check flow alerts either way)."""
    findings: list[Finding] = []
    for setting in ("max_wal_senders", "max_replication_slots"):
        if values.get(setting) is not None and int(values[setting] or 0) < 1:
            findings.append(
                Finding(setting, "error", f"{setting} is 0: wal stream needs 1 or more (needs a restart)")
            )
    if values.get("max_slot_wal_keep_size") == "-1":
        findings.append(
            Finding(
                "max_slot_wal_keep_size",
                "warning",
                "max_slot_wal_keep_size is -1 (unlimited): while wal stream is down its slot keeps WAL "
                "until the disk is full; cap it below the free space of pg_wal's disk (then the slot is "
                "invalidated instead, and archive_command still archives)",
            )
        )
    return findings


def read_settings(dsn: str, password: SecretStr | None = None) -> dict[str, str]:
    """The archiving settings of the server at ``dsn``. Calls PostgreSQL; raises its adapter's errors."""
    from envsteward.adapters.postgres import PostgresClient

    rows = PostgresClient(dsn, password).query(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)
    )
    return {str(name): str(setting) for name, setting in rows}
