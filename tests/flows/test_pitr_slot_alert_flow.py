"""The inactive-replication-slot alert in the ``health-check`` flow, on a throwaway cluster with a real
physical slot: WAL written while nothing streams warns once (Slack and PagerDuty stand-ins), escalates
once to a page, stays quiet while nothing changes, and resolves once ``pg_receivewal`` consumes the slot.
The slot is never dropped by the check, and no message holds the target's password."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envsteward.services import Services, set_services
from envsteward.settings import PagerDutySettings, Settings, SlackSettings
from tests.fixtures.pg_cluster import (
    PG_BIN,
    ClusterFactory,
    PgCluster,
    as_db_user,
    give_to_db_user,
    wait_for,
)
from tests.fixtures.standins import PAGERDUTY_ROUTING_KEY, SLACK_TOKEN, PagerDutyStandin, SlackStandin
from tests.flows._events import wait_for_events

pytestmark = pytest.mark.usefixtures("prefect_harness")

SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_SLOT_SLACK_TOKEN"
PD_KEY_ENV = "ENVSTEWARD_TEST_SLOT_PD_KEY"
PASSWORD_ENV = "ENVSTEWARD_TEST_SLOT_PG_PASSWORD"
SEEDED_PASSWORD = "slot-watch-seeded-password-93c2"
SLOT = "envsteward_prod_orders_db"
WARN_MIB, PAGE_MIB = 16, 64


def write_catalog(folder: Path, cluster: PgCluster) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = {
        "platform": "slotwatch",
        "channels": [
            {"name": "ops-slack", "kind": "slack", "channel": "#envsteward-alerts"},
            {"name": "oncall", "kind": "pagerduty", "routing_key": f"secret+env://{PD_KEY_ENV}"},
        ],
    }
    target = {
        "name": "orders-db",
        "kind": "postgres",
        "dsn": cluster.dsn,
        "password": f"secret+env://{PASSWORD_ENV}",  # trust auth ignores it; it must not leak anyway
        "pitr": {
            "enabled": True,
            "streaming": True,
            "slot_alert": {
                "warn_retained_mib": WARN_MIB,
                "page_retained_mib": PAGE_MIB,
                "warn_inactive_minutes": 600,  # only the sizes matter in this test
            },
        },
    }
    environment = {
        "name": "prod",
        "tier": "development",
        "notify": ["ops-slack", "oncall"],
        "backups": [target],
    }
    (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
    (folder / "environments.yaml").write_text(json.dumps({"environments": [environment]}), encoding="utf-8")
    return folder


@pytest.fixture
def watched(
    tmp_path: Path,
    pg_cluster_factory: ClusterFactory,
    slack_standin: SlackStandin,
    pagerduty_standin: PagerDutyStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PgCluster]:
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PD_KEY_ENV, PAGERDUTY_ROUTING_KEY)
    monkeypatch.setenv(PASSWORD_ENV, SEEDED_PASSWORD)
    cluster = pg_cluster_factory("slotwatch", max_replication_slots="4")
    settings = Settings(
        catalog=write_catalog(tmp_path / "catalog", cluster),
        home=tmp_path / "home",
        actor="slot-watch-test",
        slack=SlackSettings(base_url=slack_standin.url, token_env=SLACK_TOKEN_ENV),
        pagerduty=PagerDutySettings(events_url=pagerduty_standin.url),
    )
    set_services(Services(settings))
    yield cluster
    set_services(None)


def write_wal(cluster: PgCluster, mib: int) -> None:
    """About ``mib`` MiB of WAL (new rows; the slot keeps it all)."""
    cluster.execute("CREATE TABLE IF NOT EXISTS filler (id bigserial PRIMARY KEY, pad text NOT NULL)")
    rows = mib * 1024 * 1024 // 140
    cluster.execute("INSERT INTO filler (pad) SELECT repeat('x', 100) FROM generate_series(1, %s)", (rows,))


def retained_bytes(cluster: PgCluster) -> int:
    ((held,),) = cluster.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots "
        "WHERE slot_name = %s",
        (SLOT,),
    )
    return int(held)


@contextlib.contextmanager
def receiving(cluster: PgCluster) -> Iterator[None]:
    """``pg_receivewal`` on the slot (as ``wal stream`` runs it) until the block ends."""
    spool = cluster.data_dir.parent / "spool"  # the database's OS user must reach it
    spool.mkdir()
    give_to_db_user(spool)
    receiver = subprocess.Popen(
        as_db_user(
            [
                str(PG_BIN / "pg_receivewal"),
                f"--dbname={cluster.dsn}",
                f"--directory={spool}",
                f"--slot={SLOT}",
                "--no-password",
                "--status-interval=1",
            ]
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                receiver.poll() is not None
                or cluster.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
                == [(True,)]
            ),
            60,
            "pg_receivewal to use the slot",
        )
        assert receiver.poll() is None, "pg_receivewal exited"
        yield
    finally:
        receiver.terminate()
        _out, errors = receiver.communicate(timeout=30)
    assert "error" not in errors.lower(), errors


def slot_events(expect: dict[str, int], timeout: float = 30) -> list[Any]:
    """The ``envsteward.health.*`` events of the slot's check, oldest first (polled until ``expect``)."""
    return wait_for_events(
        "envsteward.health.", "envsteward.health.prod.pitr-slot.orders-db", expect, timeout
    )


