"""The archive-ahead's catalog section (defaults, errors naming file and field), the console script's
``wal push`` argument parsing, and the spool records (a ``.ok`` proves only the exact file pushed)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from envsteward.catalog import CatalogError, load_catalog
from envsteward.catalog.models import ArchiveAheadSpec
from envsteward.cli.entry import _push_arguments
from envsteward.pitr import push_ahead
from tests.unit.pitr.test_slot_watch import catalog_with

STAMP = "c" * 32
"""The configuration stamp the records below were pushed under (push_ahead.config_stamp)."""


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


def _ok_record(name: str, data: bytes, **fields: Any) -> dict[str, Any]:
    """A pusher's ``.ok`` record for segment ``name`` holding ``data``, archived for ``prod/db`` under
    ``STAMP``; ``fields`` replace or add entries."""
    return {
        "segment": name,
        "target": "prod/db",
        "config": STAMP,
        "key": "k",
        "regions": ["primary"],
        "status": "archived",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **fields,
    }


def test_an_ok_proves_only_the_same_file_for_the_same_target(tmp_path: Path) -> None:
    name, data = "000000010000000000000003", b"x" * 1000
    pg_wal = _layout(tmp_path, name, data)
    record = _ok_record(name, data, key="prod/db.pitr/wal/" + name, regions=["primary", "dr"])
    ok = pg_wal / push_ahead.SPOOL_NAME / f"{name}.ok"
    ok.write_text(json.dumps(record))
    assert push_ahead.answer(name, pg_wal / name, "prod/db", STAMP, wait=0) is not None
    assert push_ahead.proven(pg_wal / push_ahead.SPOOL_NAME, name, pg_wal / name, "prod/db", STAMP) == record
    changes = (
        {"sha256": "0" * 64},
        {"size": 999},
        {"target": "prod/other"},
        {"config": "d" * 32},
        {"segment": "X"},
        {"key": ""},
    )
    for change in changes:
        ok.write_text(json.dumps({**record, **change}))
        assert push_ahead.answer(name, pg_wal / name, "prod/db", STAMP, wait=0) is None, change
    ok.write_text("{")  # torn
    assert push_ahead.answer(name, pg_wal / name, "prod/db", STAMP, wait=0) is None
    ok.unlink()
    # an .error is reported only while a pusher holds the lock (a dead pusher's error is stale)
    (pg_wal / push_ahead.SPOOL_NAME / f"{name}.error").write_text(json.dumps({"message": "store down"}))
    assert push_ahead.answer(name, pg_wal / name, "prod/db", STAMP, wait=0) is None


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
    record = _ok_record(name, data, stat=push_ahead.settled_identity(path, before))
    assert record["stat"] == before  # unchanged during the "push"
    (spool / f"{name}.ok").write_text(json.dumps(record))
    assert push_ahead.proven(spool, name, path, "prod/db", STAMP) is not None
    path.write_bytes(data)  # rewritten with the same bytes: identity differs, the hash still proves it
    assert push_ahead.file_identity(path) != before
    assert push_ahead.proven(spool, name, path, "prod/db", STAMP) is not None
    path.write_bytes(b"z" + data[1:])  # other bytes: nothing proves it
    assert push_ahead.proven(spool, name, path, "prod/db", STAMP) is None
    # a file that changed between the two looks gets no identity (only the hash can prove it)
    assert push_ahead.settled_identity(path, before) is None


def test_a_file_dated_in_the_future_never_makes_the_pusher_sleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock stepped back (NTP, a VM restored): a segment written before the step has an mtime ahead
    of now. settled_identity once slept until that moment (an hour here), hanging a push worker."""
    name = "000000010000000000000005"
    pg_wal = _layout(tmp_path, name, b"w" * 100)
    path = pg_wal / name
    ahead = time.time() + 3600
    os.utime(path, (ahead, ahead))
    slept: list[float] = []
    monkeypatch.setattr(push_ahead.time, "sleep", slept.append)
    before = push_ahead.file_identity(path)
    # no identity from a time that cannot be trusted (only the SHA-256 proves the file then), no long sleep
    assert push_ahead.settled_identity(path, before) is None
    assert all(seconds <= push_ahead.RACY_SECONDS for seconds in slept), slept


def test_a_progress_mark_dated_in_the_future_counts_as_stalled(tmp_path: Path) -> None:
    """After the clock stepped back an hour, a pusher's progress mark looks an hour fresh: wal push would
    wait the whole WAIT_SECONDS for a pusher that may be hung, on every segment."""
    spool = tmp_path / push_ahead.SPOOL_NAME
    spool.mkdir()
    progress = spool / push_ahead.PROGRESS_FILE
    progress.touch()
    assert not push_ahead._stalled(spool, time.time())
    ahead = time.time() + 3600
    os.utime(progress, (ahead, ahead))
    assert push_ahead._stalled(spool, time.time())


