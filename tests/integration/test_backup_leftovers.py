"""Crash leftovers: a backup process really killed (SIGKILL) mid-upload or mid-verify leaves a temp file, an
incomplete S3 multipart upload or a data object without manifest; ``backup list --incomplete`` shows them
with age and size, and prune removes them only once they are older than the backup timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.adapters.aws import AWSClients
from envsteward.backup.leftovers import BACKUP_TIMEOUT_SECONDS, find_leftovers, remove_leftovers
from envsteward.backup.stores import BackupStores, backup_stores
from envsteward.cli.main import app
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, StorageSettings
from tests.fixtures.aws import S3Buckets

CHILD = r"""
import os, sys, time
from datetime import UTC, datetime
from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.backup import BackupSourceInfo, new_backup_id, write_backup

kind, home, stop_at = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "s3":
    from envsteward.adapters.aws import AWSClients, MIN_PART_SIZE, S3ObjectStore
    from envsteward.settings import AWSSettings
    clients = AWSClients(AWSSettings(region="eu-west-1", endpoint_url=sys.argv[4], max_attempts=1))
    store = S3ObjectStore(clients, sys.argv[5], part_size=MIN_PART_SIZE, max_concurrency=1)
else:
    from envsteward.adapters.objectstore_fs import FilesystemObjectStore
    store = FilesystemObjectStore(os.path.join(home, "objects"))

if stop_at == "verify":  # the upload completes; the process dies while reading it back
    real = store.get_stream
    def get_stream(key, chunk_size=1 << 20):
        print("STOPPED", flush=True)
        time.sleep(600)
        return real(key, chunk_size)
    store.get_stream = get_stream

def source():
    for n in range(12):
        yield os.urandom(1 << 20)
        if n == 7 and stop_at == "upload":
            print("STOPPED", flush=True)
            time.sleep(600)

now = datetime.now(UTC)
write_backup(
    store, LocalKeyProvider(os.path.join(home, "keys", "backup.key")), new_backup_id("dev", "cfg"), source(),
    environment="dev", source=BackupSourceInfo(kind="config", name="cfg"), started_at=now, consistent_at=now,
)
"""


def kill_backup_at(stop_at: str, home: Path, *extra: str, ready: Any = None) -> None:
    """Run a backup in a child process and SIGKILL it once it reached ``stop_at`` (and ``ready()``)."""
    script = home.parent / "child_backup.py"
    script.write_text(CHILD, encoding="utf-8")
    kind = "s3" if extra else "filesystem"
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(home), stop_at, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"STOPPED", (line, proc.stderr.read() if proc.stderr else b"")
        deadline = time.monotonic() + 30
        while ready is not None and not ready():
            assert time.monotonic() < deadline, "the child never got there"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def fs_stores(home: Path) -> BackupStores:
    return backup_stores(Services(Settings(home=home, storage=StorageSettings())))


def test_killed_filesystem_backups_are_listed_and_pruned_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    kill_backup_at("upload", home)
    kill_backup_at("verify", home)
    stores = fs_stores(home)
    leftovers = find_leftovers(stores)
    assert sorted(item.kind for item in leftovers) == ["no-manifest", "upload"]
    temp = next(item for item in leftovers if item.kind == "upload")
    assert temp.key.endswith("/data.bin")
    assert temp.size >= 7 * 1024 * 1024, "the temp file holds what was written before the kill"
    assert temp.what == "unfinished temp file"
    assert list((home / "objects").rglob(".data.bin.*.tmp")), "a real temp file was left"
    assert all(0 <= item.age_seconds < 120 for item in leftovers)

    # the CLI shows them with age and size, and prune keeps them: they may belong to running backups
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVSTEWARD_HOME", str(home))
    monkeypatch.setenv("ENVSTEWARD_CATALOG", str(write_empty_catalog(tmp_path)))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    listed = runner.invoke(app, ["backup", "list", "--incomplete"])
    assert listed.exit_code == 0, listed.output
    assert "unfinished temp file" in listed.stdout
    assert "data object without a manifest" in listed.stdout
    assert "MiB" in listed.stdout
    rows = json.loads(runner.invoke(app, ["backup", "list", "--incomplete", "--json"]).stdout)
    assert [row["removable"] for row in rows] == [False, False]
    pruned = runner.invoke(app, ["backup", "prune"])
    assert pruned.exit_code == 0, pruned.output
    assert "may still be running" in pruned.stdout
    assert len(find_leftovers(stores)) == 2

    # once older than the backup timeout they go: the temp file and the manifest-less object
    later = datetime.now(UTC) + timedelta(seconds=BACKUP_TIMEOUT_SECONDS + 2 * 3600)
    cleanup = remove_leftovers(stores, find_leftovers(stores, now=later))
    assert cleanup.ok
    assert len(cleanup.removed) == 2
    assert find_leftovers(stores) == []
    assert not list((home / "objects").rglob("*.tmp"))
    assert [info.key for info in stores.primary.list()] == []


def write_empty_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir(exist_ok=True)
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "leftovers"}), encoding="utf-8")
    envs = [{"name": "dev", "tier": "development", "backups": [{"name": "cfg", "kind": "config"}]}]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return folder


def test_a_killed_s3_backup_leaves_a_multipart_upload_that_prune_aborts(
    tmp_path: Path, aws_settings: AWSSettings, aws_clients: AWSClients, s3_buckets: S3Buckets
) -> None:
    home = tmp_path / "home"
    s3 = aws_clients.s3()

    def parts_uploaded() -> bool:
        uploads = s3.list_multipart_uploads(Bucket=s3_buckets.primary).get("Uploads") or []
        return bool(uploads) and bool(
            s3.list_parts(
                Bucket=s3_buckets.primary, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
            ).get("Parts")
        )

    assert aws_settings.endpoint_url is not None
    kill_backup_at("upload", home, aws_settings.endpoint_url, s3_buckets.primary, ready=parts_uploaded)
    services = Services(
        Settings(
            home=home,
            aws=aws_settings,
            storage=StorageSettings(kind="s3", bucket=s3_buckets.primary, dr_bucket=s3_buckets.dr),
        )
    )
    stores = backup_stores(services)
    (upload,) = find_leftovers(stores)
    assert (upload.kind, upload.region, upload.what) == ("upload", "primary", "unfinished multipart upload")
    assert upload.backup_id is not None
    assert upload.size >= 5 * 1024 * 1024
    assert remove_leftovers(stores, [upload]).kept == (upload,), "too young: may still be running"
    assert s3.list_multipart_uploads(Bucket=s3_buckets.primary).get("Uploads")

    later = datetime.now(UTC) + timedelta(seconds=BACKUP_TIMEOUT_SECONDS + 2 * 3600)
    cleanup = remove_leftovers(stores, find_leftovers(stores, now=later))
    assert [item.key for item in cleanup.removed] == [upload.key]
    assert not s3.list_multipart_uploads(Bucket=s3_buckets.primary).get("Uploads")
    assert find_leftovers(stores) == []


def test_the_backup_timeout_is_the_backup_tasks_timeout() -> None:
    from envsteward.tasks.backup import BACKUP_TASK_TIMEOUT_SECONDS

    assert BACKUP_TIMEOUT_SECONDS == BACKUP_TASK_TIMEOUT_SECONDS
