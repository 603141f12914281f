"""``pitr.slot_name`` on a real server: the slot watch and ``pitr status`` follow a custom slot (the one a
``wal stream --slot NAME`` streamer uses), not the default name."""

from __future__ import annotations

import json
from typing import Any

from envsteward.catalog import load_catalog
from envsteward.pitr.slot_watch import watch_slots
from tests.fixtures.pg_cluster import ClusterFactory
from tests.integration._pitr_setup import SELECTOR, pitr_setup


class _Services:
    """What the watch needs: the catalog (real, from the setup's folder) and secret resolution (none)."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog

    def catalog(self) -> Any:
        return self._catalog

    def resolve_secret(self, ref: Any) -> Any:
        raise AssertionError("the test catalog has no secrets")


def test_the_watch_and_status_follow_the_catalog_slot_name(pg_cluster_factory: ClusterFactory) -> None:
    from envsteward.adapters.state_fs import FileStateStore

    setup = pitr_setup(pg_cluster_factory)
    cluster = pg_cluster_factory("slots")
    cluster.execute("SELECT pg_create_physical_replication_slot('orders_stream', true)")
    setup.write_catalog(cluster.port, streaming=True, slot_name="orders_stream")

    run = watch_slots(
        _Services(load_catalog(setup.catalog)),
        FileStateStore(setup.root / "state"),
        ["dev"],  # type: ignore[arg-type]
    )
    assert run.unreadable == []
    (result,) = run.results
    assert "slot orders_stream INACTIVE" in (result.detail or ""), result.detail

    status = json.loads(setup.envsteward("pitr", "status", SELECTOR).stdout)["slot"]
    assert status["slot"] == "orders_stream"
    assert status["exists"] is True
    assert status["active"] is False

    # without the setting the watch looks for the default slot, which does not exist
    setup.write_catalog(cluster.port, streaming=True)
    status = json.loads(setup.envsteward("pitr", "status", SELECTOR).stdout)["slot"]
    assert status["slot"] == "envsteward_dev_db"
    assert status["exists"] is False
