"""Heal planning, approval decisions, the executor over an in-memory source, live assembly, retries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from envsteward.catalog.refs import SecretRef
from envsteward.drift import DriftRules, HealPolicy, compare
from envsteward.errors import NotFoundError, PermanentError, TransientError
from envsteward.fingerprint import Fingerprinter
from envsteward.ports import Severity
from envsteward.scan.heal import (
    decide_approval,
    execute_heals,
    plan_heals,
    previously_declined,
    remember_declined,
)
from envsteward.scan.live import assemble_live, call_with_retries
from envsteward.scan.model import HealResult, SourceState

FP = Fingerprinter(b"k" * 32).fingerprint
RULES = DriftRules(heal=HealPolicy(enabled=True, max_severity=Severity.MEDIUM))


class MemorySource:
    """A ConfigSource over a dict; ``on_read`` runs before each read (to simulate someone else)."""

    def __init__(self, data: dict[str, Any], writable: bool = True) -> None:
        self.name = "mem"
        self.writable = writable
        self.data = data
        self.writes: list[tuple[tuple[str, ...], Any]] = []
        self.on_read: Any = None
        self.fail_reads: list[Exception] = []

    def read(self) -> Mapping[str, Any]:
        if self.fail_reads:
            raise self.fail_reads.pop(0)
        if self.on_read:
            self.on_read(self)
        return json.loads(json.dumps(self.data))

    def write(self, key_path: tuple[str, ...], value: Any) -> None:
        self.writes.append((key_path, value))
        node = self.data
        for key in key_path[:-1]:
            node = node.setdefault(key, {})
        node[key_path[-1]] = value


def state(name: str, mount: str, writable: bool = True, ok: bool = True) -> SourceState:
    return SourceState(name=name, kind="file", mount_at=mount, writable=writable, ok=ok)


def plan(
    desired: dict[str, Any], live: dict[str, Any], sources: list[SourceState], rules: DriftRules = RULES
) -> Any:
    report = compare(desired, live, rules, environment="dev", secret_paths=["app.password"])
    return plan_heals(
        "dev",
        report.items,
        desired=desired,
        live=live,
        sources=sources,
        threshold=rules.heal.max_severity,
        fingerprint=FP,
    )


def test_plan_splits_by_threshold_source_and_secrecy() -> None:
    rules = RULES.model_copy(
        update={
            "severity": [
                *RULES.severity,
                *DriftRules.model_validate({"severity": [{"path": "app.hot", "severity": "high"}]}).severity,
            ]
        }
    )
    desired = {
        "app": {"size": 3, "hot": 1, "password": SecretRef("env", "X", None), "extra": {"a": 1, "b": 2}},
        "ro": {"x": 1},
    }
    live = {"app": {"size": 2, "hot": 2, "password": "p", "new": 1}, "ro": {"x": 2}}
    result = plan(desired, live, [state("app", "app"), state("ro", "ro", writable=False)], rules)
    assert [a.path for a in result.automatic] == ["app.size", "app.extra"]
    extra = result.automatic[1]
    assert [(w.key_path, w.value) for w in extra.writes] == [(("extra", "a"), 1), (("extra", "b"), 2)]
    assert extra.live_fingerprint is None
    assert [a.path for a in result.needs_approval] == ["app.hot"]
    refused = {n.path: n.reason for n in result.not_healable}
    assert "read-only" in refused["ro.x"]
    assert "deleting live data needs a person" in refused["app.new"]
    assert set(refused) == {"ro.x", "app.new"}  # the secret: no drift (presence only without fingerprints)


def test_unreadable_and_missing_sources_are_not_healed() -> None:
    result = plan({"a": {"x": 1}, "b": 1}, {"a": {"x": 2}, "b": 2}, [state("a", "a", ok=False)])
    reasons = {n.path: n.reason for n in result.not_healable}
    assert "could not be read" in reasons["a.x"]
    assert "no source" in reasons["b"]


def test_executor_heals_verifies_and_skips_stale_values() -> None:
    source = MemorySource({"size": 2, "mode": "a"})
    result = plan({"app": {"size": 3, "mode": "b"}}, {"app": {"size": 2, "mode": "a"}}, [state("mem", "app")])
    size, mode = result.automatic

    def meddle(src: MemorySource) -> None:
        if src.data["mode"] == "a":
            src.data["mode"] = "c"  # someone changed it after the scan

    source.on_read = meddle
    outcomes = execute_heals([size, mode], source, FP, None)
    assert [(o.path, o.result) for o in outcomes] == [
        ("app.size", HealResult.HEALED),
        ("app.mode", HealResult.SKIPPED),
    ]
    assert source.writes == [(("size",), 3)]
    again = execute_heals([size], source, FP, None)
    assert again[0].result is HealResult.ALREADY_DESIRED


def test_executor_reports_a_write_that_does_not_stick() -> None:
    class Stubborn(MemorySource):
        def write(self, key_path: tuple[str, ...], value: Any) -> None:
            self.writes.append((key_path, value))  # accepted, not applied

    source = Stubborn({"size": 2})
    (action,) = plan({"app": {"size": 3}}, {"app": {"size": 2}}, [state("mem", "app")]).automatic
    (outcome,) = execute_heals([action], source, FP, None)
    assert outcome.result is HealResult.FAILED
    assert "differs" in outcome.reason


def test_executor_raises_transient_first_read_and_fails_permanent_ones() -> None:
    (action,) = plan({"app": {"size": 3}}, {"app": {"size": 2}}, [state("mem", "app")]).automatic
    source = MemorySource({"size": 2})
    source.fail_reads = [TransientError("down", system="mem")]
    with pytest.raises(TransientError):
        execute_heals([action], source, FP, None)
    source.fail_reads = [PermanentError("denied", system="mem")]
    (outcome,) = execute_heals([action], source, FP, None)
    assert outcome.result is HealResult.FAILED
    assert "denied" in outcome.reason
    assert source.writes == []


def test_approval_decisions() -> None:
    result = plan(
        {"a": {"x": 1, "y": 1}},
        {"a": {"x": 2, "y": 2}},
        [state("a", "a")],
        RULES.model_copy(update={"heal": HealPolicy(enabled=True, max_severity=Severity.LOW)}),
    )
    x, y = result.needs_approval
    approvers = {"dev": ["alice", "bob"]}
    subset = decide_approval(
        [x, y],
        approve_all=False,
        approve_ids=["dev:a.x"],
        reviewer=" alice ",
        comment="ok",
        approvers=approvers,
        requester="svc",
    )
    assert [a.id for a in subset.approved] == ["dev:a.x"]
    assert subset.reasons == {"dev:a.y": "not approved by alice"}
    assert subset.declined_by_reviewer == ("dev:a.y",)
    everything = decide_approval(
        [x, y],
        approve_all=True,
        approve_ids=[],
        reviewer="bob",
        comment="c",
        approvers=approvers,
        requester="svc",
    )
    assert len(everything.approved) == 2
    for reviewer, comment, why in [
        ("", "c", "required"),
        ("bob", " ", "required"),
        ("mallory", "c", "not an approver"),
        ("svc", "c", "requested this scan"),
    ]:
        refused = decide_approval(
            [x],
            approve_all=True,
            approve_ids=[],
            reviewer=reviewer,
            comment=comment,
            approvers=approvers,
            requester="svc",
        )
        assert refused.approved == ()
        assert why in refused.reasons["dev:a.x"]
        assert refused.declined_by_reviewer == ()

    remembered = remember_declined(None, subset, [x, y], ["dev"], "t")
    assert previously_declined(remembered, [x, y]) == {y.item_fingerprint}
    assert remember_declined(remembered, None, [x], ["dev"], "t") == {}, "drift gone: forgotten"
    assert remember_declined(remembered, None, [], ["other"], "t") == remembered


def test_assemble_live_mounts_and_reports_failures() -> None:
    from envsteward.catalog.models import FileSource

    specs = [
        FileSource(name="a", kind="file", path="a.json", mount_at="app.db"),
        FileSource(name="b", kind="file", path="b.json", mount_at=""),
        FileSource(name="c", kind="file", path="c.json", mount_at="x"),
        FileSource(name="d", kind="file", path="d.json", mount_at="y"),
    ]
    live = assemble_live(
        specs, {"a": {"port": 1}, "b": {"top": True}, "c": NotFoundError("gone", system="file")}
    )
    assert live.data == {"app": {"db": {"port": 1}}, "top": True}
    assert [(s.name, s.ok, s.error) for s in live.unreachable] == [
        ("c", False, "file: gone"),
        ("d", False, "not read"),
    ]
    assert "port" not in repr(live)


def test_call_with_retries_backs_off_on_transient_errors_only() -> None:
    delays: list[float] = []
    calls = iter([TransientError("t"), TransientError("t"), 7])

    def flaky() -> int:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert call_with_retries(flaky, retries=3, backoff_seconds=1, jitter=0.5, sleep=delays.append) == 7
    assert len(delays) == 2
    assert 0.5 <= delays[0] <= 1.5
    assert 1.0 <= delays[1] <= 3.0
    with pytest.raises(NotFoundError):
        call_with_retries(lambda: (_ for _ in ()).throw(NotFoundError("n")), sleep=delays.append)
    assert len(delays) == 2


class _Killed(BaseException):
    """Stands for the process dying (SIGKILL) in the middle of a write: nothing after it runs."""


def test_every_write_is_audited_before_it_is_made_so_a_killed_heal_leaves_a_trace(tmp_path: Any) -> None:
    from envsteward.audit import AuditLog, JsonLinesFileSink

    log = AuditLog(JsonLinesFileSink(tmp_path / "audit.jsonl"), "scanner")
    source = MemorySource({"size": 2, "mode": "a"})
    result = plan({"app": {"size": 3, "mode": "b"}}, {"app": {"size": 2, "mode": "a"}}, [state("mem", "app")])
    size, mode = result.automatic
    original_write = source.write

    def dies_after_the_second_write(key_path: tuple[str, ...], value: Any) -> None:
        original_write(key_path, value)
        if len(source.writes) == 2:
            raise _Killed

    source.write = dies_after_the_second_write  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        execute_heals([size, mode], source, FP, log)
    assert source.data == {"size": 3, "mode": "b"}  # both written, no outcome recorded
    records = [(r.action, r.details["path"]) for r in log.records()]
    assert records == [("drift.heal_writing", "app.size"), ("drift.heal_writing", "app.mode")]
