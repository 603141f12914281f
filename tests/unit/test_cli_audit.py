"""``envsteward audit verify`` and ``envsteward audit show`` on a real log under a temporary home."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from envsteward.audit import AuditLog, JsonLinesFileSink
from envsteward.cli import audit as audit_cli
from envsteward.services import Services
from envsteward.settings import Settings
from tests.unit.audit import tampering as t

runner = CliRunner()

# The audit sub-app mounted the way cli/main.py mounts it (without the other subcommands, so that this test
# only depends on the audit commands).
app = typer.Typer()
app.add_typer(audit_cli.app, name="audit")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    monkeypatch.setenv("ENVSTEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVSTEWARD_STORAGE__KIND", "filesystem")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def _log_path(home: Path) -> Path:
    return home / "audit" / "audit.jsonl"


def _populate(home: Path) -> AuditLog:
    now = datetime.now(UTC)
    times = iter([
        datetime(2025, 1, 1, 10, 0, tzinfo=UTC),
        datetime(2025, 1, 5, 10, 0, tzinfo=UTC),
        now - timedelta(hours=1),
        now,
    ])  # fmt: skip
    # With the checkpointer the settings describe (the local signer; the session's key is outside home).
    checkpointer = Services(Settings()).audit_log().checkpointer
    log = AuditLog(
        JsonLinesFileSink(_log_path(home)), "alice", clock=lambda: next(times), checkpointer=checkpointer
    )
    log.append("drift.detected", target="app/db/url", environment="staging", details={"items": 2})
    log.append("drift.healed", target="app/db/url", environment="staging", details={"healed": ["a", "b"]})
    log.append("promotion.approved", target="release-42", environment="production", actor="bob",
               details={"comment": "ship it", "requester": "alice"})  # fmt: skip
    log.append("health.status_changed", target="api", environment="production", details={"to": "degraded"})
    return log


def test_verify_ok(home: Path) -> None:
    _populate(home)
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit log OK: 4 record(s) verified" in result.output
    assert "checkpoint: record 4 signed by local key sha256:" in result.output
    assert "head (keep it to pass as --anchor later): 4:" in result.output


def test_verify_without_any_checkpoint_fails_closed(home: Path) -> None:
    log = AuditLog(JsonLinesFileSink(_log_path(home)), "alice")
    log.append("drift.detected", target="a")
    log.append("drift.detected", target="b")
    Services(Settings()).audit_log().append("drift.detected", target="c")  # creates the pinned key
    (home / "audit-checkpoints" / "000000000003.json").unlink()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert result.output.startswith("audit checkpoints MISSING")


def test_verify_json(home: Path) -> None:
    _populate(home)
    result = runner.invoke(app, ["audit", "verify", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["count"] == 4
    assert data["last_seq"] == 4
    assert data["location"] == str(_log_path(home))


def test_verify_broken_names_the_first_bad_record(home: Path) -> None:
    _populate(home)
    path = _log_path(home)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(t.change_field(lines, 2, "actor", "mallory")) + "\n")
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "audit log BROKEN at record 2 (line 2): hash mismatch (record changed)" in result.output
    data = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).output)
    assert (data["ok"], data["first_bad_seq"], data["kind"]) == (False, 2, "changed")


def test_verify_with_anchor_detects_truncation(home: Path) -> None:
    _populate(home)
    anchor = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).output)["anchor"]
    path = _log_path(home)
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    # The signed checkpoint of record 4 catches it by itself; the anchor too.
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "record of the signed checkpoint 4 is missing (log truncated)" in result.output
    result = runner.invoke(app, ["audit", "verify", "--anchor", anchor])
    assert result.exit_code == 1
    assert "anchored record 4 is missing" in result.output


def test_verify_bad_anchor_is_a_usage_error(home: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "--anchor", "nope"])
    assert result.exit_code == 2
    assert "SEQ:HASH" in result.output


def test_verify_empty_log(home: Path) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0
    assert "0 record(s) verified" in result.output


def test_show_table(home: Path) -> None:
    _populate(home)
    result = runner.invoke(app, ["audit", "show"])
    assert result.exit_code == 0, result.output
    for text in ("seq", "actor", "drift.detected", "promotion.approved", "release-42", "comment=ship it",
                 "healed=[\"a\", \"b\"]", "bob"):  # fmt: skip
        assert text in result.output


def _shown(*args: str) -> list[int]:
    result = runner.invoke(app, ["audit", "show", "--json", *args])
    assert result.exit_code == 0, result.output
    return [record["seq"] for record in json.loads(result.output)]


def test_show_filters(home: Path) -> None:
    _populate(home)
    assert _shown() == [1, 2, 3, 4]
    assert _shown("--env", "production") == [3, 4]
    assert _shown("--action", "drift") == [1, 2]
    assert _shown("--action", "*.approved") == [3]
    assert _shown("--since", "24h") == [3, 4]
    assert _shown("--since", "2d") == [3, 4]
    assert _shown("--since", "2025-01-01") == [1, 2, 3, 4]
    assert _shown("--since", "2025-01-02") == [2, 3, 4]
    assert _shown("--since", "2025-01-05T10:00:00Z") == [2, 3, 4]
    assert _shown("--since", "2025-01-05T10:00:01+00:00") == [3, 4]
    assert _shown("--limit", "2") == [3, 4]
    assert _shown("--env", "staging", "--limit", "1") == [2]
    assert _shown("--env", "nowhere") == []


def test_show_json_is_the_stored_records(home: Path) -> None:
    _populate(home)
    stored = [json.loads(line) for line in _log_path(home).read_text().splitlines()]
    shown = json.loads(runner.invoke(app, ["audit", "show", "--json"]).output)
    assert shown == stored


def test_show_nothing(home: Path) -> None:
    result = runner.invoke(app, ["audit", "show"])
    assert result.exit_code == 0
    assert "no matching audit records" in result.output


@pytest.mark.parametrize(
    ("args", "hint"), [(["--since", "yesterday"], "--since"), (["--limit", "0"], "--limit")]
)
def test_show_bad_options(home: Path, args: list[str], hint: str) -> None:
    result = runner.invoke(app, ["audit", "show", *args])
    assert result.exit_code == 2
    assert hint in result.output


def test_show_unreadable_record_is_a_clear_error(home: Path) -> None:
    _populate(home)
    path = _log_path(home)
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:20]
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["audit", "show"])
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert "audit verify" in result.output


def test_help_does_not_import_the_audit_package() -> None:
    code = (
        "import sys\n"
        "from envsteward.cli.main import app\n"
        "heavy = [m for m in ('envsteward.audit', 'envsteward.adapters.state_fs', 'envsteward.fingerprint',"
        " 'pydantic', 'rich.table') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "envsteward.audit" not in out.stdout
    assert "envsteward.adapters.state_fs" not in out.stdout
    assert "envsteward.fingerprint" not in out.stdout


@pytest.mark.parametrize("columns", ["80", "100"])
def test_show_stays_readable_at_80_columns(home: Path, monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    _populate(home)
    log = AuditLog(JsonLinesFileSink(_log_path(home)), "alice")
    log.append(
        "promotion.approval_refused",
        target="promotion/development->staging",
        environment="staging",
        actor="dave",
        details={"run_id": "6f1c1d6e-8f53-4c38-9f0e-3f3b0e6c2d11", "reason": "dave requested this promotion"},
    )
    from envsteward.cli import _common

    monkeypatch.setenv("COLUMNS", columns)
    _common.console.cache_clear()  # the console keeps the width it was made with
    try:
        result = runner.invoke(app, ["audit", "show"])
    finally:
        _common.console.cache_clear()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= int(columns) for line in lines), max(lines, key=len)
    for whole in (
        "promotion.approval_refused",
        "promotion/development->staging",
        "6f1c1d6e-8f53-4c38-9f0e-3f3b0e6c2d11",
        "health.status_changed",
        "release-42",
    ):
        assert any(whole in line for line in lines), f"{whole} was split or dropped:\n{result.output}"
    short = [line for line in lines if 0 < len(line.strip()) <= 2]
    assert not short, f"lines of one or two characters:\n{result.output}"
    assert "by dave" in result.output
