"""Keyed fingerprints: stable, keyed, type-distinct, never a plain hash; key loading from env or file."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretBytes, SecretStr

from envsteward.errors import ConfigurationError
from envsteward.fingerprint import Fingerprinter, canonical_bytes, load_fingerprinter
from envsteward.settings import Settings

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SEEDED_SECRET = "fp-SEEDED-secret-91b2"
ENV_NAME = "ENVSTEWARD_TEST_FINGERPRINT_KEY"


def test_format() -> None:
    value = Fingerprinter(KEY).fingerprint("hello")
    assert value.startswith("hmac-sha256:")
    digits = value.removeprefix("hmac-sha256:")
    assert len(digits) == 16
    int(digits, 16)


def test_stable_for_the_same_key() -> None:
    assert Fingerprinter(KEY).fingerprint("hello") == Fingerprinter(bytes(KEY)).fingerprint("hello")
    # A known-answer value pins the canonical form: changing it would break parity across versions.
    assert Fingerprinter(KEY).fingerprint("hello") == "hmac-sha256:" + _hmac(KEY, b"str\0hello")[:16]


def _hmac(key: bytes, data: bytes) -> str:
    import hmac

    return hmac.new(key, data, hashlib.sha256).hexdigest()


def test_keyed() -> None:
    assert Fingerprinter(KEY).fingerprint("hello") != Fingerprinter(OTHER_KEY).fingerprint("hello")


def test_not_a_plain_hash() -> None:
    value = Fingerprinter(KEY).fingerprint(SEEDED_SECRET)
    digits = value.removeprefix("hmac-sha256:")
    for plain in (
        hashlib.sha256(SEEDED_SECRET.encode()).hexdigest(),
        hashlib.sha256(b"str\0" + SEEDED_SECRET.encode()).hexdigest(),
        hashlib.sha1(SEEDED_SECRET.encode()).hexdigest(),  # noqa: S324
        hashlib.md5(SEEDED_SECRET.encode()).hexdigest(),  # noqa: S324
    ):
        assert not plain.startswith(digits)
    assert SEEDED_SECRET not in value


def test_type_distinct() -> None:
    fp = Fingerprinter(KEY)
    values = [1, "1", True, 1.0, None, "null", "true", [1], {"1": 1}, b"1", "", [], {}]
    fingerprints = [fp.fingerprint(value) for value in values]
    assert len(set(fingerprints)) == len(values)


def test_secret_wrappers_fingerprint_as_their_value() -> None:
    fp = Fingerprinter(KEY)
    assert fp.fingerprint(SecretStr(SEEDED_SECRET)) == fp.fingerprint(SEEDED_SECRET)
    assert fp.fingerprint(SecretBytes(b"abc")) == fp.fingerprint(b"abc")


def test_objects_are_canonical() -> None:
    fp = Fingerprinter(KEY)
    assert fp.fingerprint({"a": 1, "b": [1, 2]}) == fp.fingerprint({"b": [1, 2], "a": 1})
    assert fp.fingerprint((1, 2)) == fp.fingerprint([1, 2])
    assert fp.fingerprint({"a": 1}) != fp.fingerprint({"a": "1"})


def test_matches() -> None:
    fp = Fingerprinter(KEY)
    assert fp.matches("x", fp.fingerprint("x"))
    assert not fp.matches("y", fp.fingerprint("x"))


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), {"a": float("inf")}])
def test_unsupported_values(value: object) -> None:
    with pytest.raises(TypeError, match="fingerprint"):
        Fingerprinter(KEY).fingerprint(value)


def test_canonical_bytes_tags() -> None:
    assert canonical_bytes(True) == b"bool\0true"
    assert canonical_bytes(7) == b"int\x007"
    assert canonical_bytes(None) == b"null\0null"
    assert canonical_bytes({"b": 1, "a": "é"}) == b"object\0" + '{"a":"é","b":1}'.encode()


def test_repr_hides_the_key() -> None:
    text = repr(Fingerprinter(KEY))
    assert KEY.hex() not in text
    assert "redacted" in text


def test_short_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        Fingerprinter(b"short")


# -- loading the key ---------------------------------------------------------------------------------------


def _settings(home: Path) -> Settings:
    return Settings(home=home, fingerprint_key_env=ENV_NAME)


def test_key_from_env_hex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, KEY.hex())
    fp = load_fingerprinter(_settings(tmp_path))
    assert fp.fingerprint("x") == Fingerprinter(KEY).fingerprint("x")
    assert not (tmp_path / "keys").exists()


def test_key_from_env_base64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, base64.b64encode(KEY).decode())
    assert load_fingerprinter(_settings(tmp_path)).fingerprint("x") == Fingerprinter(KEY).fingerprint("x")


@pytest.mark.parametrize(
    ("value", "match"), [("not a key!", "neither hex nor base64"), ("abcd", "at least 16")]
)
def test_bad_env_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, match: str) -> None:
    monkeypatch.setenv(ENV_NAME, value)
    with pytest.raises(ConfigurationError, match=match) as caught:
        load_fingerprinter(_settings(tmp_path))
    assert ENV_NAME in str(caught.value)
    assert value not in str(caught.value)


def test_key_file_created_with_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    first = load_fingerprinter(_settings(tmp_path)).fingerprint("x")
    key_file = tmp_path / "keys" / "fingerprint.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert load_fingerprinter(_settings(tmp_path)).fingerprint("x") == first


def test_group_readable_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    load_fingerprinter(_settings(tmp_path))
    key_file = tmp_path / "keys" / "fingerprint.key"
    key_file.chmod(0o640)
    with pytest.raises(ConfigurationError, match=r"readable by group or others \(mode 0640\).*chmod 600"):
        load_fingerprinter(_settings(tmp_path))


def test_corrupt_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    key_file = tmp_path / "keys" / "fingerprint.key"
    key_file.parent.mkdir()
    key_file.write_text("")
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match=r"key file .*fingerprint.key is empty"):
        load_fingerprinter(_settings(tmp_path))


def test_env_key_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_NAME, raising=False)
    from_file = load_fingerprinter(_settings(tmp_path)).fingerprint("x")
    monkeypatch.setenv(ENV_NAME, KEY.hex())
    from_env = load_fingerprinter(_settings(tmp_path)).fingerprint("x")
    assert from_env != from_file
    assert from_env == Fingerprinter(KEY).fingerprint("x")


_CHILD = """
import sys
from pathlib import Path
from envsteward.fingerprint import load_fingerprinter
from envsteward.settings import Settings
settings = Settings(home=Path(sys.argv[1]), fingerprint_key_env="ENVSTEWARD_TEST_FINGERPRINT_KEY")
print(load_fingerprinter(settings).fingerprint({"password": "same", "port": 5432}))
"""


def test_same_fingerprint_across_processes(tmp_path: Path) -> None:
    """Several processes race to create the key file; all end up with one key and one fingerprint."""
    env = {k: v for k, v in os.environ.items() if k != ENV_NAME}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(outputs) == 1
    (value,) = outputs
    assert value.startswith("hmac-sha256:")
    assert list((tmp_path / "keys").iterdir()) == [tmp_path / "keys" / "fingerprint.key"]
