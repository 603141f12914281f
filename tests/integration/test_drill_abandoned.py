"""Abandoned drills on the machine's PostgreSQL: a drill process SIGKILLed in the middle of its restore
leaves a marked scratch database, a ledger entry and a ``drill.started`` with no end; the next drill with
the default threshold leaves them alone (it may be running) and says so; a drill whose sweep threshold is
tiny drops the database, audits ``drill.abandoned`` once (a later sweep does not report it again), records
an ``abandoned`` history row, and passes. A database that merely starts with ``envsteward_drill_`` (no
marker, or another installation's marker) is never dropped."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envsteward.drill import DrillStatus, load_history, run_drill
from envsteward.drill.abandoned import DrillLedger, ScratchMarker
from envsteward.drill.phases import choose, fetch_verify, prepare, restore, start_drill
from envsteward.services import Services
from envsteward.settings import Settings
from tests.integration import test_drill_postgres
from tests.integration.test_drill_postgres import FakeClock, PgDrill, scratch_databases

pg_drill = test_drill_postgres.pg_drill  # the fixture, shared

TINY_SECONDS = 0.001


def _drill_until_killed(settings: Settings, ready: Any, token: str) -> None:
    """The child: a drill that stops in the middle of its restore (after the first restored chunk) and
    waits there to be killed."""
    services = Services(settings)
    drill = start_drill(services, "prod", token=token)
    prepare(services, drill)
    choose(drill)
    fetch_verify(services, drill)

    def hang(event: Any) -> None:
        ready.set()
        time.sleep(600)

    restore(drill, hang)


def drill_actions(services: Services) -> list[tuple[str, dict[str, Any]]]:
    return [
        (record.action, record.details)
        for record in services.audit_log().records()
        if record.action.startswith("drill.")
    ]


def comment_of(postgres_dsn_base: str, name: str) -> str | None:
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def extra_databases(postgres_dsn_base: str) -> Iterator[Callable[[str, str | None], None]]:
    """``(name, comment)``: create a database (dropped afterwards)."""
    made: list[str] = []

    def make(name: str, comment: str | None) -> None:
        with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            made.append(name)
            if comment is not None:
                conn.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment))
                )

    yield make
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC) - timedelta(minutes=2), timedelta(seconds=1))


def test_a_drill_killed_in_its_restore_is_swept_by_a_later_drill(
    pg_drill: Callable[..., PgDrill], postgres_dsn_base: str
) -> None:
    drill = pg_drill(store="filesystem", key_provider="local")
    drill.backup()
    services = drill.services
    token = secrets.token_hex(4)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=_drill_until_killed, args=(services.settings, ready, token))
    child.start()
    try:
        assert ready.wait(120), "the child drill never reached its restore"
        [scratch] = scratch_databases(postgres_dsn_base, token)
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)
    assert child.exitcode == -signal.SIGKILL
    killed = next(iter(DrillLedger(services.state_store()).entries()))
    marker = ScratchMarker.parse(comment_of(postgres_dsn_base, scratch), scratch)
    assert marker is not None
    assert marker.drill_id == killed
    assert [action for action, _ in drill_actions(services)] == ["drill.started"]

    # the default threshold (the drill's total timeout): the leftover may belong to a running drill
    young, _ = drill.drill(clock())
    assert young.status is DrillStatus.PASSED, young.error
    assert scratch_databases(postgres_dsn_base, token) == [scratch]
    assert any("left alone" in note and scratch in note for note in young.notes), young.notes
    assert "drill.abandoned" not in [action for action, _ in drill_actions(services)]

    # a tiny threshold: it is abandoned
    swept, _ = drill.drill(clock(), abandoned_after_seconds=TINY_SECONDS)
    assert swept.status is DrillStatus.PASSED, swept.error
    assert scratch_databases(postgres_dsn_base, token) == []
    assert any("abandoned" in note and scratch in note for note in swept.notes), swept.notes
    [(_, details)] = [item for item in drill_actions(services) if item[0] == "drill.abandoned"]
    assert details["drill_id"] == killed
    assert details["orphaned_started"] == killed
    assert details["scratch"] == scratch
    assert details["scratch_removed"] is True
    assert details["age_seconds"] > 0
    assert str(child.pid) in details["created_by_run"]
    assert DrillLedger(services.state_store()).entries() == {}
    history = {record.drill_id: record for record in load_history(services.state_store(), "prod")}
    assert history[killed].status is DrillStatus.ABANDONED
    assert history[killed].scratch == scratch

    # once: a later sweep finds nothing to report
    again, _ = drill.drill(clock(), abandoned_after_seconds=TINY_SECONDS)
    assert again.status is DrillStatus.PASSED
    assert not any("abandoned" in note for note in again.notes), again.notes
    assert [action for action, _ in drill_actions(services)].count("drill.abandoned") == 1


def test_look_alike_databases_are_never_dropped(
    pg_drill: Callable[..., PgDrill],
    postgres_dsn_base: str,
    extra_databases: Callable[[str, str | None], None],
) -> None:
    drill = pg_drill(store="filesystem", key_provider="local")
    drill.backup()
    owner = DrillLedger(drill.services.state_store()).owner()
    old = datetime.now(UTC) - timedelta(days=30)
    unmarked = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    commented = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    foreign = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    ours_young = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    ours_old = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    extra_databases(unmarked, None)
    extra_databases(commented, "a database someone named like ours")
    extra_databases(foreign, ScratchMarker(foreign, "drill-x-1", "prod", "inst-someone-else", old).encode())
    extra_databases(
        ours_young, ScratchMarker(ours_young, "drill-y-2", "prod", owner, datetime.now(UTC)).encode()
    )
    extra_databases(
        ours_old, ScratchMarker(ours_old, "drill-z-3", "prod", owner, old, "flow run 42").encode()
    )

    record, _ = drill.drill(clock(), abandoned_after_seconds=3600)

    assert record.status is DrillStatus.PASSED, record.error
    names = [unmarked, commented, foreign, ours_young, ours_old]
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)).fetchall()
    assert sorted(str(row[0]) for row in rows) == sorted([unmarked, commented, foreign, ours_young])
    [(_, details)] = [item for item in drill_actions(drill.services) if item[0] == "drill.abandoned"]
    assert details["scratch"] == ours_old
    assert details["drill_id"] == "drill-z-3"
    assert details["created_by_run"] == "flow run 42"
    assert details["found_by"] == "marker"
    notes = "\n".join(record.notes)
    assert ours_young in notes
    assert "left alone" in notes
    for name in (unmarked, commented, foreign):
        assert name in notes  # reported as not ours, never touched
    # found by its marker only (no ledger entry: the drill is not known to have run here): no history row
    assert load_history(drill.services.state_store(), "prod") == []


def test_a_leftover_whose_entry_names_it_before_it_was_created_is_cleared(
    pg_drill: Callable[..., PgDrill], postgres_dsn_base: str
) -> None:
    """Killed between recording the scratch database and creating it: the entry names a database that does
    not exist; the sweep reports the drill abandoned and clears the entry."""
    drill = pg_drill(store="filesystem", key_provider="local")
    drill.backup()
    ledger = DrillLedger(drill.services.state_store())
    name = f"envsteward_drill_prod_{secrets.token_hex(4)}"
    ledger.begin("drill-killed-early", environment="prod", target="orders-db", run="pid 1 on nowhere")
    ledger.scratch(
        "drill-killed-early",
        kind="postgres",
        name=name,
        location="postgresql://postgres@127.0.0.1:5432/postgres",
        target="orders-db",
    )

    record = run_drill(drill.services, "prod", clock=clock(), abandoned_after_seconds=TINY_SECONDS)

    assert record.status is DrillStatus.PASSED, record.error
    [(_, details)] = [item for item in drill_actions(drill.services) if item[0] == "drill.abandoned"]
    assert details["drill_id"] == "drill-killed-early"
    assert details["scratch_removed"] is True
    with contextlib.suppress(StopIteration):
        assert next(iter(ledger.entries())) != "drill-killed-early"
    [abandoned] = [
        r for r in load_history(drill.services.state_store(), "prod") if r.drill_id == "drill-killed-early"
    ]
    assert abandoned.status is DrillStatus.ABANDONED
