"""``envsteward backup``: run, list, verify, restore and prune on the embedded default (local folders, local
key). Tampering with a stored backup in any way must fail with one clear line, exit 1, and restore nothing."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.backup import ProgressEvent
from envsteward.cli import backup as backup_cli
from envsteward.cli.main import app
from tests.fixtures.backups import seed_config_backups

runner = CliRunner()
MARKER = "cli-known-row-0c4f9e"
BLOB_BYTES = 3 * 1024 * 1024 + 123


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    monkeypatch.setenv("ENVSTEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVSTEWARD_ACTOR", "cli-backup-test")
    monkeypatch.setenv("ENVSTEWARD_CATALOG", str(tmp_path / "catalog"))
    monkeypatch.setenv("COLUMNS", "250")
    for name in list(os.environ):
        if name.startswith(("ENVSTEWARD_STORAGE", "ENVSTEWARD_AWS")):
            monkeypatch.delenv(name)
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, blob BLOB)")
        conn.execute("INSERT INTO notes VALUES (1, ?, ?)", (MARKER, os.urandom(BLOB_BYTES)))
    conn.close()
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "clibackup"}), encoding="utf-8")
    envs = [
        {
            "name": "dev",
            "tier": "development",
            "backups": [
                {"name": "app-db", "kind": "sqlite", "path": str(db), "replica_region": "eu-central-1"},
                {"name": "cfg", "kind": "config"},
            ],
        }
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return tmp_path


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["backup", *args])


def backup_id_of(workdir: Path, target: str = "app-db") -> str:
    result = invoke("list", "--json", "--target", target)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows, "no backup listed"
    return str(rows[-1]["backup_id"])


def data_file(workdir: Path, backup_id: str, region: str = "objects") -> Path:
    return workdir / "home" / region / backup_id / "data.bin"


def assert_one_clean_error(result: Any, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------------------
# run, list, verify, restore
# ---------------------------------------------------------------------------------------------------------


def test_run_list_verify_and_restore(workdir: Path) -> None:
    result = invoke("run", "--env", "dev")
    assert result.exit_code == 0, result.output
    assert "dev/app-db" in result.stdout
    assert "dev/cfg" in result.stdout

    listed = invoke("list", "--json")
    rows = json.loads(listed.stdout)
    by_target = {row["target"]: row for row in rows}
    assert by_target["app-db"]["replica"] == "ok"
    assert by_target["cfg"]["replica"] == "missing"  # no replica_region: no replica asked for
    assert by_target["app-db"]["verified_by_drill"] is False
    assert by_target["app-db"]["size"] > BLOB_BYTES

    table = invoke("list")
    assert table.exit_code == 0
    for column in ("id", "replica", "replica verified", "drill", "size", "time"):
        assert column in table.stdout
    assert by_target["app-db"]["replica_verified_at"] is not None
    assert by_target["app-db"]["replica_verified_by"] == "read-back"
    backup_id = by_target["app-db"]["backup_id"]
    assert backup_id in table.stdout

    stored = data_file(workdir, backup_id).read_bytes()
    assert MARKER.encode() not in stored

    verified = invoke("verify", backup_id)
    assert verified.exit_code == 0, verified.output
    assert "verified" in verified.stdout
    assert invoke("verify", backup_id, "--dr").exit_code == 0

    destination = workdir / "restored.db"
    restored = invoke("restore", backup_id, "--to", str(destination), "--dr")
    assert restored.exit_code == 0, restored.output
    conn = sqlite3.connect(destination)
    try:
        assert conn.execute("SELECT body FROM notes").fetchall() == [(MARKER,)]
    finally:
        conn.close()

    again = invoke("restore", backup_id, "--to", str(destination))
    assert_one_clean_error(again, "exists")


def test_run_json_and_a_failing_target_does_not_stop_the_others(workdir: Path) -> None:
    (workdir / "app.db").unlink()
    result = invoke("run", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    status = {entry["target"]: entry["status"] for entry in summary["results"]}
    assert status == {"app-db": "failed", "cfg": "ok"}
    assert summary["ok"] is False
    assert "failed: dev/app-db" in result.stderr


def test_unknown_target_and_bad_ids_fail_cleanly(workdir: Path) -> None:
    assert_one_clean_error(invoke("run", "--target", "nope"), "no backup target 'nope'")
    assert_one_clean_error(invoke("verify", "../../etc/passwd"), "invalid backup id")
    assert_one_clean_error(invoke("verify", "dev/app-db/20240101T000000Z-00000000"), "not found")


def test_restore_destination_must_fit_the_kind(workdir: Path) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    assert_one_clean_error(invoke("restore", backup_id, "--to", "vault://secret/x"), "restores into a file")
    assert not any(workdir.glob("*.restore"))


# ---------------------------------------------------------------------------------------------------------
# tampering
# ---------------------------------------------------------------------------------------------------------


def _frames(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(header length, [(offset, length) of each frame]) of a backup object (format v1)."""
    offset = 8 + 1 + 1 + 4 + 32
    for _ in range(3):
        (length,) = struct.unpack(">H", data[offset : offset + 2])
        offset += 2 + length
    header = offset
    frames = []
    while offset < len(data):
        _kind, length = struct.unpack(">BI", data[offset : offset + 5])
        frames.append((offset, 5 + length))
        offset += 5 + length
    return header, frames


