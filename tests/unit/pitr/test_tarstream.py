"""The base backup tar reader against tar streams built here (pax format, as Python writes them), with a
``backup_manifest`` made like PostgreSQL's: what pg_verifybackup would catch, this catches."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from envsteward.errors import IntegrityError
from envsteward.pitr.tarstream import TarReader

LABEL = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n"
WAL = "000000010000000000000002"


def manifest_for(files: dict[str, bytes]) -> bytes:
    entries = [
        {
            "Path": name,
            "Size": len(data),
            "Checksum-Algorithm": "SHA256",
            "Checksum": hashlib.sha256(data).hexdigest(),
        }
        for name, data in files.items()
    ]
    body = (
        '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": '
        + json.dumps(entries)
        + ',\n"WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }],\n'
    ).encode()
    return body + f'"Manifest-Checksum": "{hashlib.sha256(body).hexdigest()}"}}\n'.encode()


def build(
    files: dict[str, bytes], *, listed: dict[str, bytes] | None = None, extra: dict[str, bytes] | None = None
) -> bytes:
    """A tar of ``files`` + pg_wal segment + backup_manifest describing ``listed`` (default: ``files``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = {**files, **(extra or {}), f"pg_wal/{WAL}": b"w" * 100}
        members["backup_manifest"] = manifest_for(listed if listed is not None else files)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


FILES = {
    "backup_label": LABEL,
    "PG_VERSION": b"15\n",
    "base/1/" + "x" * 120: b"a" * 5000,
    "global/pg_control": b"c" * 8192,
}


def read(stream: bytes, extract_to: Path | None = None, piece: int = 777) -> TarReader:
    reader = TarReader(extract_to)
    for start in range(0, len(stream), piece):
        reader.feed(stream[start : start + piece])
    return reader


def test_a_good_stream_is_checked_and_extracted(tmp_path: Path) -> None:
    summary = read(build(FILES), tmp_path / "data").close()
    assert summary.label["START TIMELINE"] == "1"
    assert summary.wal_files == {WAL: hashlib.sha256(b"w" * 100).hexdigest()}
    assert (tmp_path / "data" / "base" / "1" / ("x" * 120)).read_bytes() == b"a" * 5000  # a pax long name


def test_truncated_changed_extra_and_missing_files_fail() -> None:
    stream = build(FILES)
    with pytest.raises(IntegrityError, match="truncated"):
        read(stream[: stream.find(b'"Manifest-Checksum"')]).close()
    changed = dict(FILES, PG_VERSION=b"16\n")
    with pytest.raises(IntegrityError, match="PG_VERSION: SHA-256 differs"):
        read(build(changed, listed=FILES)).close()
    with pytest.raises(IntegrityError, match="not in backup_manifest"):
        read(build(FILES, extra={"global/extra": b"?"})).close()
    with pytest.raises(IntegrityError, match="missing from the backup"):
        read(build(FILES, listed={**FILES, "global/gone": b""})).close()
    with pytest.raises(IntegrityError, match="WAL files"):
        read(build(FILES)).close(expected_wal={WAL: "0" * 64})


def test_a_tampered_manifest_and_unsafe_paths_fail() -> None:
    stream = bytearray(build(FILES))
    index = stream.find(b'"WAL-Ranges"')
    stream[index + 30] ^= 0x01
    with pytest.raises(IntegrityError, match=r"header checksum|Manifest-Checksum|JSON"):
        read(bytes(stream)).close()
    with pytest.raises(IntegrityError, match="unsafe member path"):
        read(build({**FILES, "../escape": b"x"}))
