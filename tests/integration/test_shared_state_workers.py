"""Shared state under several workers: OS processes racing on the real stores (issue 14).

Every test starts WORKERS fresh processes that wait on one barrier and then race on the same key of the
real file state store (flock) or the real Redis on 127.0.0.1:6379 (WATCH/MULTI; keys under this test's
own prefix), or on the same audit log (JSON lines + flock; S3 objects on the moto server). Each asserts
the property a platform with two or more workers relies on: exactly one winner, one notification per
change, one linear chain. Threads are not enough: they share a process, a GIL and (for the file store)
nothing that flock would arbitrate.

Notifications go to the Slack stand-in over HTTP (slack-sdk against a loopback server), so "exactly one
message" is counted where a person would see it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from envsteward.adapters.aws_session import AWSClients
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.adapters.slack import SlackNotifier
from envsteward.adapters.state_fs import FileStateStore
from envsteward.adapters.state_redis import RedisStateStore
from envsteward.audit import AuditLog, JsonLinesFileSink, ObjectStoreSink
from envsteward.drill.abandoned import DrillLedger
from envsteward.errors import WriteRaceError
from envsteward.health.alerts import notification_for
from envsteward.health.recording import record_result
from envsteward.health.result import CheckResult, CheckStatus
from envsteward.health.tracker import state_key as health_key
from envsteward.ports import Severity
from envsteward.promotion import lock
from envsteward.promotion.journal import (
    JournalStatus,
    RepairClaim,
    RollbackJournal,
    claim_for_repair,
    journal_key,
    load_journal,
)
from envsteward.scan.alerts import AlertItem, ChannelRoute, plan_alerts, record_alerts
from envsteward.settings import AWSSettings
from tests.fixtures.aws import S3Buckets
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin

WORKERS = 6
ROUNDS = 10
"""Independent races per test (one key each): one lucky ordering must not make a test pass."""
JOIN_SECONDS = 180
CHANNEL = "#envsteward-alerts"

StoreSpec = tuple[str, str, str]  # (kind, location, key prefix)


def _build(spec: StoreSpec) -> FileStateStore | RedisStateStore:
    kind, location, prefix = spec
    return FileStateStore(Path(location)) if kind == "file" else RedisStateStore(location, prefix)


@pytest.fixture(params=["file", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """Each store; Redis keys live under this test's own prefix (deleted afterwards by the fixture)."""
    if request.param == "file":
        return "file", str(tmp_path / "state"), ""
    prefix = request.getfixturevalue("redis_key_prefix") + "cas-audit:"
    return "redis", request.getfixturevalue("redis_url"), prefix


def race(target: Callable[..., None], *args: Any) -> list[Any]:
    """Run ``target(worker, barrier, out, *args)`` in WORKERS fresh processes released together by one
    barrier; return everything they put on ``out``. Fails when a process did not exit cleanly."""
    # forkserver: fresh processes (nothing inherited from pytest's threads) forked from one server that
    # imported this module once, so six workers do not pay six cold imports each
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(w, barrier, out, *args)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    found: list[Any] = []
    # drain while they run: a full pipe would block a child's exit
    while any(proc.is_alive() for proc in procs) or not out.empty():
        try:
            found.append(out.get(timeout=0.2))
        except queue.Empty:
            continue
    for proc in procs:
        proc.join(timeout=JOIN_SECONDS)
    assert [proc.exitcode for proc in procs] == [0] * WORKERS, found
    return found


# -- the promotion lease -----------------------------------------------------------------------------------


def _acquire_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec) -> None:
    store = _build(spec)
    for round_ in range(ROUNDS):
        barrier.wait()
        now = datetime.now(UTC)
        try:
            lock.acquire(
                store,
                target=f"env-{round_}",
                source="staging",
                run_id=f"run-{worker}",
                requested_by=f"user-{worker}",
                now=now,
                expires_at=now + timedelta(hours=1),
                is_active=lambda _run: True,
            )
        except lock.PromotionLockedError:
            continue
        out.put((round_, worker))


def test_lease_has_exactly_one_winner(spec: StoreSpec) -> None:
    """Two promotions to one target started at the same moment on different workers: exactly one
    proceeds. Half the rounds start from an expired lease of a dead run (the takeover must race too)."""
    store = _build(spec)
    past = datetime.now(UTC) - timedelta(hours=3)
    for round_ in range(0, ROUNDS, 2):
        store.put(
            lock.lock_key(f"env-{round_}"),
            {"run_id": "dead-run", "source": "staging", "target": f"env-{round_}",
             "requested_by": "x", "acquired_at": past.isoformat(),
             "expires_at": (past + timedelta(hours=1)).isoformat()},
        )  # fmt: skip
    winners = race(_acquire_worker, spec)
    assert sorted(r for r, _ in winners) == list(range(ROUNDS)), "exactly one winner per target"
    for round_, worker in winners:
        assert (lock.holder(store, f"env-{round_}") or {}).get("run_id") == f"run-{worker}"


def _release_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec) -> None:
    store = _build(spec)
    for round_ in range(ROUNDS):
        barrier.wait()
        if lock.release(store, f"env-{round_}", "expired-run"):
            out.put((round_, worker))


