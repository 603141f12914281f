"""Backup key rotation, the pure parts: whether to rotate, the rewrapped manifest (the header's wrap kept
apart, old manifests' MACs unchanged), the versioned local key file and its migration, key references."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from envsteward.adapters.local_keys import (
    ImportedKey,
    LocalKeyProvider,
    export_key,
    import_key,
    load_key_ring,
    open_export_ring,
    parse_key_ring,
)
from envsteward.backup.rewrap import KeyRef, decide_rotation, rewrapped_manifest
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
from envsteward.inventory.backup_keys import key_reference, parse_key_reference
from envsteward.inventory.metadata import KeyState
from envsteward.ports import DataKey
from tests.unit.backup.test_manifest import _manifest

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PASSPHRASE = SecretStr("a long enough passphrase 5d1e")


# -- decide_rotation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "rotate", "target", "words"),
    [
        (KeyState("k", 1, 1, NOW - timedelta(days=100)), True, 2, "rotate to version 2"),
        (KeyState("k", 3, 3, NOW), True, 4, "rotate to version 4"),
        # a run that stopped before retiring: finish it, do not add another version
        (KeyState("k", 2, 1, NOW - timedelta(days=3)), False, 2, "finishing that rotation"),
        # ... unless that newest version is itself past the maximum age
        (KeyState("k", 2, 1, NOW - timedelta(days=95)), True, 3, "rotate to version 3"),
        (KeyState("k", 2, 1, None), False, 2, "finishing"),
        (KeyState("k", None, None, NOW, detail="AWS rotates every 365 days"), False, None, "AWS rotates"),
    ],
)
def test_decide_rotation(state: KeyState, rotate: bool, target: int | None, words: str) -> None:
    decision = decide_rotation(state, 90, NOW)
    assert decision.rotate is rotate
    assert decision.target_version == target
    assert words in decision.reason


# -- the rewrapped manifest ---------------------------------------------------------------------------------


def test_old_manifests_keep_their_mac_and_json() -> None:
    mac_key = os.urandom(32)
    manifest = _manifest().with_mac(mac_key)
    document = json.loads(manifest.to_json())
    assert set(document["encryption"]) == {"cipher", "key_id", "key_version", "wrapped_data_key"}
    assert b"header_key_id" not in manifest.signing_bytes()
    manifest.check_mac(mac_key)


def test_a_rewrapped_manifest_keeps_the_headers_wrap_and_is_maced_over_it() -> None:
    mac_key = os.urandom(32)
    original = _manifest().with_mac(mac_key)
    new = DataKey(
        plaintext=b"\0" * 32, wrapped=b"vault:v4:new", key_id="vault:transit/backups", key_version=4
    )
    rewrapped = rewrapped_manifest(original, new, mac_key, NOW)
    rewrapped.check_mac(mac_key)
    encryption = rewrapped.encryption
    assert encryption.key_version == 4
    assert encryption.wrapped_key_bytes() == b"vault:v4:new"
    assert encryption.stream_key_id() == original.encryption.key_id
    assert encryption.stream_wrapped_key_bytes() == original.encryption.wrapped_key_bytes()
    assert encryption.rewrapped_at == NOW
    # a second rewrap still points at the data object's original wrap
    newer = DataKey(
        plaintext=b"\0" * 32, wrapped=b"vault:v5:newer", key_id="vault:transit/backups", key_version=5
    )
    again = rewrapped_manifest(rewrapped, newer, mac_key, NOW)
    assert again.encryption.stream_wrapped_key_bytes() == original.encryption.wrapped_key_bytes()
    # the header fields are authenticated
    forged = again.model_copy(
        update={"encryption": again.encryption.model_copy(update={"header_key_id": "other"})}
    )
    with pytest.raises(IntegrityError, match="authentication failed"):
        forged.check_mac(mac_key)


# -- the local key file -------------------------------------------------------------------------------------


def test_a_single_key_file_reads_as_version_one_and_the_first_rotation_converts_it(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "backup.key"
    provider = LocalKeyProvider(key_file)
    legacy_text = key_file.read_text()
    assert len(legacy_text.strip()) == 64  # new files keep the single-key format until a rotation
    data_key = provider.generate_data_key()
    assert data_key.key_version == 1
    assert ":v" not in data_key.key_id
    ring = load_key_ring(key_file)
    assert ring.legacy
    assert ring.latest.created_at is not None  # the file's time

    assert provider.rotate(now=NOW) == 2
    document = json.loads(key_file.read_text())
    assert document["format"] == "envsteward-local-kek"
    assert [entry["version"] for entry in document["keys"]] == [1, 2]
    assert document["keys"][1]["created_at"] == NOW.isoformat()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert provider.key_id.endswith(":v2")
    # the old wrap still opens; new data keys use version 2
    assert provider.unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext
    fresh = provider.generate_data_key()
    assert fresh.key_version == 2
    # a provider loaded before the rotation picks the new version up
    assert LocalKeyProvider(key_file).generate_data_key().key_version == 2
    rewrapped = provider.rewrap(data_key.wrapped, data_key.key_id)
    assert rewrapped.key_version == 2
    assert rewrapped.plaintext == data_key.plaintext
    provider.retire_versions_below(2)
    with pytest.raises(IntegrityError, match="retired"):
        LocalKeyProvider(key_file, create=False).unwrap(data_key.wrapped, data_key.key_id)
    assert (
        LocalKeyProvider(key_file, create=False).unwrap(rewrapped.wrapped, rewrapped.key_id)
        == data_key.plaintext
    )
    assert legacy_text.strip() not in repr(load_key_ring(key_file))
    assert document["keys"][0]["key"] == legacy_text.strip()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"format": "other"}', "not an 'envsteward-local-kek'"),
        ('{"format": "envsteward-local-kek", "version": 3, "keys": []}', "format version 3"),
        (
            '{"format": "envsteward-local-kek", "version": 2, "keys": [{"version": 2, "key": ""}]}',
            "must be 1",
        ),
        (
            '{"format": "envsteward-local-kek", "version": 2, "keys": [{"version": 1, "key": "ab"}]}',
            "32 bytes",
        ),
        (
            '{"format": "envsteward-local-kek", "version": 2, "min_decryption_version": 2, '
            '"keys": [{"version": 1, "key": "' + "ab" * 32 + '"}]}',
            "min_decryption_version",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_versioned_key_file_is_one_clear_error(text: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as caught:
        parse_key_ring(text, "/k/backup.key")
    assert "/k/backup.key" in str(caught.value)


def test_export_and_import_round_trip_every_version(tmp_path: Path) -> None:
    source = LocalKeyProvider(tmp_path / "a" / "backup.key")
    old = source.generate_data_key()
    source.rotate(now=NOW)
    source.retire_versions_below(2)
    text = export_key(source.key_file, PASSPHRASE)
    document = json.loads(text)
    assert document["version"] == 2
    assert document["key_id"] == source.key_id
    assert len(document["key_ids"]) == 2
    for version in load_key_ring(source.key_file).versions:
        assert version.kek.hex() not in text
    assert open_export_ring(text, PASSPHRASE).min_decryption_version == 2

    target = tmp_path / "b" / "backup.key"
    assert import_key(target, text, PASSPHRASE) == ImportedKey(key_id=source.key_id, installed=True)
    assert target.read_text() == source.key_file.read_text()
    assert import_key(target, text, PASSPHRASE).installed is False
    # an older export (one version) onto the newer file: nothing to add, nothing lost
    older = tmp_path / "c" / "backup.key"
    single = LocalKeyProvider(older)
    single_text = export_key(older, PASSPHRASE)
    single.rotate(now=NOW)
    assert import_key(older, single_text, PASSPHRASE).installed is False
    assert len(load_key_ring(older).versions) == 2
    # the newer export onto a copy of the old single-key file: upgraded in place
    stale = tmp_path / "d" / "backup.key"
    stale.parent.mkdir()
    stale.write_text(load_key_ring(source.key_file).versions[0].kek.hex() + "\n")
    stale.chmod(0o600)
    assert import_key(stale, text, PASSPHRASE).installed is True
    restored = LocalKeyProvider(stale, create=False)
    assert restored.key_id == source.key_id
    with pytest.raises(IntegrityError, match="retired"):
        restored.unwrap(old.wrapped, old.key_id)
    # a different key is refused
    with pytest.raises(ConflictError):
        import_key(older, text, PASSPHRASE)


# -- key references ------------------------------------------------------------------------------------------


def test_key_references_round_trip() -> None:
    for kind, key_id in (("local", None), ("vault_transit", "backups"), ("aws_kms", "alias/x:y")):
        assert parse_key_reference(key_reference(kind, key_id)) == (kind, key_id)
    with pytest.raises(ValueError, match="not a backup key"):
        parse_key_reference("vault://secret/x#y")
    assert KeyRef("vault_transit", "b").label() == "vault_transit:b"
