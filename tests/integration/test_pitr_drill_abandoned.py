"""A PITR drill killed after its scratch cluster started leaves a running postmaster, its folder and a
ledger entry; the next drill leaves a young one alone (it may be running), and one past the threshold is
stopped, removed and audited ``drill.abandoned``, found through the ledger or, when the ledger lost it,
through the folder's marker. A look-alike folder with another installation's marker is never touched.

The "kill" is a drill whose process stops running its phases after ``restore`` (no teardown, no finish):
the cluster was started by ``pg_ctl`` and outlives it exactly as it outlives a SIGKILLed drill."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.drill import DrillStatus, load_history, run_drill
from envsteward.drill.abandoned import DrillLedger, ScratchMarker
from envsteward.drill.phases import choose, fetch_verify, prepare, restore, start_drill
from envsteward.drill.pitr_scratch import MARKER_FILE, PitrClusterScratch
from envsteward.pitr.postmaster import postmaster_pid
from tests.fixtures.pg_cluster import ClusterFactory
from tests.flows.test_pitr_drill_flow import add_drill_section, services_for
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    insert,
    pitr_setup,
    switch_and_wait_archived,
)

TINY_SECONDS = 0.001


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_pitr_drill_is_swept_by_the_next(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup, archive_timeout="'2s'")
    monkeypatch.setenv("ENVSTEWARD_EXECUTABLE", setup.executable)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 3))
    setup.envsteward("pitr", "base-backup", SELECTOR)
    insert(cluster, range(3, 5))
    switch_and_wait_archived(cluster)
    add_drill_section(setup, {"smoke_queries": [{"name": "rows", "sql": "SELECT id FROM t"}]})
    services = services_for(setup)

    def killed_drill(token: str) -> PitrClusterScratch:
        drill = start_drill(services, "dev", token=token)
        prepare(services, drill)
        choose(drill)
        fetch_verify(services, drill)
        restore(drill)
        assert isinstance(drill.scratch, PitrClusterScratch)
        return drill.scratch  # ... and the process dies here: no teardown, no finish

    by_ledger = killed_drill("aaaa0001")
    by_marker = killed_drill("aaaa0002")
    pids = {}
    for scratch in (by_ledger, by_marker):
        pid = postmaster_pid(scratch.data_dir)
        assert pid is not None
        assert alive(pid)
        pids[scratch.name] = pid
    # the ledger lost the second drill (a wiped state store): only its folder's marker names it
    ledger = DrillLedger(services.state_store())
    (lost,) = [key for key, entry in ledger.entries().items() if "aaaa0002" in key]
    ledger.forget(lost)
    # a look-alike of another installation: never touched
    foreign = setup.home / "drill-scratch" / "envsteward_drill_dev_ffff0000"
    foreign.mkdir()
    other = ScratchMarker(
        scratch=foreign.name,
        drill_id="drill-x",
        environment="dev",
        owner="inst-someone-else",
        created_at=datetime.now(UTC) - timedelta(days=10),
    )
    (foreign / MARKER_FILE).write_text(other.encode())

    # the default threshold (a drill's start sweeps): both may still be running, left alone and reported
    young = start_drill(services, "dev", token="bbbb0001")
    DrillLedger(services.state_store()).forget(young.drill_id)  # this one only looked
    assert young.sweep is not None
    notes = young.sweep.lines()
    assert all(alive(pid) for pid in pids.values())
    assert sum("left alone (younger" in note for note in notes) == 2, notes
    assert any(str(foreign) in note for note in notes), notes

    # past the threshold: stopped, removed, audited once each
    swept = run_drill(services, "dev", token="bbbb0002", abandoned_after_seconds=TINY_SECONDS)
    assert swept.status is DrillStatus.PASSED, swept.error
    assert swept.method == "pitr"
    for scratch in (by_ledger, by_marker):
        assert not alive(pids[scratch.name]), scratch.name
        assert not scratch.folder.exists()
    assert foreign.exists()
    abandoned = [r.details for r in services.audit_log().records() if r.action == "drill.abandoned"]
    assert sorted((d["scratch"], d["found_by"], d["scratch_removed"]) for d in abandoned) == [
        (by_ledger.name, "ledger", True),
        (by_marker.name, "marker", True),
    ]
    history = load_history(services.state_store(), "dev")
    assert [r.status for r in history if r.drill_id.endswith("aaaa0001")] == [DrillStatus.ABANDONED]
