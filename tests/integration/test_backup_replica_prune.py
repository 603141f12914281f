"""The DR replica (copy, checksum verification, lag, corruption detected) and prune in both regions with
the retention safety floor. Real stores: local folders and moto S3 in two regions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.backup import (
    BackupSourceInfo,
    data_object_key,
    manifest_object_key,
    new_backup_id,
    write_backup,
)
from envsteward.backup.drill_marks import (
    is_verified_by_drill,
    mark_verified_by_drill,
    read_drill_mark,
)
from envsteward.backup.prune import (
    REASON_NOT_IN_CATALOG,
    catalog_policies,
    execute_prune,
    plan_prune,
)
from envsteward.backup.replica import (
    read_replica_record,
    replica_state,
    replicate_backup,
    verify_replica,
)
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.stores import BackupStores, backup_stores
from envsteward.errors import ConflictError, IntegrityError, NotFoundError
from envsteward.retention import DEFAULT_POLICY, REASON_NEWEST, REASON_NEWEST_DRILL_VERIFIED, RetentionPolicy
from envsteward.services import Services
from tests.fixtures.aws import DR_REGION
from tests.integration.test_backup_runner import Setup, audit_actions, environment, write_catalog

NOW = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["filesystem", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Setup:
    result = Setup(tmp_path=tmp_path, store=store_kind, aws=request.getfixturevalue("aws_settings"))
    if store_kind == "s3":
        result.buckets = request.getfixturevalue("s3_buckets")
    return result


def config_catalog(tmp_path: Path, replica: bool = True) -> Path:
    target: dict[str, Any] = {"name": "cfg", "kind": "config"}
    if replica:
        target["replica_region"] = DR_REGION
    return write_catalog(tmp_path / "catalog", [environment("dev", [target])])


def backed_up(services: Services) -> str:
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    return result.backup.backup_id


def flip_byte(store: Any, key: str, offset: int = -40) -> None:
    data = bytearray(store.get_bytes(key))
    data[offset] ^= 0x01
    store.put_bytes(key, bytes(data))


# ---------------------------------------------------------------------------------------------------------
# replica
# ---------------------------------------------------------------------------------------------------------


def test_replica_is_verified_and_its_lag_recorded(setup: Setup, tmp_path: Path) -> None:
    services = setup.services(config_catalog(tmp_path))
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.replica is not None
    replica = result.replica
    stores = backup_stores(services)
    assert replica.region == DR_REGION
    if setup.store == "s3":
        assert setup.buckets is not None
        assert replica.method == "s3-copy"
        assert replica.destination == f"s3://{setup.buckets.dr}/"
        assert replica.verified_by == "s3-checksum", "small objects have a whole-object SHA-256"
    else:
        assert replica.method == "stream-copy"
        assert replica.verified_by == "read-back"
        assert replica.destination.endswith("objects-dr")
    assert (
        replica.sha256
        == json.loads(stores.primary.get_bytes(manifest_object_key(replica.backup_id)))["sha256"][
            "ciphertext"
        ]
    )
    assert 0 <= replica.lag_seconds < 60
    record = read_replica_record(stores.primary, replica.backup_id)
    assert record is not None
    assert record["lag_seconds"] == replica.lag_seconds
    assert record["status"] == "ok"
    replicated = [r for r in services.audit_log().records() if r.action == "backup.replicated"]
    assert len(replicated) == 1
    assert replicated[0].details["lag_seconds"] == replica.lag_seconds
    assert result.as_json()["replication_lag_seconds"] == replica.lag_seconds

    assert stores.dr is not None
    assert verify_replica(stores.primary, stores.dr, replica.backup_id) == replica.verified_by
    assert replica_state(stores.dr, services_manifest(stores, replica.backup_id)) == "ok"
    # replicating again is a no-op that checks the copy again
    again = replicate_backup(stores.primary, stores.dr, replica.backup_id, dr_region=DR_REGION)
    assert again.method == "already-replicated"


def services_manifest(stores: BackupStores, backup_id: str) -> Any:
    from envsteward.backup import read_manifest

    return read_manifest(stores.primary, backup_id)


def test_a_corrupted_replica_is_detected(setup: Setup, tmp_path: Path) -> None:
    services = setup.services(config_catalog(tmp_path))
    backup_id = backed_up(services)
    stores = backup_stores(services)
    assert stores.dr is not None
    flip_byte(stores.dr, data_object_key(backup_id))
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        verify_replica(stores.primary, stores.dr, backup_id)
    with pytest.raises(IntegrityError):
        replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)

    stores.dr.delete(data_object_key(backup_id))
    with pytest.raises(IntegrityError, match="manifest but no data object"):
        verify_replica(stores.primary, stores.dr, backup_id)
    assert replica_state(stores.dr, services_manifest(stores, backup_id)) == "incomplete"

    stores.dr.delete(manifest_object_key(backup_id))
    with pytest.raises(NotFoundError, match="no complete replica"):
        verify_replica(stores.primary, stores.dr, backup_id)
    assert replica_state(stores.dr, services_manifest(stores, backup_id)) == "missing"


def test_a_damaged_primary_is_not_replicated(setup: Setup, tmp_path: Path) -> None:
    services = setup.services(config_catalog(tmp_path, replica=False))
    backup_id = backed_up(services)
    stores = backup_stores(services)
    assert stores.dr is not None
    flip_byte(stores.primary, data_object_key(backup_id))
    with pytest.raises(IntegrityError):
        replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)
    assert stores.dr.head(data_object_key(backup_id)) is None, "the bad copy was left in the DR store"
    assert stores.dr.head(manifest_object_key(backup_id)) is None


def test_a_different_manifest_in_dr_is_never_overwritten(setup: Setup, tmp_path: Path) -> None:
    services = setup.services(config_catalog(tmp_path, replica=False))
    backup_id = backed_up(services)
    stores = backup_stores(services)
    assert stores.dr is not None
    stores.dr.put_bytes(manifest_object_key(backup_id), b"{}")
    with pytest.raises(ConflictError, match="different manifest"):
        replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)
    assert stores.dr.get_bytes(manifest_object_key(backup_id)) == b"{}"


# ---------------------------------------------------------------------------------------------------------
# drill marks
# ---------------------------------------------------------------------------------------------------------


def test_drill_marks_round_trip(setup: Setup, tmp_path: Path) -> None:
    services = setup.services(config_catalog(tmp_path))
    backup_id = backed_up(services)
    stores = backup_stores(services)
    assert read_drill_mark(stores.primary, backup_id) is None
    assert not is_verified_by_drill(stores.primary, stores.dr, backup_id=backup_id)
    mark = mark_verified_by_drill(stores.dr, backup_id, "drill-0412", NOW)  # type: ignore[arg-type]
    assert read_drill_mark(stores.dr, backup_id) == mark  # type: ignore[arg-type]
    assert is_verified_by_drill(stores.primary, stores.dr, backup_id=backup_id)
    with pytest.raises(NotFoundError):
        mark_verified_by_drill(stores.primary, "dev/cfg/nope", "drill", NOW)


# ---------------------------------------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------------------------------------


def seed(
    stores: BackupStores, keys: LocalKeyProvider, environment_name: str, target: str, at: datetime
) -> str:
    """A tiny real backup of ``target`` taken at ``at``, in the primary store."""
    backup_id = new_backup_id(environment_name, target, now=at)
    write_backup(
        stores.primary,
        keys,
        backup_id,
        [b"row " + at.isoformat().encode()],
        environment=environment_name,
        source=BackupSourceInfo(kind="config", name=target),
        started_at=at,
        consistent_at=at,
        extra={"key_provider": "local"},
        now=lambda: at,
    )
    return backup_id


@pytest.fixture
def seeded(setup: Setup, tmp_path: Path) -> tuple[Services, BackupStores, list[str]]:
    """Seven daily backups of dev/cfg: the two oldest in BOTH regions, the newest in DR only (primary lost),
    the others in the primary only. Ids oldest first."""
    services = setup.services(config_catalog(tmp_path))
    stores = backup_stores(services)
    assert stores.dr is not None
    keys = LocalKeyProvider(tmp_path / "home" / "keys" / "backup.key")
    ids = [seed(stores, keys, "dev", "cfg", NOW - timedelta(days=day)) for day in range(6, -1, -1)]
    for backup_id in ids[:2] + ids[-1:]:
        replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)
    from envsteward.backup.prune import remove_backup

    remove_backup(stores.primary, ids[-1])
    return services, stores, ids


def present(stores: BackupStores, backup_id: str) -> tuple[bool, bool]:
    assert stores.dr is not None
    key = manifest_object_key(backup_id)
    return stores.primary.head(key) is not None, stores.dr.head(key) is not None


def test_prune_in_both_regions_keeps_the_newest_and_the_newest_drill_verified(
    seeded: tuple[Services, BackupStores, list[str]],
) -> None:
    services, stores, ids = seeded
    assert stores.dr is not None
    mark_verified_by_drill(stores.dr, ids[0], "drill-1", NOW)  # the OLDEST one, verified in DR
    policy = RetentionPolicy(last=2)
    plan = plan_prune(stores, {("dev", "cfg"): policy}, NOW)

    (group,) = plan.groups
    kept = {item.backup_id: item for item in group.keep}
    assert set(kept) == {ids[-1], ids[-2], ids[0]}
    assert REASON_NEWEST in kept[ids[-1]].reasons
    assert kept[ids[-1]].regions == ("dr",)
    assert REASON_NEWEST_DRILL_VERIFIED in kept[ids[0]].reasons
    removed = {item.backup_id: item.regions for item in group.remove}
    assert removed == {
        ids[1]: ("primary", "dr"),
        ids[2]: ("primary",),
        ids[3]: ("primary",),
        ids[4]: ("primary",),
    }
    text = "\n".join(plan.render_text())
    assert f"REMOVE {ids[1]}  (primary, dr)" in text

    result = execute_prune(plan, stores, services.audit_log())
    assert result.ok
    assert set(result.removed) == set(removed)
    for backup_id in removed:
        assert present(stores, backup_id) == (False, False)
        assert [info.key for info in stores.primary.list(backup_id + "/")] == []
        assert [info.key for info in stores.dr.list(backup_id + "/")] == []
    assert present(stores, ids[0]) == (True, True)
    assert present(stores, ids[-1]) == (False, True)
    assert present(stores, ids[-2]) == (True, False)
    pruned = [r for r in services.audit_log().records() if r.action == "backup.pruned"]
    assert sorted(r.target for r in pruned) == sorted(removed)
    assert {tuple(r.details["regions"]) for r in pruned} == {("primary", "dr"), ("primary",)}

    again = plan_prune(stores, {("dev", "cfg"): policy}, NOW)
    assert again.to_remove == [], "prune is idempotent"


def test_an_empty_policy_deletes_nothing(seeded: tuple[Services, BackupStores, list[str]]) -> None:
    services, stores, ids = seeded
    plan = plan_prune(stores, {("dev", "cfg"): RetentionPolicy()}, NOW)
    assert plan.to_remove == []
    result = execute_prune(plan, stores, services.audit_log())
    assert result.removed == ()
    assert all(any(present(stores, backup_id)) for backup_id in ids)
    assert "backup.pruned" not in audit_actions(services)


def test_targets_missing_from_the_catalog_are_kept_and_the_default_policy_applies(
    seeded: tuple[Services, BackupStores, list[str]], tmp_path: Path
) -> None:
    services, stores, _ids = seeded
    keys = LocalKeyProvider(tmp_path / "home" / "keys" / "backup.key")
    orphans = [seed(stores, keys, "dev", "gone", NOW - timedelta(days=day * 40)) for day in range(5)]
    plan = plan_prune(stores, catalog_policies(services.catalog()), NOW)
    groups = {group.target: group for group in plan.groups}
    assert groups["gone"].remove == ()
    assert {item.backup_id for item in groups["gone"].keep} == set(orphans)
    assert all(item.reasons == (REASON_NOT_IN_CATALOG,) for item in groups["gone"].keep)
    assert groups["cfg"].policy == DEFAULT_POLICY.describe()
    assert groups["cfg"].remove == (), "7 daily backups are all inside 'keep 7 daily'"


def test_damaged_manifest_stops_the_plan_before_anything_is_removed(
    seeded: tuple[Services, BackupStores, list[str]],
) -> None:
    _services, stores, ids = seeded
    stores.primary.put_bytes(manifest_object_key(ids[2]), b"not json")
    with pytest.raises(IntegrityError, match="not a valid backup manifest"):
        plan_prune(stores, {("dev", "cfg"): RetentionPolicy(last=1)}, NOW)
    assert present(stores, ids[3]) == (True, False)


# ---------------------------------------------------------------------------------------------------------
# multipart objects on S3 (composite checksums)
# ---------------------------------------------------------------------------------------------------------


def big_backup(stores: BackupStores, keys: LocalKeyProvider, size: int = 9 * 1024 * 1024) -> str:
    """A backup whose data object is above the S3 adapter's multipart threshold (random: incompressible)."""
    import os

    backup_id = new_backup_id("dev", "cfg", now=NOW)
    write_backup(
        stores.primary,
        keys,
        backup_id,
        (os.urandom(1 << 20) for _ in range(size >> 20)),
        environment="dev",
        source=BackupSourceInfo(kind="config", name="cfg"),
        started_at=NOW,
        consistent_at=NOW,
        extra={"key_provider": "local"},
        now=lambda: NOW,
    )
    return backup_id


