"""AuditLog: appending, retries on a lost race, secret refusal, reading with filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretBytes, SecretStr

from envsteward.audit import AuditDetailsError, AuditLog, AuditRecord
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
from envsteward.fingerprint import Fingerprinter
from envsteward.ports import AuditSink

from . import tampering as t
from .conftest import MemorySink, StepClock, fill

SEEDED_SECRET = "s3cr3t-SEEDED-7f9c2e"


def test_memory_sink_is_an_audit_sink(sink: MemorySink) -> None:
    assert isinstance(sink, AuditSink)


def test_append_returns_the_stored_record(log: AuditLog, sink: MemorySink) -> None:
    record = log.append(
        "promotion.approved",
        target="release-42",
        environment="production",
        details={"approver": "bob", "comment": "ok"},
    )
    assert record.seq == 1
    assert record.actor == "alice"
    assert record.action == "promotion.approved"
    assert record.details == {"approver": "bob", "comment": "ok"}
    assert AuditRecord.model_validate_json(sink.lines[0]) == record
    assert log.head() == record


def test_explicit_actor_overrides_the_default(log: AuditLog) -> None:
    assert log.append("promotion.approved", target="r", actor="bob").actor == "bob"


def test_details_are_normalised_to_plain_json(log: AuditLog, sink: MemorySink) -> None:
    record = log.append("drift.healed", target="a", details={"keys": ("a", "b"), "nested": {"t": (1,)}})
    assert record.details == {"keys": ["a", "b"], "nested": {"t": [1]}}
    assert log.verify().ok


@pytest.mark.parametrize(
    "details",
    [
        {"password": SecretStr(SEEDED_SECRET)},
        {"nested": {"deeper": [1, SecretStr(SEEDED_SECRET)]}},
        {"key": SecretBytes(SEEDED_SECRET.encode())},
        {"raw": SEEDED_SECRET.encode()},
        {"raw": bytearray(SEEDED_SECRET.encode())},
    ],
)
def test_secrets_and_bytes_are_refused_and_never_stored(
    log: AuditLog, sink: MemorySink, details: dict[str, object]
) -> None:
    with pytest.raises(AuditDetailsError) as caught:
        log.append("secret.rotated", target="db", details=details)
    message = str(caught.value)
    assert SEEDED_SECRET not in message
    assert "details." in message
    assert "fingerprint" in message.lower()
    assert sink.lines == []
    assert SEEDED_SECRET not in repr(caught.value)


def test_refusal_names_the_path(log: AuditLog) -> None:
    with pytest.raises(AuditDetailsError, match=r"details\.db\.creds\[1\] holds a SecretStr"):
        log.append("secret.rotated", target="db", details={"db": {"creds": ["user", SecretStr("x")]}})


def test_secret_str_as_target_is_refused(log: AuditLog, sink: MemorySink) -> None:
    with pytest.raises(AuditDetailsError, match="target holds a SecretStr"):
        log.append("secret.rotated", target=SecretStr(SEEDED_SECRET))  # type: ignore[arg-type]
    assert sink.lines == []


@pytest.mark.parametrize(
    ("details", "match"),
    [
        ({"x": {1, 2}}, "details.x holds a set"),
        ({"x": float("nan")}, "details.x is nan"),
        ({"x": {1: "a"}}, "key of type int"),
        ({"x": object()}, "not a JSON value"),
    ],
)
def test_non_json_details_are_refused(log: AuditLog, details: dict[str, object], match: str) -> None:
    with pytest.raises(AuditDetailsError, match=match):
        log.append("drift.healed", target="a", details=details)


@pytest.mark.parametrize("action", ["healed", "Drift.Healed", "drift healed", "drift.", ".healed", ""])
def test_action_must_be_a_dotted_verb(log: AuditLog, action: str) -> None:
    with pytest.raises(AuditDetailsError, match="dotted"):
        log.append(action, target="a")


def test_fingerprints_go_into_details_instead(sink: MemorySink, clock: StepClock) -> None:
    fingerprinter = Fingerprinter(b"k" * 32)
    log = AuditLog(sink, "alice", clock=clock, fingerprinter=fingerprinter)
    fingerprint = log.fingerprint(SecretStr(SEEDED_SECRET))
    log.append("secret.rotated", target="db", details={"new_value": fingerprint})
    assert fingerprint == fingerprinter.fingerprint(SEEDED_SECRET)
    assert SEEDED_SECRET not in sink.lines[0]
    assert fingerprint in sink.lines[0]


def test_fingerprint_without_a_fingerprinter(log: AuditLog) -> None:
    with pytest.raises(ConfigurationError, match="no fingerprinter"):
        log.fingerprint("x")


def test_fingerprinter_factory_is_called_lazily_once(sink: MemorySink) -> None:
    calls: list[int] = []

    def factory() -> Fingerprinter:
        calls.append(1)
        return Fingerprinter(b"k" * 32)

    log = AuditLog(sink, "alice", fingerprinter=factory)
    assert calls == []
    log.fingerprint("a")
    log.fingerprint("b")
    assert calls == [1]


def test_empty_default_actor_is_refused(sink: MemorySink) -> None:
    with pytest.raises(ConfigurationError, match="actor"):
        AuditLog(sink, "")


class RacingSink(MemorySink):
    """Another writer stores a record just before each of our first ``losses`` attempts."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.rival = AuditLog(_Direct(self), "rival", clock=StepClock())

    def append_line(self, expected_sequence: int, line: str) -> bool:
        if self.losses > 0:
            self.losses -= 1
            self.rival.append("drift.detected", target="rival")
        return super().append_line(expected_sequence, line)