def test_the_config_stamp_follows_the_catalog_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .ok binds the catalog and settings it was pushed under: another store, prefix or DR region makes
    it prove nothing (the stamp differs)."""
    catalog = catalog_with(tmp_path / "c", "        pitr: {enabled: true}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    environ = {"ENVSTEWARD_CATALOG": str(catalog), "ENVSTEWARD_HOME": "/x", "PATH": "/bin"}
    stamp = push_ahead.config_stamp(environ)
    assert stamp == push_ahead.config_stamp(dict(environ))
    assert stamp == push_ahead.config_stamp({**environ, "PATH": "/usr/bin"})  # not a setting
    assert stamp == push_ahead.config_stamp({**environ, "ENVSTEWARD_WAL_PUSH_AHEAD": "1"})
    for secret in ("ENVSTEWARD_SMTP_PASSWORD", "ENVSTEWARD_FINGERPRINT_KEY", "ENVSTEWARD_VAULT_TOKEN"):
        assert stamp == push_ahead.config_stamp({**environ, secret: "hunter2"}), secret  # not digested
    assert stamp != push_ahead.config_stamp({**environ, "ENVSTEWARD_HOME": "/y"})
    assert stamp != push_ahead.config_stamp({**environ, "envsteward_storage__kind": "s3"})
    environments = catalog / "environments.yaml"
    environments.write_text(environments.read_text() + "\n", encoding="utf-8")
    changed = push_ahead.config_stamp(environ)
    assert changed != stamp
    (catalog / "config").mkdir(exist_ok=True)
    (catalog / "config" / "new.yaml").write_text("a: 1\n")
    assert push_ahead.config_stamp(environ) != changed
    # ENVSTEWARD_HOME inside the catalog folder (its state changes with every heartbeat), a .git: ignored
    settled = push_ahead.config_stamp(environ)
    for noise in (".git/index", "home/state/pusher.json"):
        (catalog / noise).parent.mkdir(parents=True, exist_ok=True)
        (catalog / noise).write_text("changes all the time")
    home_inside = {**environ, "ENVSTEWARD_HOME": str(catalog / "home")}
    before_noise = push_ahead.config_stamp(home_inside)
    (catalog / "home" / "state" / "pusher.json").write_text("a heartbeat later")
    (catalog / ".git" / "index").write_text("fetched")
    assert push_ahead.config_stamp(home_inside) == before_noise
    assert push_ahead.config_stamp(environ) != settled  # (home elsewhere: that folder is catalog content)
    # the catalog named by .env (pydantic-settings reads it from the working directory)
    plain = {"PATH": "/bin"}
    without = push_ahead.config_stamp(plain)
    (work / ".env").write_text(f"export envsteward_catalog='{catalog}'\n")
    named = push_ahead.config_stamp(plain)
    assert named != without
    environments.write_text(environments.read_text() + "\n", encoding="utf-8")
    assert push_ahead.config_stamp(plain) != named


def test_an_ok_of_another_config_proves_nothing(tmp_path: Path) -> None:
    name, data = "000000010000000000000006", b"v" * 1000
    pg_wal = _layout(tmp_path, name, data)
    record = _ok_record(name, data, config="a" * 32)
    spool = pg_wal / push_ahead.SPOOL_NAME
    (spool / f"{name}.ok").write_text(json.dumps(record))
    assert push_ahead.proven(spool, name, pg_wal / name, "prod/db", "a" * 32) is not None
    assert push_ahead.proven(spool, name, pg_wal / name, "prod/db", "b" * 32) is None
    del record["config"]  # written by a pusher before the stamp existed
    (spool / f"{name}.ok").write_text(json.dumps(record))
    assert push_ahead.proven(spool, name, pg_wal / name, "prod/db", "a" * 32) is None


def test_a_failed_push_line_names_the_segment_and_the_target() -> None:
    from envsteward.cli.wal import push_error_line
    from envsteward.errors import ConflictError, TransientError

    segment = "000000010000000000000007"
    line = push_error_line(
        segment, "prod/db", TransientError("the DR store at s3://dr-bucket does not answer")
    )
    assert line == f"error: {segment} (--target prod/db): the DR store at s3://dr-bucket does not answer"
    named = ConflictError(f"WAL file {segment} is already archived with DIFFERENT content")
    assert push_error_line(segment, "prod/db", named) == f"error: {named}"


@pytest.mark.parametrize(
    "name",
    ["000000010000000000000003.partial", "00000002.history", "000000010000000000000003.00000028.backup"],
)
def test_non_segment_files_are_never_answered_from_the_spool(tmp_path: Path, name: str) -> None:
    """.partial, .history and .backup files always go through the synchronous push, even with a forged
    record and a .ready beside them."""
    data = b"h" * 100
    pg_wal = _layout(tmp_path, name, data)
    record = _ok_record(name, data)
    (pg_wal / push_ahead.SPOOL_NAME / f"{name}.ok").write_text(json.dumps(record))
    assert push_ahead.answer(name, pg_wal / name, "prod/db", STAMP, wait=0) is None
    assert push_ahead.ready_segments(pg_wal) == []  # and the pusher never pushes them ahead


def test_whole_second_timestamps_prove_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a filesystem that keeps whole seconds (ext3, some NFS), a rewrite in the same second as the
    pusher's look (``cp`` over the segment: same inode and size) keeps every field of the identity; only
    the SHA-256 can prove such a file. (The one mock: such a filesystem cannot be made here.)"""
    name = "000000010000000000000008"
    path = _layout(tmp_path, name, b"s" * 100) / name
    coarse = [11, 22, 100, 1_700_000_000 * 10**9, 1_700_000_000 * 10**9]
    monkeypatch.setattr(push_ahead, "file_identity", lambda _path: list(coarse))
    assert push_ahead.settled_identity(path, list(coarse)) is None
    fine = [11, 22, 100, 1_700_000_000 * 10**9 + 123, 1_700_000_000 * 10**9 + 456]
    monkeypatch.setattr(push_ahead, "file_identity", lambda _path: list(fine))
    assert push_ahead.settled_identity(path, list(fine)) == fine
