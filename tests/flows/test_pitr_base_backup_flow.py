"""The ``pitr-base-backup`` flow under Prefect: a base backup of every PITR target, copied to DR, pruned to
``keep_base_backups``, audited; a target whose server is down fails the run without stopping the others."""

from __future__ import annotations

import pytest

from envsteward.backup.pipeline import list_backups
from envsteward.pitr.base import list_base_backups
from envsteward.services import Services, set_services
from envsteward.settings import Settings
from tests.fixtures.pg_cluster import ClusterFactory
from tests.integration._pitr_setup import pitr_setup

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_base_backups_for_every_pitr_target(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.flows import pitr_base_backup as module
    from envsteward.flows.pitr_base_backup import pitr_base_backup

    # the same retries (a refused connection is transient), without the 30 s / 60 s waits
    monkeypatch.setattr(
        module, "pitr_base_backup_task", module.pitr_base_backup_task.with_options(retry_delay_seconds=0)
    )

    setup = pitr_setup(pg_cluster_factory)
    cluster = pg_cluster_factory("flow")
    cluster.execute("CREATE TABLE t (id int)")
    setup.write_catalog(cluster.port, keep_base_backups=1)
    services = Services(Settings(catalog=setup.catalog, home=setup.home, actor="pitr-flow-tests"))
    set_services(services)
    try:
        first = pitr_base_backup(return_state=True)
        assert first.is_completed(), first.message
        second = pitr_base_backup(return_state=True)
        assert second.is_completed(), second.message
        summary = second.result()
        (row,) = summary["results"]
        assert row["target"] == "dev/db"
        (archive,) = summary["archive"]  # the pitr-archive-status artifact's rows
        assert archive["target"] == "dev/db"
        assert archive["state"] == "empty"  # this cluster has no archive_command
        assert row["status"] == "ok"
        for root in ("objects", "objects-dr"):
            from envsteward.adapters.objectstore_fs import FilesystemObjectStore

            kept = list_base_backups(FilesystemObjectStore(setup.home / root), "dev/db.pitr/")
            assert [item.backup_id for item in kept] == [row["backup_id"]]  # keep_base_backups: 1
        records = [r for r in services.audit_log().records() if r.action == "pitr.base_backup"]
        assert len(records) == 2

        cluster.stop("immediate")
        down = pitr_base_backup(return_state=True)
        assert down.is_failed()
        assert list_backups(services.object_store(), "dev/db.pitr/")  # the kept backup is still there
    finally:
        set_services(None)