def assert_pitr_status_shows_the_page() -> None:
    """What ``pitr status`` shows of the slot: read-only, with the "inactive since" the flow recorded."""
    from envsteward.pitr.slot_watch import slot_status
    from envsteward.services import get_services

    services = get_services()
    spec = services.catalog().environment("prod").backups[0]
    assert spec.kind == "postgres"
    before = services.state_store().get("pitr-slot/prod/orders-db")
    shown = slot_status(services, services.state_store(), "prod", spec)
    assert services.state_store().get("pitr-slot/prod/orders-db") == before, "pitr status wrote state"
    assert shown["status"] == "down"
    assert shown["retained_bytes"] >= PAGE_MIB * 2**20  # a checkpoint may add WAL between two reads
    assert shown["inactive_since"] is not None
    assert SLOT in shown["fix"]


def slot_row(summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = summary["environments"]["prod"]["pitr-slot.orders-db"]
    return row


def test_inactive_slot_warns_pages_once_and_resolves_when_streaming_resumes(
    watched: PgCluster, slack_standin: SlackStandin, pagerduty_standin: PagerDutyStandin
) -> None:
    from envsteward.flows.health_check import health_check

    cluster = watched
    quiet = health_check()  # no slot yet: the silent baseline
    assert slot_row(quiet)["status"] == "up", quiet
    assert slack_standin.messages() == []
    assert pagerduty_standin.events == []

    cluster.execute("SELECT pg_create_physical_replication_slot(%s, true)", (SLOT,))
    write_wal(cluster, WARN_MIB + 8)  # nothing streams: the slot holds all of it
    assert WARN_MIB * 2**20 <= retained_bytes(cluster) < PAGE_MIB * 2**20
    warned = health_check()
    assert slot_row(warned)["status"] == "degraded", warned
    (warning,) = slack_standin.messages()
    text = json.dumps(warning)
    assert SLOT in text
    assert "INACTIVE" in text
    assert " MB of WAL" in text
    assert "envsteward wal stream --target prod/orders-db" in text
    assert f"SELECT pg_drop_replication_slot('{SLOT}');" in text
    (trigger,) = pagerduty_standin.events
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "warning"

    write_wal(cluster, PAGE_MIB)
    assert retained_bytes(cluster) >= PAGE_MIB * 2**20
    paged = health_check()
    assert slot_row(paged)["status"] == "down", paged
    assert len(slack_standin.messages()) == 2
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "trigger"]
    assert pagerduty_standin.events[1]["dedup_key"] == trigger["dedup_key"]  # one incident, escalated

    still = health_check()  # the same incident: nobody is told again
    assert slot_row(still)["status"] == "down", still
    assert len(slack_standin.messages()) == 2
    assert len(pagerduty_standin.events) == 2
    assert cluster.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)) == [
        (1,)
    ], "the check must never drop the slot"
    assert_pitr_status_shows_the_page()

    with receiving(cluster):
        recovered = health_check()
    assert slot_row(recovered)["status"] == "up", recovered
    assert len(slack_standin.messages()) == 3
    assert "recovered" in json.dumps(slack_standin.messages()[-1])
    resolve = pagerduty_standin.events[-1]
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]

    everything = json.dumps([slack_standin.messages(), pagerduty_standin.events]) + "".join(
        body.decode(errors="replace") for body in pagerduty_standin.received
    )
    events = slot_events(
        {"envsteward.health.degraded": 1, "envsteward.health.down": 1, "envsteward.health.recovered": 1}
    )
    assert [e.event for e in events] == [
        "envsteward.health.degraded",
        "envsteward.health.down",
        "envsteward.health.recovered",
    ]
    assert {e.payload["kind"] for e in events} == {"pitr-slot"}
    everything += "".join(e.model_dump_json() for e in events)
    assert SEEDED_PASSWORD not in everything