def flip(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x04
    return bytes(changed)


def truncate(data: bytes) -> bytes:
    _header, frames = _frames(data)
    return data[: frames[-1][0]]  # drop the final chunk: a clean cut at a frame boundary


def reorder(data: bytes) -> bytes:
    header, frames = _frames(data)
    assert len(frames) >= 3, "need several chunks"
    (a_off, a_len), (b_off, b_len) = frames[0], frames[1]
    return data[:header] + data[b_off : b_off + b_len] + data[a_off : a_off + a_len] + data[b_off + b_len :]


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (flip, ("backup dev/app-db/", "authentication failed")),
        (truncate, ("backup dev/app-db/", "trunc")),
        (reorder, ("backup dev/app-db/", "authentication failed")),
    ],
    ids=["flipped-byte", "truncated", "reordered-chunks"],
)
def test_a_damaged_object_fails_verify_and_restores_nothing(
    workdir: Path, damage: Any, words: tuple[str, ...]
) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    path = data_file(workdir, backup_id)
    path.write_bytes(damage(path.read_bytes()))

    assert_one_clean_error(invoke("verify", backup_id), *words)
    destination = workdir / "restored.db"
    assert_one_clean_error(invoke("restore", backup_id, "--to", str(destination)), *words)
    assert not destination.exists()
    assert [p.name for p in workdir.iterdir() if "restore" in p.name] == []
    # the replica is intact and still restores
    assert invoke("verify", backup_id, "--dr").exit_code == 0


def test_a_wrong_key_fails_cleanly(workdir: Path) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    key_file = workdir / "home" / "keys" / "backup.key"
    key_file.unlink()
    LocalKeyProvider(key_file).generate_data_key()  # a new, different local key
    assert_one_clean_error(invoke("verify", backup_id), "unwrap")
    destination = workdir / "restored.db"
    assert_one_clean_error(invoke("restore", backup_id, "--to", str(destination)), "unwrap")
    assert not destination.exists()


def test_an_altered_manifest_fails_cleanly(workdir: Path) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    manifest_path = workdir / "home" / "objects" / backup_id / "manifest.json"
    document = json.loads(manifest_path.read_text(encoding="utf-8"))
    document["environment"] = "production"
    manifest_path.write_text(json.dumps(document), encoding="utf-8")
    assert_one_clean_error(invoke("verify", backup_id), "manifest authentication failed")


# ---------------------------------------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------------------------------------


