"""LocalKeyProvider: key file creation and mode, wrap/unwrap round trip, wrong key, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from envsteward.adapters.local_keys import (
    ImportedKey,
    LocalKeyProvider,
    export_key,
    export_marker,
    export_record,
    import_key,
    open_export,
    record_export,
)
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
from envsteward.ports import KeyProvider


def test_creates_key_file_0600_on_first_use(tmp_path: Path) -> None:
    key_file = tmp_path / "home" / "keys" / "backup.key"
    provider = LocalKeyProvider(key_file)
    assert isinstance(provider, KeyProvider)
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    kek = bytes.fromhex(key_file.read_text().strip())
    assert len(kek) == 32
    expected_id = "local:" + hashlib.sha256(b"envsteward-local-kek-id\0" + kek).hexdigest()[:16]
    assert provider.key_id == expected_id
    # The same file gives the same key id in another instance.
    assert LocalKeyProvider(key_file).key_id == provider.key_id
    assert kek.hex() not in repr(provider)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_round_trip(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "k.key")
    data_key = provider.generate_data_key()
    assert len(data_key.plaintext) == 32
    assert data_key.key_id == provider.key_id
    assert data_key.plaintext not in data_key.wrapped
    assert "plaintext=<redacted>" in repr(data_key)
    assert provider.unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext
    # Fresh keys and fresh nonces every time.
    other = provider.generate_data_key()
    assert other.plaintext != data_key.plaintext
    assert other.wrapped != data_key.wrapped
    # A new instance (a restore on another day) unwraps it too.
    assert (
        LocalKeyProvider(tmp_path / "k.key").unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext
    )


def test_wrong_key_is_integrity_error(tmp_path: Path) -> None:
    mine = LocalKeyProvider(tmp_path / "mine.key")
    theirs = LocalKeyProvider(tmp_path / "theirs.key")
    assert mine.key_id != theirs.key_id
    data_key = theirs.generate_data_key()
    with pytest.raises(IntegrityError, match="restore the key file") as caught:
        mine.unwrap(data_key.wrapped, data_key.key_id)
    assert not caught.value.transient
    # Even when told its own key id, a key wrapped under another KEK fails authentication.
    with pytest.raises(IntegrityError, match="failed authentication"):
        mine.unwrap(data_key.wrapped, mine.key_id)


@pytest.mark.parametrize("position", [0, 5, 10, 20, -1])
def test_tampered_or_truncated_wrapped_key_is_integrity_error(tmp_path: Path, position: int) -> None:
    provider = LocalKeyProvider(tmp_path / "k.key")
    wrapped = bytearray(provider.generate_data_key().wrapped)
    wrapped[position] ^= 0x01
    with pytest.raises(IntegrityError):
        provider.unwrap(bytes(wrapped), provider.key_id)
    with pytest.raises(IntegrityError, match="malformed or truncated"):
        provider.unwrap(bytes(wrapped[:20]), provider.key_id)


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    LocalKeyProvider(key_file)
    key_file.chmod(0o644)
    with pytest.raises(
        ConfigurationError, match=r"readable by group or others \(mode 0644\); run: chmod 600"
    ) as caught:
        LocalKeyProvider(key_file)
    assert key_file.read_text().strip() not in str(caught.value)
    key_file.chmod(0o640)
    with pytest.raises(ConfigurationError):
        LocalKeyProvider(key_file)
    key_file.chmod(0o600)
    LocalKeyProvider(key_file)


def test_malformed_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    key_file.write_text("not hex at all\n")
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="64 hex digits"):
        LocalKeyProvider(key_file)
    key_file.write_text("ab" * 16 + "\n")  # 16 bytes: too short
    with pytest.raises(ConfigurationError, match="64 hex digits"):
        LocalKeyProvider(key_file)


def _create(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(LocalKeyProvider(Path(path)).key_id)


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # not fork: the session may run threads
    out = ctx.Queue()
    key_file = tmp_path / "race" / "k.key"
    procs = [ctx.Process(target=_create, args=(str(key_file), out)) for _ in range(5)]
    for proc in procs:
        proc.start()
    ids = {out.get(timeout=20) for _ in procs}
    for proc in procs:
        proc.join(timeout=20)
    assert ids == {LocalKeyProvider(key_file).key_id}


def test_key_file_creation_leaves_only_the_key_file(tmp_path: Path) -> None:
    LocalKeyProvider(tmp_path / "keys" / "k.key")
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["k.key"]
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_unusable_key_file_paths_are_clear_errors(tmp_path: Path) -> None:
    folder = tmp_path / "k.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(
        ConfigurationError, match=r"local-keys: load key: cannot read key file .*k\.key: not a regular file"
    ):
        LocalKeyProvider(folder)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(
        ConfigurationError, match=r"cannot read key file .*not-a-folder/k\.key: Not a directory"
    ):
        LocalKeyProvider(blocker / "k.key")
    assert {p.name for p in tmp_path.iterdir()} == {"k.key", "not-a-folder"}  # no temp file left behind


# ---------------------------------------------------------------------------------------------------------
# export / import
# ---------------------------------------------------------------------------------------------------------

PASSPHRASE = SecretStr("a long enough passphrase 1e9c")


def test_export_then_import_into_an_empty_home_gives_the_same_key(tmp_path: Path) -> None:
    original = LocalKeyProvider(tmp_path / "a" / "backup.key")
    data_key = original.generate_data_key()
    text = export_key(original.key_file, PASSPHRASE)
    kek_hex = original.key_file.read_text().strip()
    assert kek_hex not in text
    assert kek_hex.upper() not in text
    assert json.loads(text)["key_id"] == original.key_id

    target = tmp_path / "b" / "keys" / "backup.key"
    result = import_key(target, text, PASSPHRASE)
    assert result == ImportedKey(key_id=original.key_id, installed=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    restored = LocalKeyProvider(target, create=False)
    assert restored.unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext
    assert export_record(target) is not None
    assert import_key(target, text, PASSPHRASE).installed is False
    # two exports of the same key differ (fresh salt and nonce) and both open
    assert export_key(original.key_file, PASSPHRASE) != text


def test_wrong_passphrase_and_every_altered_field_give_one_error(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "backup.key")
    text = export_key(provider.key_file, PASSPHRASE)
    target = tmp_path / "other" / "backup.key"
    with pytest.raises(IntegrityError, match="wrong passphrase, or the file was altered"):
        import_key(target, text, SecretStr("a long enough passphrase 1e9d"), source="k.json")
    document = json.loads(text)
    for path, value in [
        (("key_id",), "local:ffffffffffffffff"),
        (("created_at",), "2001-01-01T00:00:00+00:00"),
        (("kdf", "n"), 2**16),
        (("kdf", "salt"), base64.b64encode(b"\1" * 16).decode()),
        (("cipher", "nonce"), base64.b64encode(b"\2" * 12).decode()),
        (("ciphertext",), base64.b64encode(b"\3" * 48).decode()),
    ]:
        altered = json.loads(json.dumps(document))
        holder = altered
        for name in path[:-1]:
            holder = holder[name]
        holder[path[-1]] = value
        with pytest.raises(IntegrityError, match="wrong passphrase, or the file was altered"):
            open_export(json.dumps(altered), PASSPHRASE)
    assert not target.exists()


def test_hostile_or_malformed_exports_are_refused_before_any_work(tmp_path: Path) -> None:
    text = export_key(LocalKeyProvider(tmp_path / "backup.key").key_file, PASSPHRASE)
    document = json.loads(text)
    huge = json.loads(text)
    huge["kdf"]["n"] = 2**30  # 128 GiB of scrypt memory
    with pytest.raises(IntegrityError, match="out of bounds"):
        open_export(json.dumps(huge), PASSPHRASE, source="k.json")
    for broken, words in [
        ("[]", "'format'"),
        ("nope", "not JSON"),
        (json.dumps({**document, "ciphertext": "***"}), "not base64"),
        (json.dumps({**document, "kdf": "scrypt"}), "'kdf'"),
    ]:
        with pytest.raises(IntegrityError, match=words):
            open_export(broken, PASSPHRASE, source="k.json")
    with pytest.raises(ConfigurationError, match="version 99 key export"):
        open_export(json.dumps({**document, "version": 99}), PASSPHRASE)


def test_import_refuses_a_different_key_naming_both(tmp_path: Path) -> None:
    exported = LocalKeyProvider(tmp_path / "old.key")
    text = export_key(exported.key_file, PASSPHRASE)
    present = LocalKeyProvider(tmp_path / "keys" / "backup.key")
    before = present.key_file.read_bytes()
    with pytest.raises(ConflictError) as caught:
        import_key(present.key_file, text, PASSPHRASE)
    assert exported.key_id in str(caught.value)
    assert present.key_id in str(caught.value)
    assert present.key_file.read_bytes() == before
    assert export_record(present.key_file) is None


def test_a_short_passphrase_or_a_missing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least 12 characters"):
        export_key(LocalKeyProvider(tmp_path / "backup.key").key_file, SecretStr("short"))
    with pytest.raises(ConfigurationError, match="no local backup key at"):
        export_key(tmp_path / "missing.key", PASSPHRASE)
    assert not (tmp_path / "missing.key").exists()


def test_the_export_record_follows_the_key_and_holds_no_key(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "backup.key")
    assert export_record(provider.key_file) is None
    marker = record_export(provider.key_file, provider.key_id)
    assert marker == export_marker(provider.key_file)
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert provider.key_file.read_text().strip() not in marker.read_text()
    record = export_record(provider.key_file)
    assert record is not None
    assert record["key_id"] == provider.key_id
    assert record["how"] == "export"
    provider.key_file.unlink()
    LocalKeyProvider(provider.key_file)  # a new key: the record is of another key
    assert export_record(provider.key_file) is None
