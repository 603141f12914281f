"""``backup rotate-key``: rotate the KEK, rewrap every retained backup (primary and DR) without touching
the data, retire the old versions last. Real stores (local folders), the local key file, OpenBao transit
and moto KMS; a crash in the middle of the rewrap leaves every backup restorable and a re-run finishes."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.local_keys import LocalKeyProvider, load_key_ring
from envsteward.backup import data_object_key, manifest_object_key, read_manifest, restore_backup
from envsteward.backup.replica import verify_replica
from envsteward.backup.restore import key_provider_for
from envsteward.backup.rewrap import KeyRef, RotationReport, rotate_backup_keys
from envsteward.backup.stores import BackupStores, backup_stores
from envsteward.errors import IntegrityError
from envsteward.services import Services
from tests.fixtures.aws import DR_REGION, REGION
from tests.integration.test_backup_replica_prune import backed_up
from tests.integration.test_backup_runner import Setup, audit_actions, audit_text, environment, write_catalog


def make(
    tmp_path: Path, request: pytest.FixtureRequest, key: dict[str, Any], *, vault: bool = False
) -> Services:
    setup = Setup(tmp_path=tmp_path, store="filesystem", aws=request.getfixturevalue("aws_settings"))
    if vault:
        setup.vault = request.getfixturevalue("vault_settings")
    target = {"name": "cfg", "kind": "config", "replica_region": DR_REGION, **key}
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [target])], base={"app": {"n": 1}})
    return setup.services(catalog)


def restored(services: Services, store: Any, backup_id: str) -> bytes:
    manifest = read_manifest(store, backup_id)
    pieces: list[bytes] = []
    restore_backup(store, backup_id, key_provider_for(services, manifest), pieces.append)
    return b"".join(pieces)


def snapshot(stores: BackupStores) -> dict[str, bytes]:
    found = {}
    for name, store in (("primary", stores.primary), ("dr", stores.dr)):
        assert store is not None
        for info in store.list(""):
            found[f"{name}:{info.key}"] = store.get_bytes(info.key)
    return found


def rotate(services: Services, **options: Any) -> RotationReport:
    return rotate_backup_keys(services, backup_stores(services), ["dev"], **options)


# ---------------------------------------------------------------------------------------------------------
# the local key file
# ---------------------------------------------------------------------------------------------------------


def test_local_rotation_rewraps_both_regions_and_old_backups_still_restore(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    services = make(tmp_path, request, {})
    stores = backup_stores(services)
    ids = [backed_up(services) for _ in range(3)]
    before = {backup_id: restored(services, stores.primary, backup_id) for backup_id in ids}
    data_before = {k: v for k, v in snapshot(stores).items() if k.endswith("data.bin")}
    key_file = tmp_path / "home" / "keys" / "backup.key"
    old_id = LocalKeyProvider(key_file, create=False).key_id

    report = rotate(services)

    assert report.ok, report.as_json()
    (result,) = report.results
    assert result.rotated
    assert result.from_version == 1
    assert result.to_version == 2
    assert result.count("rewrapped") == 3
    assert result.retired_below == 2
    ring = load_key_ring(key_file)
    assert [v.version for v in ring.versions] == [1, 2]
    assert ring.min_decryption_version == 2
    for backup_id in ids:
        for store in (stores.primary, stores.dr):
            assert store is not None
            manifest = read_manifest(store, backup_id)
            assert manifest.encryption.key_version == 2
            assert manifest.encryption.key_id.endswith(":v2")
            assert manifest.encryption.header_key_id == old_id
            assert restored(services, store, backup_id) == before[backup_id]
        verify_replica(stores.primary, stores.dr, backup_id)  # replica manifests identical byte for byte
    # the data objects were never touched
    assert {k: v for k, v in snapshot(stores).items() if k.endswith("data.bin")} == data_before
    # version 1 is retired: a wrap made with it no longer opens
    old_wrap = read_manifest(stores.primary, ids[0]).encryption.stream_wrapped_key_bytes()
    with pytest.raises(IntegrityError, match="retired"):
        LocalKeyProvider(key_file, create=False).unwrap(old_wrap, old_id)
    # a new backup uses version 2 and restores too
    newer = backed_up(services)
    assert read_manifest(stores.primary, newer).encryption.key_version == 2
    assert restored(services, stores.primary, newer)
    actions = audit_actions(services)
    assert "backup.key_rotated" in actions
    assert "backup.rewrapped" in actions
    text = audit_text(services) + json.dumps(report.as_json())
    for version in ring.versions:
        assert version.kek.hex() not in text


def test_a_second_run_is_a_no_op_for_current_backups(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    services = make(tmp_path, request, {})
    backed_up(services)
    assert rotate(services).ok
    again = rotate(services)
    (result,) = again.results
    assert result.ok
    assert result.rotated
    assert result.to_version == 3
    assert result.count("rewrapped") == 1


def test_dry_run_changes_nothing_and_creates_no_key(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    services = make(tmp_path, request, {})
    key_file = tmp_path / "home" / "keys" / "backup.key"
    report = rotate(services, dry_run=True)
    assert not key_file.exists()
    assert "no local key yet" in report.results[0].note
    report = rotate(services)  # the real command does not create a key either
    assert not key_file.exists()
    backed_up(services)
    stores = backup_stores(services)
    before = snapshot(stores)
    key_before = key_file.read_bytes()
    report = rotate(services, dry_run=True)
    (result,) = report.results
    assert result.ok
    assert not result.rotated
    assert result.count("rewrapped") == 1
    assert snapshot(stores) == before
    assert key_file.read_bytes() == key_before
    assert "backup.key_rotated" not in audit_actions(services)


def test_a_crash_in_the_middle_leaves_every_backup_restorable_and_a_rerun_finishes(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = make(tmp_path, request, {})
    stores = backup_stores(services)
    ids = [backed_up(services) for _ in range(4)]
    before = {backup_id: restored(services, stores.primary, backup_id) for backup_id in ids}
    from envsteward.backup import rewrap

    real = rewrap._write_verified
    writes = {"n": 0}

    def crash_after_three(*args: Any, **kwargs: Any) -> None:
        if writes["n"] == 3:
            raise KeyboardInterrupt("simulated crash")  # not an EnvstewardError: stops the whole run
        writes["n"] += 1
        real(*args, **kwargs)

    monkeypatch.setattr(rewrap, "_write_verified", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        rotate(services)
    monkeypatch.setattr(rewrap, "_write_verified", real)
    key_file = tmp_path / "home" / "keys" / "backup.key"
    ring = load_key_ring(key_file)
    assert ring.latest.version == 2
    assert ring.min_decryption_version == 1
    versions = {
        (region, read_manifest(store, backup_id).encryption.key_version)
        for backup_id in ids
        for region, store in (("primary", stores.primary), ("dr", stores.dr))
    }
    assert ("primary", 2) in versions
    assert ("primary", 1) in versions or ("dr", 1) in versions  # some copies still on version 1
    for backup_id in ids:
        for store in (stores.primary, stores.dr):
            assert restored(services, store, backup_id) == before[backup_id]

    report = rotate(services)  # finishes version 2 instead of adding version 3

    (result,) = report.results
    assert result.ok, result.as_json()
    assert not result.rotated
    assert result.to_version == 2
    assert result.retired_below == 2
    assert result.count("rewrapped") >= 1
    assert result.count("current") >= 1
    for backup_id in ids:
        verify_replica(stores.primary, stores.dr, backup_id)
        for store in (stores.primary, stores.dr):
            assert read_manifest(store, backup_id).encryption.key_version == 2
            assert restored(services, store, backup_id) == before[backup_id]


def test_a_tampered_manifest_is_not_rewrapped_and_blocks_retiring(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    services = make(tmp_path, request, {})
    stores = backup_stores(services)
    good, bad = backed_up(services), backed_up(services)
    name = manifest_object_key(bad)
    document = json.loads(stores.primary.get_bytes(name))
    document["sizes"]["plaintext"] += 1
    stores.primary.put_bytes(name, json.dumps(document).encode())
    tampered = stores.primary.get_bytes(name)
    report = rotate(services)
    (result,) = report.results
    assert not report.ok
    assert result.count("failed") == 1
    assert result.retired_below is None
    assert "authentication failed" in (next(b for b in result.backups if b.backup_id == bad).error or "")
    assert stores.primary.get_bytes(name) == tampered
    assert restored(services, stores.primary, good)
    assert load_key_ring(tmp_path / "home" / "keys" / "backup.key").min_decryption_version == 1


def test_an_unfinished_backup_holds_off_retiring(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    services = make(tmp_path, request, {})
    stores = backup_stores(services)
    backed_up(services)
    stores.primary.put_bytes(data_object_key("dev/cfg/20990101T000000Z-0000"), b"partial")
    (result,) = rotate(services).results
    assert result.ok
    assert result.retired_below is None
    assert "being written" in (result.not_retired_because or "")


# ---------------------------------------------------------------------------------------------------------
# Vault transit and KMS
# ---------------------------------------------------------------------------------------------------------


def test_vault_transit_rotation_advances_min_decryption_version_only_at_the_end(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = request.getfixturevalue("vault_client")
    key = f"backups-{secrets.token_hex(4)}"
    client.transit_create_key(key)
    services = make(tmp_path, request, {"key_provider": "vault_transit", "key_id": key}, vault=True)
    stores = backup_stores(services)
    ids = [backed_up(services) for _ in range(3)]
    before = {backup_id: restored(services, stores.primary, backup_id) for backup_id in ids}
    assert read_manifest(stores.primary, ids[0]).encryption.wrapped_key_bytes().startswith(b"vault:v1:")

    from envsteward.backup import rewrap

    real = rewrap._write_verified
    seen: list[int] = []

    def watch(*args: Any, **kwargs: Any) -> None:
        seen.append(client.transit_key_info(key).min_decryption_version)
        if len(seen) == 3:
            raise RuntimeError("simulated crash")
        real(*args, **kwargs)

    monkeypatch.setattr(rewrap, "_write_verified", watch)
    with pytest.raises(RuntimeError):
        rotate(services)
    monkeypatch.setattr(rewrap, "_write_verified", real)
    info = client.transit_key_info(key)
    assert info.latest_version == 2
    assert info.min_decryption_version == 1
    assert set(seen) == {1}
    for backup_id in ids:
        for store in (stores.primary, stores.dr):
            assert restored(services, store, backup_id) == before[backup_id]

    report = rotate(services)

    (result,) = report.results
    assert result.ok, result.as_json()
    assert not result.rotated
    assert result.to_version == 2
    assert result.retired_below == 2
    assert client.transit_key_info(key).min_decryption_version == 2
    for backup_id in ids:
        verify_replica(stores.primary, stores.dr, backup_id)
        for store in (stores.primary, stores.dr):
            manifest = read_manifest(store, backup_id)
            assert manifest.encryption.wrapped_key_bytes().startswith(b"vault:v2:")
            assert restored(services, store, backup_id) == before[backup_id]
    # the header's v1 wrap no longer decrypts: the rewrapped manifest is what keeps the backup readable
    header_wrap = read_manifest(stores.primary, ids[0]).encryption.stream_wrapped_key_bytes()
    with pytest.raises(IntegrityError):
        client.transit_decrypt(key, header_wrap.decode())
    assert client.transit_key_info(key).version_created.get(2) is not None


def test_kms_keys_are_rotated_by_aws_and_nothing_is_rewritten(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key_id = request.getfixturevalue("kms_key_id")
    services = make(tmp_path, request, {"key_provider": "aws_kms", "key_id": key_id})
    stores = backup_stores(services)
    backup_id = backed_up(services)
    before = snapshot(stores)
    report = rotate(services)
    (result,) = report.results
    assert result.ok
    assert not result.rotated
    assert result.key == KeyRef("aws_kms", key_id)
    assert "AWS rotates KMS key material itself" in result.note
    assert result.count("current") == 1
    assert result.count("rewrapped") == 0
    assert snapshot(stores) == before
    assert restored(services, stores.primary, backup_id)


def test_kms_rewrap_moves_backups_to_the_targets_new_key(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clients = request.getfixturevalue("aws_clients")
    old_key = request.getfixturevalue("kms_key_id")
    new_key = str(clients.kms(REGION).create_key()["KeyMetadata"]["KeyId"])
    services = make(tmp_path, request, {"key_provider": "aws_kms", "key_id": old_key})
    stores = backup_stores(services)
    backup_id = backed_up(services)
    data = restored(services, stores.primary, backup_id)
    services = make(tmp_path, request, {"key_provider": "aws_kms", "key_id": new_key})
    # the manifest names the old key; the target now names the new one: rewrap with ReEncrypt
    manifest = read_manifest(stores.primary, backup_id)
    assert manifest.encryption.key_id == old_key
    report = rotate_backup_keys(services, stores, ["dev"])
    (result,) = report.results
    assert result.ok, result.as_json()
    for store in (stores.primary, stores.dr):
        assert read_manifest(store, backup_id).encryption.key_id == new_key
        assert restored(services, store, backup_id) == data


# ---------------------------------------------------------------------------------------------------------
# the key's age in the secret inventory
# ---------------------------------------------------------------------------------------------------------


def test_the_inventory_reports_the_backup_keys_age_and_rotation_resets_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from envsteward.inventory.model import FindingKind, ReferenceState
    from envsteward.inventory.runner import run_inventory

    services = make(tmp_path, request, {})
    key_file = tmp_path / "home" / "keys" / "backup.key"
    (inventory,) = run_inventory(services, ["dev"])
    (status,) = [s for s in inventory.statuses if s.scheme == "backup-key"]
    assert status.reference == "backup-key://local"
    assert status.state is ReferenceState.OK
    assert "no local key yet" in status.reason
    assert not key_file.exists()  # the inventory never creates a key

    backed_up(services)
    later = datetime.now(UTC) + timedelta(days=91)
    (inventory,) = run_inventory(services, ["dev"], now=later)
    (status,) = [s for s in inventory.statuses if s.scheme == "backup-key"]
    assert status.state is ReferenceState.OVERDUE
    assert status.max_age_days == 90
    assert status.version == "1"
    assert "backup rotate-key --env dev" in status.reason
    (finding,) = inventory.findings
    assert finding.kind is FindingKind.OVERDUE
    assert finding.subject == "backup-key://local"
    assert inventory.overdue() == ()  # secret rotation leaves the backup key to rotate-key

    assert rotate(services).ok
    (inventory,) = run_inventory(services, ["dev"], now=datetime.now(UTC) + timedelta(days=1))
    (status,) = [s for s in inventory.statuses if s.scheme == "backup-key"]
    assert status.state is ReferenceState.OK
    assert status.version == "2"
    assert status.age_days in (0, 1)
    assert inventory.findings == ()


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from envsteward.backup.rewrap import rotate_backup_keys
from envsteward.backup.stores import backup_stores
from envsteward.services import Services
from envsteward.settings import Settings

services = Services(Settings(catalog=Path(sys.argv[1]), home=Path(sys.argv[2]), actor="kill-test"))

def step(ref, done, total, outcome):
    if done == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

rotate_backup_keys(services, backup_stores(services), ["dev"], on_backup=step)
"""


def test_a_sigkilled_rotation_leaves_every_backup_restorable_and_a_rerun_finishes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import signal
    import subprocess
    import sys

    services = make(tmp_path, request, {})
    stores = backup_stores(services)
    ids = [backed_up(services) for _ in range(4)]
    before = {backup_id: restored(services, stores.primary, backup_id) for backup_id in ids}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(services.settings.catalog), str(tmp_path / "home"), "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ring = load_key_ring(tmp_path / "home" / "keys" / "backup.key")
    assert ring.latest.version == 2
    assert ring.min_decryption_version == 1
    versions = sorted(
        read_manifest(stores.primary, backup_id).encryption.key_version or 0 for backup_id in ids
    )
    assert versions == [1, 1, 2, 2]
    for backup_id in ids:
        for store in (stores.primary, stores.dr):
            assert restored(services, store, backup_id) == before[backup_id]

    (result,) = rotate(services).results

    assert result.ok, result.as_json()
    assert not result.rotated
    assert result.retired_below == 2
    assert result.count("rewrapped") == 2
    assert result.count("current") == 2
    for backup_id in ids:
        verify_replica(stores.primary, stores.dr, backup_id)
        for store in (stores.primary, stores.dr):
            assert restored(services, store, backup_id) == before[backup_id]
