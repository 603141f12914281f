"""The backup manifest model: JSON round trip, validation messages, MAC, backup ids."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from envsteward.backup import (
    BackupDigests,
    BackupSizes,
    BackupSourceInfo,
    CompressionInfo,
    EncryptionInfo,
    FormatInfo,
    Manifest,
    TableChecksum,
    check_backup_id,
    data_object_key,
    manifest_object_key,
    new_backup_id,
    tool_versions,
)
from envsteward.errors import ConfigurationError, IntegrityError


def _manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "backup_id": "production/orders-db/20240101T000000Z-3fa2",
        "environment": "production",
        "source": BackupSourceInfo(kind="postgres", name="orders-db"),
        "started_at": datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
        "consistent_at": datetime(2024, 1, 1, 1, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        "completed_at": datetime(2024, 1, 1, 0, 3, tzinfo=UTC),
        "data_object": "production/orders-db/20240101T000000Z-3fa2/data.bin",
        "sizes": BackupSizes(plaintext=1000, compressed=400, ciphertext=500),
        "sha256": BackupDigests(plaintext="a" * 64, ciphertext="b" * 64),
        "encryption": EncryptionInfo(
            key_id="vault:transit/backups", key_version=3, wrapped_data_key="d3JhcHBlZA=="
        ),
        "compression": CompressionInfo(level=3),
        "format": FormatInfo(version=1, chunk_size=1 << 20, chunks=1),
        "tools": tool_versions({"pg_dump": "16.3"}),
        "tables": (TableChecksum(name="public.orders", rows=12, checksum="9f86d0", algorithm="md5"),),
        "extra": {"ticket": "OPS-1", "ratio": 0.4, "labels": ["nightly"]},
    }
    fields.update(overrides)
    return Manifest.model_validate(fields)


def test_json_round_trip_is_exact() -> None:
    manifest = _manifest().with_mac(os.urandom(32))
    text = manifest.to_json()
    again = Manifest.from_json(text)
    assert again == manifest
    assert again.to_json() == text
    assert again.signing_bytes() == manifest.signing_bytes()
    document = json.loads(text)
    assert document["consistent_at"] == "2024-01-01T00:00:05Z"  # normalised to UTC
    assert document["tables"][0] == {
        "name": "public.orders",
        "rows": 12,
        "checksum": "9f86d0",
        "algorithm": "md5",
    }
    assert document["tools"]["others"] == {"pg_dump": "16.3"}
    assert document["encryption"]["key_version"] == 3


def test_tables_are_optional() -> None:
    manifest = _manifest(tables=None)
    assert Manifest.from_json(manifest.to_json()).tables is None


def test_mac_detects_any_change() -> None:
    key = os.urandom(32)
    manifest = _manifest().with_mac(key)
    manifest.check_mac(key)
    document = json.loads(manifest.to_json())
    document["tables"][0]["rows"] = 13
    with pytest.raises(IntegrityError, match="manifest authentication failed"):
        Manifest.from_json(json.dumps(document)).check_mac(key)
    with pytest.raises(IntegrityError, match="manifest authentication failed"):
        manifest.check_mac(os.urandom(32))
    with pytest.raises(IntegrityError, match="carries no MAC"):
        _manifest().check_mac(key)


def test_invalid_json_names_the_object_and_fields_but_not_values() -> None:
    document = json.loads(_manifest().to_json())
    document["sizes"]["plaintext"] = -1
    document["sha256"]["ciphertext"] = "not-a-hash-SECRETISH"
    document["surprise"] = 1
    with pytest.raises(IntegrityError) as info:
        Manifest.from_json(json.dumps(document), origin="prod/x/manifest.json")
    message = str(info.value)
    assert "prod/x/manifest.json is not a valid backup manifest" in message
    for field in ("sizes.plaintext", "sha256.ciphertext", "surprise"):
        assert field in message
    assert "SECRETISH" not in message
    with pytest.raises(IntegrityError, match="not a valid backup manifest"):
        Manifest.from_json(b"{not json")


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        _manifest(started_at=datetime(2024, 1, 1))


def test_wrapped_key_base64() -> None:
    assert _manifest().encryption.wrapped_key_bytes() == b"wrapped"
    broken = EncryptionInfo(key_id="k", wrapped_data_key="***")
    with pytest.raises(IntegrityError, match="not valid base64"):
        broken.wrapped_key_bytes()


@pytest.mark.parametrize("good", ["a", "dev/db/20240101T000000Z-1f", "prod/orders_db/x.y=z+1"])
def test_good_backup_ids(good: str) -> None:
    assert check_backup_id(good) == good
    assert data_object_key(good) == f"{good}/data.bin"
    assert manifest_object_key(good) == f"{good}/manifest.json"


@pytest.mark.parametrize(
    "bad", ["", "/abs", "a//b", "a/", "a/../b", ".hidden", "a/.b", "sp ace", "a\\b", "x" * 201]
)
def test_bad_backup_ids(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid backup id"):
        check_backup_id(bad)


def test_new_backup_id_sorts_by_time() -> None:
    first = new_backup_id("dev", "orders-db", datetime(2024, 1, 1, tzinfo=UTC))
    second = new_backup_id("dev", "orders-db", datetime(2024, 1, 2, tzinfo=UTC))
    assert first.startswith("dev/orders-db/20240101T000000Z-")
    assert first < second
    with pytest.raises(ConfigurationError):
        new_backup_id("dev", "bad name")