@pytest.mark.parametrize("store_kind", ["s3"], indirect=True)
def test_multipart_backups_replicate_and_verify_in_both_regions(setup: Setup, tmp_path: Path) -> None:
    from envsteward.adapters.aws import DEFAULT_PART_SIZE
    from envsteward.backup.replica import check_data_copy

    services = setup.services(config_catalog(tmp_path))
    stores = backup_stores(services)
    assert stores.dr is not None
    keys = LocalKeyProvider(tmp_path / "home" / "keys" / "backup.key")
    backup_id = big_backup(stores, keys)
    manifest = services_manifest(stores, backup_id)
    assert manifest.sizes.ciphertext > DEFAULT_PART_SIZE
    primary_head = stores.primary.head(data_object_key(backup_id))
    assert primary_head is not None
    assert primary_head.etag is not None
    assert primary_head.etag.endswith("-2"), "the primary copy is a multipart object"
    assert stores.primary.checksum(data_object_key(backup_id)).composite  # type: ignore[attr-defined]

    result = replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)
    assert result.method == "s3-copy"
    # each region's copy is checked against the manifest's own SHA-256: S3's whole-object checksum where it
    # has one (the copy), else read back (the composite primary)
    assert check_data_copy(stores.dr, manifest) == result.verified_by
    assert check_data_copy(stores.primary, manifest) == "read-back"
    assert verify_replica(stores.primary, stores.dr, backup_id) == result.verified_by
    assert replica_state(stores.dr, manifest) == "ok"

    # a replica rewritten as a (composite) multipart object with one byte changed is caught by reading back
    data = bytearray(stores.primary.get_bytes(data_object_key(backup_id)))
    data[-40] ^= 0x01
    stores.dr.put_stream(data_object_key(backup_id), iter([bytes(data)]))
    assert stores.dr.checksum(data_object_key(backup_id)).composite  # type: ignore[attr-defined]
    assert replica_state(stores.dr, manifest) == "ok", "the cheap look cannot see content changes"
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        verify_replica(stores.primary, stores.dr, backup_id)


@pytest.mark.parametrize("store_kind", ["s3"], indirect=True)
def test_runner_replicates_a_multipart_backup(setup: Setup, tmp_path: Path) -> None:
    """The reported failure: every backup of 8 MiB or more failed replication on S3."""
    import os

    blob = tmp_path / "big.db"
    import sqlite3

    conn = sqlite3.connect(blob)
    with conn:
        conn.execute("CREATE TABLE t (b BLOB)")
        for _ in range(10):
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(1 << 20),))
    conn.close()
    catalog = write_catalog(
        tmp_path / "catalog",
        [
            environment(
                "dev", [{"name": "db", "kind": "sqlite", "path": str(blob), "replica_region": DR_REGION}]
            )
        ],
    )
    services = setup.services(catalog)
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    assert result.backup.stored_bytes > 8 * 1024 * 1024
    assert result.replica_status == "ok"