def test_lease_release_is_claimed_once(spec: StoreSpec) -> None:
    """Several expiry sweeps release the same timed-out lease: the release is the claim (only the winner
    audits ``promotion.timed_out`` and notifies), so exactly one may be told it released it."""
    store = _build(spec)
    for round_ in range(ROUNDS):
        store.put(lock.lock_key(f"env-{round_}"), {"run_id": "expired-run", "target": f"env-{round_}"})
    released = race(_release_worker, spec)
    assert Counter(r for r, _ in released) == dict.fromkeys(range(ROUNDS), 1)
    assert all(lock.holder(store, f"env-{r}") is None for r in range(ROUNDS))


# -- rollback journals and the drill ledger ----------------------------------------------------------------


def _claim_journal_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec) -> None:
    store = _build(spec)
    for round_ in range(ROUNDS):
        barrier.wait()
        journal = load_journal(store, f"env-{round_}")
        assert journal is not None
        now = datetime.now(UTC)
        claim = RepairClaim(by=f"sweep-{worker}", until=now + timedelta(minutes=5))
        if claim_for_repair(store, journal, claim, now=now) is not None:
            out.put((round_, worker))


def test_rollback_repair_is_claimed_by_one_sweep(spec: StoreSpec) -> None:
    """Sweeps on several workers find the same dead run's journal: exactly one restores it."""
    store = _build(spec)
    now = datetime.now(UTC)
    for round_ in range(ROUNDS):
        journal = RollbackJournal(
            run_id="dead-run",
            source="staging",
            target=f"env-{round_}",
            plan_hash="h",
            created_at=now,
            updated_at=now,
            apply_deadline=now - timedelta(minutes=1),
            status=JournalStatus.APPLYING,
            changes=("a.b",),
            entries=(),
        )
        store.put(journal_key(f"env-{round_}"), journal.model_dump(mode="json"))
    claimed = race(_claim_journal_worker, spec)
    assert Counter(r for r, _ in claimed) == dict.fromkeys(range(ROUNDS), 1)
    for round_, worker in claimed:
        stored = load_journal(store, f"env-{round_}")
        assert stored is not None
        assert stored.claim is not None
        assert (stored.claim.by, stored.attempts) == (f"sweep-{worker}", 1)


def _ledger_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec) -> None:
    ledger = DrillLedger(_build(spec))
    for round_ in range(ROUNDS):
        barrier.wait()
        if ledger.claim_name(f"scratch-{round_}"):
            out.put(("name", round_, worker))
        if ledger.claim(f"drill-{round_}", "2025-01-01T00:00:00+00:00") is not None:
            out.put(("entry", round_, worker))


def test_drill_sweep_claims_each_leftover_once(spec: StoreSpec) -> None:
    """Abandoned-drill sweeps on several workers: each leftover scratch target is dropped by one."""
    ledger = DrillLedger(_build(spec), clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    for round_ in range(ROUNDS):
        ledger.begin(f"drill-{round_}", environment="staging")
    won = race(_ledger_worker, spec)
    assert Counter((kind, r) for kind, r, _ in won) == {
        (kind, r): 1 for kind in ("name", "entry") for r in range(ROUNDS)
    }


# -- alert de-duplication and the health confirmed state ---------------------------------------------------


def _items(*names: str) -> list[AlertItem]:
    return [
        AlertItem(fingerprint=f"fp-{n}", path=f"app.{n}", kind="changed", severity=Severity.HIGH, line=n)
        for n in names
    ]


PHASES: list[list[AlertItem]] = [_items("a"), _items("a", "b"), _items("a", "b"), []]
"""Drift appears, changes, is scanned again unchanged, clears: three changes, three messages."""


def _alert_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec, slack_url: str) -> None:
    store = _build(spec)
    notifier = SlackNotifier(SecretStr(SLACK_TOKEN), CHANNEL, base_url=slack_url)
    routes = [ChannelRoute(name="team-slack", kind="slack", min_severity=Severity.INFO)]
    for phase, items in enumerate(PHASES):
        barrier.wait()  # every worker scans the same state of the world
        deliveries = record_alerts(
            store,
            "drift/alerts/production",
            lambda previous, items=items: plan_alerts("production", previous, items, routes),
        )
        for delivery in deliveries:
            notifier.send(delivery.notification)
            out.put((phase, worker, delivery.notification.title))


def test_drift_alerts_are_sent_once_per_change(spec: StoreSpec, slack_standin: SlackStandin) -> None:
    """Every worker scans the same drift at once; the channel gets one message per change, not one per
    worker (the state store's compare-and-set decides who tells)."""
    sent = race(_alert_worker, spec, slack_standin.url)
    assert sorted(phase for phase, _, _ in sent) == [0, 1, 3]
    titles = sorted(title.split(" in ")[0] for _, _, title in sent)
    assert titles == ["⚠️ Drift appeared", "⚠️ Drift changed", "✅ Drift cleared"]
    assert len(slack_standin.messages()) == 3, "one message per change reached the channel"


