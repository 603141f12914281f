"""The archive-ahead's catalog section (defaults, errors naming file and field), the console script's
``wal push`` argument parsing, and the spool records (a ``.ok`` proves only the exact file pushed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from envsteward.catalog import CatalogError, load_catalog
from envsteward.catalog.models import ArchiveAheadSpec
from envsteward.cli.entry import _push_arguments
from envsteward.pitr import push_ahead
from tests.unit.pitr.test_slot_watch import catalog_with


def test_catalog_archive_ahead_defaults_on_and_overrides(tmp_path: Path) -> None:
    plain = load_catalog(catalog_with(tmp_path / "a", "        pitr: {enabled: true}\n"))
    spec = plain.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert spec.pitr.archive_ahead == ArchiveAheadSpec(enabled=True, workers=2, max_ahead=64)
    off = load_catalog(
        catalog_with(
            tmp_path / "b",
            "        pitr:\n          enabled: true\n          archive_ahead: {enabled: false, workers: 4}\n",
        )
    )
    spec = off.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert (spec.pitr.archive_ahead.enabled, spec.pitr.archive_ahead.workers) == (False, 4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{workers: 0}", "workers"),
        ("{workers: 64}", "workers"),
        ("{max_ahead: 0}", "max_ahead"),
        ("{enabled: maybe}", "enabled"),
        ("{enable: true}", "unknown field 'enable'"),
    ],
)
def test_bad_archive_ahead_values_name_the_file_and_field(
    tmp_path: Path, settings: str, message: str
) -> None:
    pitr = f"        pitr:\n          enabled: true\n          archive_ahead: {settings}\n"
    root = catalog_with(tmp_path, pitr)
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog(root)
    assert "environments.yaml" in str(caught.value)
    assert "archive_ahead" in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["--target", "prod/db", "pg_wal/X"], ("prod/db", Path("pg_wal/X"))),
        (["pg_wal/X", "--target=prod/db", "-v"], ("prod/db", Path("pg_wal/X"))),
        (["pg_wal/X"], None),  # no target: the full CLI reports it
        (["--target", "prod/db", "--name", "Y", "pg_wal/X"], None),  # --name: the full CLI
        (["--target", "prod/db", "a", "b"], None),
        (["--target"], None),
    ],
)
def test_the_fast_path_parses_only_plain_push_commands(argv: list[str], parsed: object) -> None:
    assert _push_arguments(argv) == parsed


def _layout(tmp_path: Path, name: str, data: bytes) -> Path:
    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    (pg_wal / "archive_status" / f"{name}.ready").touch()
    (pg_wal / push_ahead.SPOOL_NAME).mkdir()
    (pg_wal / name).write_bytes(data)
    return pg_wal


def test_an_ok_proves_only_the_same_file_for_the_same_target(tmp_path: Path) -> None:
    name, data = "000000010000000000000003", b"x" * 1000
    pg_wal = _layout(tmp_path, name, data)
    record = {
        "segment": name,
        "target": "prod/db",
        "key": "prod/db.pitr/wal/" + name,
        "regions": ["primary", "dr"],
        "status": "archived",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    ok = pg_wal / push_ahead.SPOOL_NAME / f"{name}.ok"
    ok.write_text(json.dumps(record))
    assert push_ahead.answer(name, pg_wal / name, "prod/db", wait=0) is not None
    assert push_ahead.proven(pg_wal / push_ahead.SPOOL_NAME, name, pg_wal / name, "prod/db") == record
    changes = ({"sha256": "0" * 64}, {"size": 999}, {"target": "prod/other"}, {"segment": "X"}, {"key": ""})
    for change in changes:
        ok.write_text(json.dumps({**record, **change}))
        assert push_ahead.answer(name, pg_wal / name, "prod/db", wait=0) is None, change
    ok.write_text("{")  # torn
    assert push_ahead.answer(name, pg_wal / name, "prod/db", wait=0) is None
    ok.unlink()
    # an .error is reported only while a pusher holds the lock (a dead pusher's error is stale)
    (pg_wal / push_ahead.SPOOL_NAME / f"{name}.error").write_text(json.dumps({"message": "store down"}))
    assert push_ahead.answer(name, pg_wal / name, "prod/db", wait=0) is None


def test_the_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVSTEWARD_WAL_PUSH_AHEAD", "0")
    assert push_ahead.disabled_by_environment()
    monkeypatch.setenv("ENVSTEWARD_WAL_PUSH_AHEAD", "1")
    assert not push_ahead.disabled_by_environment()


def test_the_file_identity_short_cut_falls_back_to_the_hash_when_the_file_changed(tmp_path: Path) -> None:
    name, data = "000000010000000000000004", b"y" * 4096
    pg_wal = _layout(tmp_path, name, data)
    spool, path = pg_wal / push_ahead.SPOOL_NAME, pg_wal / name
    before = push_ahead.file_identity(path)
    record = {
        "segment": name,
        "target": "prod/db",
        "key": "k",
        "regions": ["primary"],
        "status": "archived",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "stat": push_ahead.settled_identity(path, before),
    }
    assert record["stat"] == before  # unchanged during the "push"
    (spool / f"{name}.ok").write_text(json.dumps(record))
    assert push_ahead.proven(spool, name, path, "prod/db") is not None
    path.write_bytes(data)  # rewritten with the same bytes: identity differs, the hash still proves it
    assert push_ahead.file_identity(path) != before
    assert push_ahead.proven(spool, name, path, "prod/db") is not None
    path.write_bytes(b"z" + data[1:])  # other bytes: nothing proves it
    assert push_ahead.proven(spool, name, path, "prod/db") is None
    # a file that changed between the two looks gets no identity (only the hash can prove it)
    assert push_ahead.settled_identity(path, before) is None
