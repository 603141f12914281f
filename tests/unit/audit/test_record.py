"""The canonical form and hash of a record, re-derived independently of envsteward's helpers."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from envsteward.audit import GENESIS_HASH, AuditLog, AuditRecord
from envsteward.audit.record import format_time

from .conftest import MemorySink


def _documented_hash(line: str) -> str:
    """The recipe of the module docstring, written out with nothing but json and hashlib."""
    record = json.loads(line)
    del record["hash"]
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_stored_line_is_canonical_and_hash_follows_the_documented_recipe(
    log: AuditLog, sink: MemorySink
) -> None:
    log.append("health.status_changed", target="db", environment="production", details={"z": 1, "ä": "ö"})
    line = sink.lines[0]
    record = json.loads(line)
    assert line == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert "ä" in line  # ensure_ascii=False: non-ASCII kept as UTF-8
    assert record["hash"] == _documented_hash(line)
    assert set(record) == {
        "seq", "time", "actor", "action", "environment", "target", "details", "prev_hash", "hash",
    }  # fmt: skip


def test_genesis_and_chaining(log: AuditLog, sink: MemorySink) -> None:
    first = log.append("drift.healed", target="a")
    second = log.append("drift.healed", target="b")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH == "0" * 64
    assert second.prev_hash == first.hash
    assert json.loads(sink.lines[1])["prev_hash"] == json.loads(sink.lines[0])["hash"]


def test_time_is_utc_rfc3339_with_z(sink: MemorySink) -> None:
    plus_two = timezone(timedelta(hours=2))
    log = AuditLog(sink, "alice", clock=lambda: datetime(2026, 3, 1, 11, 30, 5, 42, tzinfo=plus_two))
    record = log.append("drift.healed", target="a")
    assert json.loads(sink.lines[0])["time"] == "2026-03-01T09:30:05.000042Z"
    assert record.time == datetime(2026, 3, 1, 9, 30, 5, 42, tzinfo=UTC)


def test_naive_clock_is_refused(sink: MemorySink) -> None:
    log = AuditLog(sink, "alice", clock=lambda: datetime(2026, 3, 1, 9, 0))
    with pytest.raises(Exception, match="timezone"):
        log.append("drift.healed", target="a")
    assert sink.lines == []


def test_format_time_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


def test_round_trip_keeps_the_hash(log: AuditLog, sink: MemorySink) -> None:
    record = log.append("promotion.approved", target="release-7", details={"x": [1, 2.5, None, True]})
    parsed = AuditRecord.model_validate_json(sink.lines[0])
    assert parsed == record
    assert parsed.to_line() == sink.lines[0]
    assert parsed.computed_hash() == parsed.hash


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 0),
        ("seq", "1"),
        ("prev_hash", "abc"),
        ("hash", "G" * 64),
        ("action", "Promotion Approved"),
        ("actor", ""),
        ("time", "2026-03-01T09:00:00"),
    ],
)
def test_model_rejects_bad_members(field: str, value: object) -> None:
    good = {
        "seq": 1,
        "time": "2026-03-01T09:00:00.000000Z",
        "actor": "alice",
        "action": "drift.healed",
        "environment": None,
        "target": "a",
        "details": {},
        "prev_hash": GENESIS_HASH,
        "hash": "a" * 64,
    }
    AuditRecord.model_validate(good)
    with pytest.raises(ValidationError):
        AuditRecord.model_validate({**good, field: value})


def test_records_are_frozen(log: AuditLog) -> None:
    record = log.append("drift.healed", target="a")
    with pytest.raises(ValidationError):
        record.seq = 5  # type: ignore[misc]
