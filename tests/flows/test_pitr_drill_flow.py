"""The ``dr-drill`` flow on a PITR target, under Prefect, with a real throwaway cluster that archives with
``envsteward wal push``: the drill restores the newest base backup plus the archived WAL FROM THE DR
REGION (the primary store is moved away first) into a scratch cluster, measures RPO as drill start - the
last replayed commit and RTO as drill start - the cluster answering the smoke queries, compares both with
the catalog's targets, keeps them in the drill history, and stops and removes the scratch cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.drill import DrillStatus, load_history
from envsteward.services import Services, set_services
from envsteward.settings import AuditSettings, Settings
from tests.fixtures.pg_cluster import ClusterFactory, give_to_db_user
from tests.integration._pitr_setup import (
    SELECTOR,
    PitrSetup,
    archiving_cluster,
    insert,
    pitr_setup,
    switch_and_wait_archived,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROWS_SQL = "SELECT count(*) FROM t"


def add_drill_section(setup: PitrSetup, drill: dict[str, Any]) -> None:
    path = setup.catalog / "environments.yaml"
    document = json.loads(path.read_text())
    document["environments"][0]["drill"] = drill
    path.write_text(json.dumps(document))
    give_to_db_user(setup.catalog)


def services_for(setup: PitrSetup) -> Services:
    keys = setup.root / "audit-keys"
    return Services(
        Settings(
            catalog=setup.catalog,
            home=setup.home,
            actor="pitr-drill-tests",
            audit=AuditSettings(
                signing_key_file=keys / "audit-signing.key", trusted_keys_file=keys / "audit-trusted-keys"
            ),
        )
    )


def archived_cluster_with_rows(
    factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[PitrSetup, Any]:
    """A cluster archiving every 2 s, a base backup, then more rows archived after it."""
    setup = pitr_setup(factory)
    cluster = archiving_cluster(factory, setup, archive_timeout="'2s'")
    monkeypatch.setenv("ENVSTEWARD_EXECUTABLE", setup.executable)  # the restore_command of the scratch
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 4))
    setup.envsteward("pitr", "base-backup", SELECTOR)
    return setup, cluster


def test_pitr_drill_measures_rpo_and_rto_from_the_dr_region(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.flows.dr_drill import dr_drill

    setup, cluster = archived_cluster_with_rows(pg_cluster_factory, monkeypatch)
    insert(cluster, range(4, 8))
    last_commit = insert(cluster, range(8, 9))
    switch_and_wait_archived(cluster)
    add_drill_section(
        setup,
        {
            "rpo_target_minutes": 5,
            "rto_target_minutes": 15,
            "smoke_queries": [{"name": "all-rows", "sql": ROWS_SQL, "expect": "8"}],
        },
    )
    # the primary region is lost: only the DR copy can serve the base backup and the WAL
    (setup.home / "objects").rename(setup.home / "objects-lost")

    services = services_for(setup)
    set_services(services)
    try:
        before = datetime.now(UTC)
        state = dr_drill("dev", return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
    finally:
        set_services(None)

    assert summary["status"] == DrillStatus.PASSED.value, summary
    assert summary["method"] == "pitr"
    assert summary["backup_id"].startswith("dev/db.pitr/")
    assert summary["region"] == "dr"
    recovered_to = datetime.fromisoformat(summary["recovered_to"])
    started = datetime.fromisoformat(summary["started_at"])
    # the last replayed commit is the last row's commit (its clock_timestamp() is taken just before)
    assert last_commit <= recovered_to
    assert (recovered_to - last_commit).total_seconds() < 1.0
    rpo = summary["rpo"]
    assert rpo["measured_seconds"] == pytest.approx(
        max(0.0, (started - recovered_to).total_seconds()), abs=0.01
    )
    assert rpo["target_seconds"] == 300
    assert rpo["met"] is True
    rto = summary["rto"]
    ready = datetime.fromisoformat(summary["ready_at"])
    assert rto["measured_seconds"] == pytest.approx((ready - started).total_seconds(), abs=0.01)
    assert 0 < rto["measured_seconds"] < (datetime.now(UTC) - before).total_seconds()
    assert rto["target_seconds"] == 900
    assert rto["met"] is True
    smoke = [row for row in summary["verifications"] if row["kind"] == "smoke"]
    assert smoke == [
        {
            "kind": "smoke",
            "name": "all-rows",
            "expected": ">= 1 row(s), first value = '8'",
            "actual": "1+ row(s), first value matches",
            "result": "pass",
        }
    ]
    # torn down: the folder and its postmaster are gone
    assert summary["scratch_removed"] is True
    assert not (setup.home / "drill-scratch" / summary["scratch"]).exists()
    assert not _postmasters_under(setup.home / "drill-scratch")

    # kept in the history, shown by `drill history`
    (record,) = load_history(services.state_store(), "dev")
    assert record.method == "pitr"
    assert record.rpo_seconds == rpo["measured_seconds"]
    from envsteward.cli.main import app

    done = CliRunner().invoke(
        app,
        ["drill", "history", "--env", "dev", "--json", "--catalog", str(setup.catalog)],
        env={"ENVSTEWARD_HOME": str(setup.home)},
    )
    assert done.exit_code == 0, done.output
    (row,) = json.loads(done.stdout)
    assert row["method"] == "pitr"
    assert row["rpo_minutes"] == round(rpo["measured_seconds"] / 60, 2)


def _postmasters_under(folder: Path) -> list[str]:
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            target = cwd.readlink()
        except OSError:
            continue
        if str(target).startswith(str(folder)):
            found.append(str(target))
    return found


def test_a_damaged_wal_segment_in_the_dr_region_fails_the_drill(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged DR copy of a segment the restore needs stops recovery (wal fetch exits 126): the drill
    fails in restore, names the segment, and still removes its scratch cluster."""
    from envsteward.flows.dr_drill import dr_drill

    from envsteward.pitr.walnames import archive_prefix, wal_object_key

    setup, cluster = archived_cluster_with_rows(pg_cluster_factory, monkeypatch)
    insert(cluster, range(4, 6))
    segment = switch_and_wait_archived(cluster)
    insert(cluster, range(6, 7))
    switch_and_wait_archived(cluster)
    add_drill_section(setup, {"smoke_queries": [{"name": "rows", "sql": ROWS_SQL}]})
    stored = setup.home / "objects-dr" / wal_object_key(archive_prefix("dev", "db"), segment)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))

    services = services_for(setup)
    set_services(services)
    try:
        state = dr_drill("dev", return_state=True)
    finally:
        set_services(None)
    assert state.is_failed()
    summary = state.result(raise_on_failure=False)
    assert summary["status"] == "failed"
    assert summary["failed_phase"] == "restore"
    assert segment in summary["error"], summary["error"]
    assert summary["scratch_removed"] is True
    assert not _postmasters_under(setup.home / "drill-scratch")
