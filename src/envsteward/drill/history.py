"""Drill history: the records of past drills, per environment, in the state store.

Key ``drill-history/<environment>``: a JSON list of :meth:`DrillRecord.as_json` documents (without the
per-table verification rows, which the run's table artifact holds), oldest first, at most
:data:`MAX_RECORDS` (the oldest are dropped). Appending is an atomic read-modify-write
(``StateStore.update``), so two drills finishing at once both land.

External calls: the state store (files under ``<home>/state`` or Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envsteward.drill.model import DrillRecord, DrillStatus
from envsteward.errors import IntegrityError
from envsteward.ports import JSONValue, StateStore

MAX_RECORDS = 200
KEY_PREFIX = "drill-history/"


def history_key(environment: str) -> str:
    return f"{KEY_PREFIX}{environment}"


def save_drill(store: StateStore, record: DrillRecord, *, keep: int = MAX_RECORDS) -> int:
    """Append ``record`` to its environment's history (replacing a record with the same drill id, so a
    retried save is idempotent); return how many records the history holds. Calls the state store."""
    document = record.as_json(verifications=False)

    def append(current: JSONValue | None) -> JSONValue:
        items = [item for item in _as_list(current) if item.get("drill_id") != record.drill_id]
        items.append(document)
        items.sort(key=lambda item: str(item.get("started_at", "")))
        return items[-keep:]

    stored = store.update(history_key(record.environment), append)
    return len(stored) if isinstance(stored, list) else 0


def load_history(store: StateStore, environment: str, limit: int | None = None) -> list[DrillRecord]:
    """The environment's past drills, oldest first (the last ``limit`` when given). Calls the state store.

    Raises IntegrityError naming the key when a stored record cannot be read.
    """
    items = _as_list(store.get(history_key(environment)))
    records: list[DrillRecord] = []
    for index, item in enumerate(items):
        try:
            records.append(DrillRecord.from_json(item))
        except (KeyError, ValueError, TypeError):
            raise IntegrityError(
                f"state {history_key(environment)}: record {index} is not a valid drill record",
                system="drill",
            ) from None
    return records[-limit:] if limit else records


def previous_drill(history: Sequence[DrillRecord], drill_id: str) -> DrillRecord | None:
    """The drill before ``drill_id`` in ``history`` (oldest first), or the last one when it is absent.
    Abandoned drills are skipped: they verified nothing, so they neither raise nor resolve an alert."""
    earlier = [
        record
        for record in history
        if record.drill_id != drill_id and record.status is not DrillStatus.ABANDONED
    ]
    return earlier[-1] if earlier else None


def _as_list(value: JSONValue | None) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