def seed_backups(workdir: Path, count: int) -> list[str]:
    """``count`` backups of dev/cfg an hour apart today, in both regions; ids oldest first."""
    return seed_config_backups(workdir / "home", count, minute=30)


def test_prune_prints_the_plan_before_removing_in_both_regions(workdir: Path) -> None:
    ids = seed_backups(workdir, 5)  # same day: the default policy keeps the newest and the oldest
    dry = invoke("prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 backup(s) to remove" in dry.stdout
    assert "dry run: nothing removed" in dry.stdout
    assert all((workdir / "home" / "objects" / backup_id / "manifest.json").exists() for backup_id in ids)

    result = invoke("prune")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for backup_id in ids[1:4]:
        assert f"REMOVE {backup_id}  (primary, dr)" in out
        assert out.index(f"REMOVE {backup_id}") < out.index("removed "), "removed before the plan was shown"
        for region in ("objects", "objects-dr"):
            assert not (workdir / "home" / region / backup_id).exists()
    assert "newest backup (safety floor)" in out
    for backup_id in (ids[0], ids[-1]):
        assert (workdir / "home" / "objects-dr" / backup_id / "manifest.json").exists()

    log = (workdir / "home" / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    pruned = [json.loads(line) for line in log if '"backup.pruned"' in line]
    assert sorted(record["target"] for record in pruned) == sorted(ids[1:4])

    data = json.loads(invoke("prune", "--json").stdout)
    assert data["plan"]["remove"] == 0


# ---------------------------------------------------------------------------------------------------------
# progress bar
# ---------------------------------------------------------------------------------------------------------


def test_progress_bar_follows_pipeline_events() -> None:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(file=io.StringIO(), force_terminal=True), auto_refresh=False)
    bar = backup_cli.ProgressBar(progress)
    bar(
        ProgressEvent(
            phase="verify", backup_id="dev/a/1", stored_bytes=10, plaintext_bytes=9, total_stored_bytes=40
        )
    )
    bar(
        ProgressEvent(
            phase="verify", backup_id="dev/a/1", stored_bytes=40, plaintext_bytes=36, total_stored_bytes=40
        )
    )
    bar(
        ProgressEvent(
            phase="restore", backup_id="dev/a/1", stored_bytes=5, plaintext_bytes=4, total_stored_bytes=40
        )
    )
    tasks = {task.description: task for task in progress.tasks}
    assert tasks["verify dev/a/1"].completed == 40
    assert tasks["verify dev/a/1"].finished
    assert tasks["restore dev/a/1"].completed == 5


# ---------------------------------------------------------------------------------------------------------
# replicas: what was verified, and when
# ---------------------------------------------------------------------------------------------------------


def test_verify_all_regions_catches_a_corrupted_replica_that_list_shows_as_present(workdir: Path) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    good = invoke("verify", backup_id, "--all-regions")
    assert good.exit_code == 0, good.output
    assert "verified primary" in good.stdout
    assert "verified dr" in good.stdout

    path = data_file(workdir, backup_id, "objects-dr")
    path.write_bytes(flip(path.read_bytes()))  # same size, same manifest: the cheap look sees nothing
    (row,) = json.loads(invoke("list", "--json", "--target", "app-db").stdout)
    assert row["replica"] == "ok"
    table = invoke("list", "--target", "app-db").stdout
    assert "present" in table
    assert row["replica_verified_at"][:10] in table, "the table says when the replica was last verified"

    bad = invoke("verify", backup_id, "--all-regions")
    assert bad.exit_code == 1
    assert "verified primary" in bad.stdout
    assert "FAILED dr" in bad.stderr
    assert "Traceback" not in bad.output


# ---------------------------------------------------------------------------------------------------------
# tables at 80 columns
# ---------------------------------------------------------------------------------------------------------

LONG_IDS = [
    "production/pg/20261231T235959Z-0a1b2c3d",
    "production/orders-database/20261231T235959Z-0a1b2c3d",
    "staging/config-snapshot/20240101T000000Z-ffffffff",
]


def _render(table: Any, width: int = 80) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False).print(table)
    return out.getvalue()