def _health_worker(worker: int, barrier: Any, out: Any, spec: StoreSpec, slack_url: str) -> None:
    store = _build(spec)
    notifier = SlackNotifier(SecretStr(SLACK_TOKEN), CHANNEL, base_url=slack_url)
    for status in (CheckStatus.DOWN, CheckStatus.UP):
        barrier.wait()
        for _ in range(8):
            result = CheckResult(
                environment="production",
                check="db",
                kind="postgres",
                status=status,
                detail=f"worker {worker}",
                checked_at=datetime.now(UTC),
            )
            change = record_result(store, result, consecutive=3)
            if change is not None:
                notifier.send(notification_for(change))
                out.put((change.to_status.value, worker))


def test_health_transition_alerts_once(spec: StoreSpec, slack_standin: SlackStandin) -> None:
    """Health checks of one service run on every worker: the confirmed up->down transition (after 3
    results in a row) and the recovery each alert exactly once."""
    store = _build(spec)
    baseline = CheckResult(
        environment="production",
        check="db",
        kind="postgres",
        status=CheckStatus.UP,
        checked_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    assert record_result(store, baseline, consecutive=3) is None
    changes = race(_health_worker, spec, slack_standin.url)
    assert sorted(status for status, _ in changes) == ["down", "up"], changes
    assert len(slack_standin.messages()) == 2
    stored = store.get(health_key("production", "db"))
    assert isinstance(stored, dict)
    assert stored["confirmed"] == "up"


# -- the audit chain ---------------------------------------------------------------------------------------

APPENDS = 15


def _audit_worker(worker: int, barrier: Any, out: Any, build: Callable[[], AuditLog]) -> None:
    log = build()
    barrier.wait()
    for index in range(APPENDS):
        log.append("drift.healed", target=f"w{worker}-{index}", details={"worker": worker, "index": index})
    out.put(worker)


def _assert_linear(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == WORKERS * APPENDS
    records = list(log.records())
    assert [r.seq for r in records] == list(range(1, WORKERS * APPENDS + 1))
    assert len({r.target for r in records}) == WORKERS * APPENDS, "a record was lost or written twice"
    for worker in range(WORKERS):
        assert [r.details["index"] for r in records if r.details["worker"] == worker] == list(range(APPENDS))


class _JsonlLog:
    """Picklable builder of the JSON-lines log (worker processes rebuild it)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> AuditLog:
        return AuditLog(JsonLinesFileSink(Path(self.path)), "worker")


class _S3Log:
    """Picklable builder of the S3 object-per-record log on the moto server."""

    def __init__(self, settings: AWSSettings, bucket: str) -> None:
        self.settings, self.bucket = settings, bucket
        # the fork server may have started before the moto fixture set the dummy credentials
        self.env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    def __call__(self) -> AuditLog:
        from envsteward.adapters.aws_s3 import S3ObjectStore

        os.environ.update(self.env)

        return AuditLog(ObjectStoreSink(S3ObjectStore(AWSClients(self.settings), self.bucket)), "worker")


def test_audit_chain_stays_linear_on_jsonl(tmp_path: Path) -> None:
    build = _JsonlLog(str(tmp_path / "audit.jsonl"))
    race(_audit_worker, build)
    _assert_linear(build())


def test_audit_chain_stays_linear_on_s3(aws_settings: AWSSettings, s3_buckets: S3Buckets) -> None:
    """One object per record, created with If-None-Match: a record slot is won by one writer only."""
    build = _S3Log(aws_settings, s3_buckets.primary)
    race(_audit_worker, build)
    _assert_linear(build())


class _RacingStore(FilesystemObjectStore):
    """The real filesystem object store, except that the first conditional write of each record answers
    like S3 when another writer's conditional write of the same key is in flight (HTTP 409
    ConditionalRequestConflict), which the moto server never does."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.raced: set[str] = set()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key not in self.raced:
            self.raced.add(key)
            raise WriteRaceError("ConditionalRequestConflict (HTTP 409)", system="aws")
        return super().put_if_absent(key, data)


def test_s3_write_conflict_is_a_lost_race_not_a_failure(tmp_path: Path) -> None:
    """S3 answers 409 to a conditional write while another is in flight: the append re-reads the tail
    and tries again instead of failing the task (the old sink caught only ConflictError)."""
    store = _RacingStore(tmp_path / "objects")
    log = AuditLog(ObjectStoreSink(store), "alice")
    for index in range(3):
        log.append("drift.healed", target=f"t{index}")
    assert log.verify().count == 3
    assert len(store.raced) == 3


def test_s3_conditional_conflict_is_translated_to_a_write_race() -> None:
    import botocore.exceptions as boto_exc

    from envsteward.adapters.aws_errors import translate_aws_error

    exc = boto_exc.ClientError(
        {"Error": {"Code": "ConditionalRequestConflict"}, "ResponseMetadata": {"HTTPStatusCode": 409}},
        "PutObject",
    )
    translated = translate_aws_error(exc, "s3", "put_object if-none-match", "b/k")
    assert isinstance(translated, WriteRaceError)
    assert translated.transient
