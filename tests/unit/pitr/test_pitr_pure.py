"""PITR's pure parts: WAL names, the prune plan (never WAL a kept base backup needs), RPO, server check."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from envsteward.backup.manifest import (
    BackupDigests,
    BackupSizes,
    BackupSourceInfo,
    CompressionInfo,
    EncryptionInfo,
    FormatInfo,
    Manifest,
    ToolVersions,
)
from envsteward.errors import ConfigurationError, IntegrityError
from envsteward.pitr.base import BaseBackupInfo, choose_base_backup
from envsteward.pitr.check import check_settings
from envsteward.pitr.retention import plan_pitr_prune
from envsteward.pitr.rpo import achieved_rpo
from envsteward.pitr.walnames import SegmentName, read_segment_header, segment_of, wal_kind, wal_object_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def base(index: int, start_wal: str) -> BaseBackupInfo:
    at = T0 + timedelta(hours=index)
    manifest = Manifest(
        backup_id=f"dev/db.pitr/2026010{index}T000000Z-00000000",
        environment="dev",
        source=BackupSourceInfo(kind="postgres-base", name="db.pitr"),
        started_at=at,
        consistent_at=at,
        completed_at=at,
        data_object=f"dev/db.pitr/2026010{index}T000000Z-00000000/data.bin",
        sizes=BackupSizes(plaintext=1, compressed=1, ciphertext=1),
        sha256=BackupDigests(plaintext="0" * 64, ciphertext="0" * 64),
        encryption=EncryptionInfo(key_id="local:x", wrapped_data_key="AA=="),
        compression=CompressionInfo(level=1),
        format=FormatInfo(version=1, chunk_size=16, chunks=1),
        tools=ToolVersions(envsteward="0", zstandard="0", libzstd="0"),
        extra={
            "pitr": {
                "start_time": at.isoformat(),
                "end_time": (at + timedelta(minutes=5)).isoformat(),
                "start_wal_file": start_wal,
                "timeline": int(start_wal[:8], 16),
            }
        },
    )
    return BaseBackupInfo.of(manifest)


def test_wal_names() -> None:
    assert wal_kind("000000010000000A000000FF") == "segment"
    assert wal_kind("00000002.history") == "history"
    assert wal_kind("000000010000000000000002.00000028.backup") == "backup"
    assert wal_kind("000000010000000000000002.partial") == "partial"
    for bad in ("../etc/passwd", "00000001000000000000000g", "RECOVERYXLOG", ""):
        with pytest.raises(ConfigurationError):
            wal_kind(bad)
    with pytest.raises(ConfigurationError):
        wal_object_key("dev/db.pitr/", "x/../y")
    name = SegmentName.parse("000000010000000100000002")
    assert name.segno() == 256 + 2
    assert name.name() == "000000010000000100000002"
    assert segment_of((1 << 32) + 2 * (16 << 20) + 5, 1) == name


def test_segment_header_checks_page_address_size_and_magic() -> None:
    size = 16 << 20
    name = "000000010000000000000003"
    header = struct.pack("<HHIQI4xQII", 0xD110, 0x0002, 1, 3 * size, 0, 42, size, 8192)
    data = header + bytes(size - len(header))
    assert read_segment_header(data, name).system_identifier == 42
    with pytest.raises(IntegrityError, match="holds another segment"):
        read_segment_header(data, "000000010000000000000004")
    with pytest.raises(IntegrityError, match="bytes"):
        read_segment_header(data[:-1], name)
    with pytest.raises(IntegrityError, match="long header"):
        read_segment_header(bytes(size), name)


def test_prune_keeps_every_wal_file_a_kept_base_backup_needs() -> None:
    bases = [
        base(1, "000000010000000000000002"),
        base(2, "000000010000000000000006"),
        base(3, "000000020000000000000009"),
    ]
    wal = [f"00000001{0:08X}{seg:08X}" for seg in range(1, 9)] + [
        "000000020000000000000008",
        "000000020000000000000009",
        "00000002.history",
        "000000010000000000000002.00000028.backup",
    ]
    plan = plan_pitr_prune(bases, 2, wal)
    assert plan.remove_base == (bases[0].backup_id,)
    assert plan.keep_wal_from == "000000010000000000000006"
    assert plan.remove_wal == (
        "000000010000000000000001",
        "000000010000000000000002",
        "000000010000000000000002.00000028.backup",
        "000000010000000000000003",
        "000000010000000000000004",
        "000000010000000000000005",
    )
    assert "00000002.history" not in plan.remove_wal


@pytest.mark.parametrize("keep", [0, -1])
def test_prune_fails_safe(keep: int) -> None:
    assert (
        plan_pitr_prune([base(1, "000000010000000000000002")], keep, ["000000010000000000000001"]).remove_wal
        == ()
    )
    assert plan_pitr_prune([], 2, ["000000010000000000000001"]).remove_wal == ()


def test_choose_base_backup_for_a_time() -> None:
    bases = [base(1, "000000010000000000000002"), base(2, "000000010000000000000006")]
    assert choose_base_backup(bases, T0 + timedelta(hours=1, minutes=30)) == bases[0]
    assert choose_base_backup(bases, None) == bases[1]
    with pytest.raises(Exception, match="earliest time"):
        choose_base_backup(bases, T0)


def test_achieved_rpo() -> None:
    rpo = achieved_rpo(T0 + timedelta(seconds=90), T0 + timedelta(seconds=30), T0, target_seconds=300)
    assert (rpo.seconds, rpo.met) == (60.0, True)
    assert achieved_rpo(T0 + timedelta(minutes=10), None, T0, 300).met is False


def test_server_check_explains_what_to_set() -> None:
    good = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": "envsteward wal push --target dev/db %p",
        "archive_timeout": "60",
    }
    assert check_settings(good, selector="dev/db", rpo_seconds=300) == []
    bad = check_settings(
        {"wal_level": "minimal", "archive_mode": "off", "archive_command": "", "archive_timeout": "0"},
        selector="dev/db",
    )
    assert [(f.setting, f.level) for f in bad] == [
        ("wal_level", "error"),
        ("archive_mode", "error"),
        ("archive_command", "error"),
        ("archive_timeout", "warning"),
    ]
    assert "wal_level = replica" in bad[0].message


def test_server_check_for_streaming_warns_about_an_unlimited_slot() -> None:
    good = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": "envsteward wal push --target dev/db %p",
        "archive_timeout": "60",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_slot_wal_keep_size": "-1",
    }
    assert check_settings(good, selector="dev/db") == []  # not streaming: the slot settings do not matter
    found = check_settings(good, selector="dev/db", streaming=True)
    assert [(f.setting, f.level) for f in found] == [("max_slot_wal_keep_size", "warning")]
    assert "until the disk is full" in found[0].message
    capped = check_settings(
        {**good, "max_slot_wal_keep_size": "10240", "max_replication_slots": "0"},
        selector="dev/db",
        streaming=True,
    )
    assert [(f.setting, f.level) for f in capped] == [("max_replication_slots", "error")]