def _list_row(backup_id: str) -> dict[str, Any]:
    return {
        "backup_id": backup_id,
        "replica": "mismatch",
        "replica_verified_at": "2026-12-31T23:59:59+00:00",
        "verified_by_drill": True,
        "size": 123456789,
        "time": "2026-12-31T23:59:59+00:00",
    }


@pytest.mark.parametrize("width", [80, 60, 100])
def test_list_table_keeps_every_id_on_one_line(width: int) -> None:
    columns = [
        ("id", 100),
        ("replica", 90),
        ("replica verified", 80),
        ("drill", 60),
        ("size", 50),
        ("time", 40),
    ]
    table = backup_cli.fitted_table(
        "backups", columns, [backup_cli._list_cells(_list_row(i)) for i in LONG_IDS], width
    )
    assert table is not None
    text = _render(table, width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    for backup_id in LONG_IDS:
        assert any(backup_id in line for line in lines), f"{backup_id} was cut or wrapped:\n{text}"
    if width >= 80:
        assert "mismatch" in text, "the replica state is the last column to go"


def test_run_table_keeps_every_id_on_one_line() -> None:
    columns = [("backup id", 100), ("status", 90), ("replica", 80), ("stored", 50), ("seconds", 40)]
    rows = [[backup_id, "[green]ok[/]", "not-requested", "117.7 MiB", "1234.5"] for backup_id in LONG_IDS]
    text = _render(backup_cli.fitted_table("backups", columns, rows, 80))
    for backup_id in LONG_IDS:
        assert backup_id in text
    assert "ok" in text


def test_a_terminal_too_narrow_for_a_table_gets_one_id_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backup_cli.fitted_table("backups", [("id", 100)], [[LONG_IDS[1]]], 30) is None


def test_cli_list_at_80_columns(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envsteward.cli import _common

    monkeypatch.setenv("COLUMNS", "80")
    _common.console.cache_clear()  # the console (and its width) is made once per process
    run = invoke("run")
    assert run.exit_code == 0, run.output
    backup_ids = [row["backup_id"] for row in json.loads(invoke("list", "--json").stdout)]
    for output in (run.stdout, invoke("list").stdout):
        assert all(len(line) <= 80 for line in output.splitlines()), output
        for backup_id in backup_ids:
            assert backup_id in output, output
    _common.console.cache_clear()


def test_read_only_commands_never_create_a_key(workdir: Path) -> None:
    assert invoke("run", "--target", "app-db").exit_code == 0
    backup_id = backup_id_of(workdir)
    key_file = workdir / "home" / "keys" / "backup.key"
    key_file.unlink()
    assert_one_clean_error(invoke("verify", backup_id), "no local backup key at", str(key_file))
    assert not key_file.exists(), "verify created a key"
    assert_one_clean_error(invoke("verify", backup_id, "--dr"), "no local backup key at")
    destination = workdir / "restored.db"
    assert_one_clean_error(invoke("restore", backup_id, "--to", str(destination)), str(key_file))
    assert not key_file.exists(), "restore created a key"
    assert not destination.exists()
    assert invoke("list").exit_code == 0
    assert not key_file.exists(), "list created a key"


# ---------------------------------------------------------------------------------------------------------
# backup key export / import
# ---------------------------------------------------------------------------------------------------------

PASSPHRASE = "correct horse battery staple 7f3a"
KEY_WARNING = "the only copy of the local backup key"


@pytest.fixture
def passphrase_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KEY_EXPORT_PASSPHRASE", PASSPHRASE)
    return "KEY_EXPORT_PASSPHRASE"


def all_output(*results: Any) -> str:
    return "\n".join(result.stdout + result.stderr for result in results)


def test_key_export_delete_import_then_restore_an_existing_backup(workdir: Path, passphrase_env: str) -> None:
    first = invoke("run", "--target", "app-db")
    assert first.exit_code == 0, first.output
    backup_id = backup_id_of(workdir)
    keys = workdir / "home" / "keys"
    key_hex = (keys / "backup.key").read_text().strip()
    key_id = LocalKeyProvider(keys / "backup.key").key_id
    export = workdir / "offsite" / "backup-key.json"
    export.parent.mkdir()

    exported = invoke("key", "export", "--out", str(export), "--passphrase-env", passphrase_env)
    assert exported.exit_code == 0, exported.output
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    document = json.loads(export.read_text())
    assert document["format"] == "envsteward-backup-key"
    assert document["version"] == 1
    assert document["key_id"] == key_id
    assert document["kdf"]["name"] == "scrypt"
    assert document["cipher"]["name"] == "AES-256-GCM"
    marker = json.loads((keys / "backup.key.exported.json").read_text())
    assert marker["key_id"] == key_id
    assert marker["how"] == "export"
    assert "at" in marker
    # an export is never overwritten
    assert_one_clean_error(
        invoke("key", "export", "--out", str(export), "--passphrase-env", passphrase_env), "already exists"
    )

    # the disaster: the whole keys folder is gone; the backup cannot be read any more
    for path in keys.iterdir():
        path.unlink()
    keys.rmdir()
    destination = workdir / "restored.db"
    assert_one_clean_error(invoke("restore", backup_id, "--to", str(destination)), "no local backup key")

    imported = invoke("key", "import", str(export), "--passphrase-env", passphrase_env)
    assert imported.exit_code == 0, imported.output
    assert f"installed backup key {key_id}" in imported.stdout
    assert (keys / "backup.key").read_text().strip() == key_hex
    assert oct((keys / "backup.key").stat().st_mode & 0o777) == "0o600"
    again = invoke("key", "import", str(export), "--passphrase-env", passphrase_env)
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stdout

    restored = invoke("restore", backup_id, "--to", str(destination))
    assert restored.exit_code == 0, restored.output
    conn = sqlite3.connect(destination)
    try:
        assert conn.execute("SELECT body FROM notes").fetchall() == [(MARKER,)]
    finally:
        conn.close()

    text = all_output(first, exported, imported, again, restored)
    assert key_hex not in text
    assert key_hex.upper() not in text
    assert PASSPHRASE not in text
    assert key_hex not in export.read_text()
    assert key_hex not in (keys / "backup.key.exported.json").read_text()


def test_key_import_refuses_another_key_naming_both(workdir: Path, passphrase_env: str) -> None:
    assert invoke("run", "--target", "cfg").exit_code == 0
    key_file = workdir / "home" / "keys" / "backup.key"
    export = workdir / "old-key.json"
    assert invoke("key", "export", "--out", str(export), "--passphrase-env", passphrase_env).exit_code == 0
    old_id = LocalKeyProvider(key_file).key_id
    key_file.unlink()
    new_id = LocalKeyProvider(key_file).key_id  # a new key appeared (e.g. a backup ran meanwhile)
    result = invoke("key", "import", str(export), "--passphrase-env", passphrase_env)
    assert_one_clean_error(result, "already holds key", old_id, new_id)
    assert LocalKeyProvider(key_file, create=False).key_id == new_id


def test_key_import_wrong_passphrase_and_tampered_file_are_one_clear_error(
    workdir: Path, passphrase_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("run", "--target", "cfg").exit_code == 0
    key_file = workdir / "home" / "keys" / "backup.key"
    export = workdir / "key.json"
    assert invoke("key", "export", "--out", str(export), "--passphrase-env", passphrase_env).exit_code == 0
    key_file.unlink()

    monkeypatch.setenv("WRONG_PASSPHRASE", PASSPHRASE + "!")
    wrong = invoke("key", "import", str(export), "--passphrase-env", "WRONG_PASSPHRASE")
    assert_one_clean_error(wrong, "wrong passphrase, or the file was altered", str(export))

    document = json.loads(export.read_text())
    tampered_cases = {
        "ciphertext": lambda d: d.update(
            ciphertext=d["ciphertext"][:-4] + ("AAAA" if d["ciphertext"][-4:] != "AAAA" else "BBBB")
        ),
        "key_id": lambda d: d.update(key_id="local:0000000000000000"),
        "kdf": lambda d: d["kdf"].update(n=2**15),
        "created_at": lambda d: d.update(created_at="2020-01-01T00:00:00+00:00"),
    }
    for name, change in tampered_cases.items():
        altered = json.loads(json.dumps(document))
        change(altered)
        path = workdir / f"tampered-{name}.json"
        path.write_text(json.dumps(altered))
        result = invoke("key", "import", str(path), "--passphrase-env", passphrase_env)
        assert_one_clean_error(result, "wrong passphrase, or the file was altered")
    garbage = workdir / "garbage.json"
    garbage.write_text("{not json")
    assert_one_clean_error(
        invoke("key", "import", str(garbage), "--passphrase-env", passphrase_env),
        "not a usable envsteward key export",
    )
    assert not key_file.exists(), "a failed import wrote a key"
    missing = invoke("key", "import", str(export), "--passphrase-env", "NO_SUCH_VARIABLE_7c1")
    assert_one_clean_error(missing, "NO_SUCH_VARIABLE_7c1", "not set")


def test_key_export_prompts_twice_and_never_takes_the_passphrase_as_an_argument(workdir: Path) -> None:
    assert invoke("run", "--target", "cfg").exit_code == 0
    export = workdir / "key.json"
    mismatch = runner.invoke(
        app, ["backup", "key", "export", "--out", str(export)], input=f"{PASSPHRASE}\nsomething else\n" * 3
    )
    assert mismatch.exit_code != 0
    assert not export.exists()
    prompted = runner.invoke(
        app, ["backup", "key", "export", "--out", str(export)], input=f"{PASSPHRASE}\n{PASSPHRASE}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert "Repeat the passphrase" in prompted.output
    assert PASSPHRASE not in prompted.output
    short = runner.invoke(
        app, ["backup", "key", "export", "--out", str(workdir / "k2.json")], input="short\nshort\n"
    )
    assert short.exit_code == 1
    assert "at least 12 characters" in short.stderr
    assert invoke("key", "export", "--passphrase", PASSPHRASE).exit_code == 2  # no such option
    # to stdout when no --out is given
    (workdir / "home" / "keys" / "backup.key.exported.json").unlink()
    to_stdout = runner.invoke(app, ["backup", "key", "export"], input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert to_stdout.exit_code == 0, to_stdout.output
    assert '"format": "envsteward-backup-key"' in to_stdout.stdout


def test_key_export_without_a_key_is_a_clear_error_and_creates_none(
    workdir: Path, passphrase_env: str
) -> None:
    key_file = workdir / "home" / "keys" / "backup.key"
    result = invoke("key", "export", "--passphrase-env", passphrase_env)
    assert_one_clean_error(result, "no local backup key at", str(key_file))
    assert not key_file.exists()


def test_backup_run_warns_until_the_key_is_exported(workdir: Path, passphrase_env: str) -> None:
    first = invoke("run", "--target", "cfg")
    assert first.exit_code == 0, first.output
    assert KEY_WARNING in first.stderr
    assert "backup key export" in first.stderr
    assert "dev/cfg" in first.stderr
    as_json = invoke("run", "--target", "cfg", "--json")
    assert KEY_WARNING in as_json.stderr
    json.loads(as_json.stdout)  # stdout stays JSON
    assert (
        invoke(
            "key", "export", "--out", str(workdir / "k.json"), "--passphrase-env", passphrase_env
        ).exit_code
        == 0
    )
    quiet = invoke("run", "--target", "cfg")
    assert quiet.exit_code == 0, quiet.output
    assert KEY_WARNING not in quiet.stderr
    # a replaced key (the old one lost) has no copy: the warning is back
    key_file = workdir / "home" / "keys" / "backup.key"
    key_file.unlink()
    replaced = invoke("run", "--target", "cfg")
    assert KEY_WARNING in replaced.stderr
    key_text = key_file.read_text().strip()
    assert key_text not in all_output(first, as_json, quiet, replaced)


# ---------------------------------------------------------------------------------------------------------
# backup rotate-key
# ---------------------------------------------------------------------------------------------------------


def test_rotate_key_then_restore_a_backup_made_before_it(workdir: Path, passphrase_env: str) -> None:
    first = invoke("run", "--target", "app-db")
    assert first.exit_code == 0, first.output
    backup_id = backup_id_of(workdir)
    key_file = workdir / "home" / "keys" / "backup.key"
    old_hex = key_file.read_text().strip()
    manifests = [
        workdir / "home" / region / backup_id / "manifest.json" for region in ("objects", "objects-dr")
    ]
    before = [path.read_bytes() for path in manifests]

    planned = invoke("rotate-key", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert "dry run: nothing changed" in planned.stdout
    assert "would rewrap" in planned.stdout
    assert [path.read_bytes() for path in manifests] == before
    assert key_file.read_text().strip() == old_hex

    rotated = invoke("rotate-key", "--env", "dev")
    assert rotated.exit_code == 0, rotated.output
    assert "v1 -> v2" in rotated.stdout
    assert "below v2" in rotated.stdout
    after = [path.read_bytes() for path in manifests]
    assert after[0] == after[1] != before[0]  # both regions rewritten, identical

    destination = workdir / "restored.db"
    restored = invoke("restore", backup_id, "--to", str(destination), "--dr")
    assert restored.exit_code == 0, restored.output
    conn = sqlite3.connect(destination)
    try:
        assert conn.execute("SELECT body FROM notes").fetchall() == [(MARKER,)]
    finally:
        conn.close()
    assert invoke("verify", backup_id).exit_code == 0

    as_json = invoke("rotate-key", "--json")
    assert as_json.exit_code == 0, as_json.output
    (key,) = json.loads(as_json.stdout)["keys"]
    assert key["key"] == "local"
    assert key["rotated"] is True
    assert key["to_version"] == 3

    # export and import keep working with versions: a fresh home gets every version back
    exported = invoke("key", "export", "--out", str(workdir / "k.json"), "--passphrase-env", passphrase_env)
    assert exported.exit_code == 0, exported.output
    assert json.loads((workdir / "k.json").read_text())["version"] == 2
    ring_text = key_file.read_text()
    key_file.unlink()
    imported = invoke("key", "import", str(workdir / "k.json"), "--passphrase-env", passphrase_env)
    assert imported.exit_code == 0, imported.output
    assert key_file.read_text() == ring_text
    (workdir / "restored.db").unlink()
    assert invoke("restore", backup_id, "--to", str(destination)).exit_code == 0

    text = all_output(first, planned, rotated, restored, as_json, exported, imported)
    assert old_hex not in text
    for entry in json.loads(ring_text)["keys"]:
        assert entry["key"] not in text


def test_rotate_key_without_a_key_creates_none(workdir: Path) -> None:
    key_file = workdir / "home" / "keys" / "backup.key"
    for args in (("rotate-key", "--dry-run"), ("rotate-key",)):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert "no local key yet" in result.stdout
        assert not key_file.exists()


def test_rotate_key_unknown_environment_is_one_clean_error(workdir: Path) -> None:
    assert_one_clean_error(invoke("rotate-key", "--env", "nope"), "unknown environment")