class _Direct:
    def __init__(self, inner: MemorySink) -> None:
        self.inner = inner

    def append_line(self, expected_sequence: int, line: str) -> bool:
        return MemorySink.append_line(self.inner, expected_sequence, line)

    def read_lines(self) -> Iterator[str]:
        return self.inner.read_lines()


def test_lost_race_rereads_the_tail_and_retries() -> None:
    sink = RacingSink(losses=3)
    log = AuditLog(sink, "alice", clock=StepClock())
    record = log.append("drift.healed", target="mine")
    assert record.seq == 4
    assert [json.loads(line)["actor"] for line in sink.lines] == ["rival", "rival", "rival", "alice"]
    assert log.verify().ok


class AlwaysTakenSink(MemorySink):
    def append_line(self, expected_sequence: int, line: str) -> bool:
        self.append_calls += 1
        return False


def test_gives_up_with_conflict_after_max_attempts() -> None:
    sink = AlwaysTakenSink()
    log = AuditLog(sink, "alice", max_attempts=4)
    with pytest.raises(ConflictError, match="after 4 attempts"):
        log.append("drift.healed", target="a")
    assert sink.append_calls == 4


def test_refuses_to_chain_onto_a_damaged_tail(log: AuditLog, sink: MemorySink) -> None:
    fill(log, 3)
    sink.lines[:] = t.change_field(sink.lines, 3, "actor", "mallory")
    with pytest.raises(IntegrityError, match="audit verify"):
        log.append("drift.healed", target="a")
    with pytest.raises(IntegrityError):
        log.head()
    assert len(sink.lines) == 3


def test_refuses_to_chain_onto_a_torn_tail(log: AuditLog, sink: MemorySink) -> None:
    fill(log, 3)
    sink.lines[:] = t.truncate_last_line(sink.lines)
    with pytest.raises(IntegrityError, match="damaged"):
        log.append("drift.healed", target="a")


def test_head_of_an_empty_log(log: AuditLog) -> None:
    assert log.head() is None


def test_records_filters(log: AuditLog) -> None:
    log.append("drift.detected", target="a", environment="staging")
    log.append("drift.healed", target="b", environment="staging")
    log.append("promotion.approved", target="c", environment="production")
    log.append("promotion.applied", target="d", environment="production")
    log.append("health.status_changed", target="e")

    def targets(**kwargs: object) -> list[str]:
        return [record.target for record in log.records(**kwargs)]  # type: ignore[arg-type]

    assert targets() == ["a", "b", "c", "d", "e"]
    assert targets(environment="production") == ["c", "d"]
    assert targets(action="promotion") == ["c", "d"]
    assert targets(action="promotion.approved") == ["c"]
    assert targets(action="*.healed") == ["b"]
    assert targets(action="promo") == []
    # StepClock: records at 09:00, 09:01, ... 09:04
    assert targets(since=datetime(2026, 3, 1, 9, 2, tzinfo=UTC)) == ["c", "d", "e"]
    assert targets(
        environment="production", action="promotion.applied", since=datetime(2026, 1, 1, tzinfo=UTC)
    ) == ["d"]


def test_records_requires_aware_since(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(log.records(since=datetime(2026, 1, 1)))


def test_records_names_an_unreadable_line(log: AuditLog, sink: MemorySink) -> None:
    fill(log, 3)
    sink.lines[1] = "{not json"
    with pytest.raises(IntegrityError, match="line 2"):
        list(log.records())


def test_verify_through_the_log(log: AuditLog, sink: MemorySink) -> None:
    fill(log, 6)
    assert log.verify().ok
    sink.lines[:] = t.swap(sink.lines, 2, 3)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
