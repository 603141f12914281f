"""``envsteward promote``, ``approve`` and ``reject``: arguments, clear errors, and a dry run end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from envsteward.cli import promote as promote_cli
from envsteward.services import Services, set_services
from envsteward.settings import Settings
from tests.unit.promotion._catalog import write_catalog

runner = CliRunner()
app = typer.Typer()
promote_cli.register(app)


@pytest.fixture
def file_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = write_catalog(tmp_path / "catalog")
    for env, image in (("development", "shop/api:1.1.0"), ("staging", "shop/api:1.0.0")):
        (folder / "live" / env / "services.json").write_text(
            json.dumps({"api": {"image": image, "instances": 1}})
        )
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    set_services(Services(Settings(catalog=folder, home=tmp_path / "home", actor="tester")))
    yield folder
    set_services(None)


def test_help_lists_the_three_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("promote", "approve", "reject"):
        assert command in result.output


def test_approve_needs_a_run_id_and_a_reviewer() -> None:
    result = runner.invoke(app, ["approve", "not-a-uuid", "--reviewer", "alice"])
    assert result.exit_code == 1
    assert "is not a flow run id" in result.output
    result = runner.invoke(app, ["reject", "00000000-0000-0000-0000-000000000001", "--reviewer", " "])
    assert result.exit_code == 1
    assert "--reviewer is required" in result.output
    result = runner.invoke(app, ["approve", "00000000-0000-0000-0000-000000000001"])
    assert result.exit_code != 0


@pytest.mark.usefixtures("prefect_harness")
def test_an_unknown_run_and_a_finished_run_are_clear_errors(file_catalog: Path) -> None:
    unknown = runner.invoke(app, ["approve", "00000000-0000-0000-0000-000000000001", "--reviewer", "alice"])
    assert unknown.exit_code == 1
    assert "no flow run 00000000-0000-0000-0000-000000000001" in unknown.output

    dry = runner.invoke(app, ["promote", "development", "staging", "--dry-run", "--select", "services.**"])
    assert "services.api.image" in dry.output
    assert '"outcome": "dry-run"' in dry.output
    assert dry.exit_code == 0, dry.output
    run_id = json.loads(dry.output[dry.output.index("{") : dry.output.rindex("}") + 1])["run_id"]
    finished = runner.invoke(app, ["approve", run_id, "--reviewer", "alice"])
    assert finished.exit_code == 1
    assert "not waiting for approval" in finished.output
    assert not (file_catalog / ".." / "home" / "audit").exists(), "a dry run wrote to the audit log"

    # without --select the api_key reference is in scope and cannot be checked here (no Vault): blocked
    blocked = runner.invoke(app, ["promote", "development", "staging", "--dry-run"])
    assert blocked.exit_code == 1
    assert "app.database.api_key" in blocked.output
    assert "blocked" in blocked.output


@pytest.mark.usefixtures("prefect_harness")
def test_promoting_past_the_next_environment_is_refused_with_the_path(file_catalog: Path) -> None:
    result = runner.invoke(app, ["promote", "development", "production"])
    assert result.exit_code == 1
    assert "development -> staging -> production" in result.output


@pytest.mark.usefixtures("prefect_harness")
def test_a_blocked_promotion_prints_its_reasons_literally(file_catalog: Path) -> None:
    """The blocker names its origin in brackets (``[promoted from staging live (into ssm-services)]``):
    printed as plain text, not eaten as rich markup."""
    (file_catalog / "live" / "staging" / "services.json").write_text(
        json.dumps({"api": {"image": "shop/api:1.1.0", "instances": 2, "log_level": "debug"}})
    )
    (file_catalog / "live" / "production" / "services.json").write_text(
        json.dumps({"api": {"image": "shop/api:1.0.0", "instances": 4, "log_level": "info"}})
    )
    result = runner.invoke(app, ["promote", "staging", "production", "--select", "services.**"])
    assert result.exit_code == 1, result.output
    assert "[promoted from staging live (into ssm-services)]" in result.output
    assert "no-debug-logs" in result.output


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{_closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    with temporary_settings(updates={PREFECT_API_URL: url}):  # over a harness started earlier
        yield url


@pytest.mark.usefixtures("file_catalog")
def test_an_unreachable_prefect_api_is_one_line_naming_prefect_api_url(unreachable_api: str) -> None:
    for args in (
        ["promote", "development", "staging"],
        ["promote", "development", "staging", "--deployment", "promote/promote"],
        ["approve", "00000000-0000-0000-0000-000000000001", "--reviewer", "alice"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(" ".join(lines)) < 400, result.output
        assert unreachable_api in result.output
        assert "PREFECT_API_URL" in result.output


@pytest.mark.usefixtures("file_catalog")
def test_what_needs_no_server_is_refused_before_prefect_is_contacted(unreachable_api: str) -> None:
    same = runner.invoke(app, ["promote", "staging", "staging"])
    assert same.exit_code == 1
    assert "promotes only to 'production', not 'staging'" in same.output
    assert "Prefect API" not in same.output
    unknown = runner.invoke(app, ["promote", "development", "nowhere"])
    assert unknown.exit_code == 1
    assert "nowhere" in unknown.output
    assert "Prefect API" not in unknown.output
    bad_glob = runner.invoke(app, ["promote", "development", "staging", "--select", "services.[*"])
    assert bad_glob.exit_code == 1
    assert "--select glob" in bad_glob.output
    assert "Prefect API" not in bad_glob.output


def test_a_lease_holder_is_active_when_the_prefect_api_cannot_be_asked(unreachable_api: str) -> None:
    from envsteward.tasks.promotion import _run_is_active
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        assert _run_is_active("00000000-0000-0000-0000-000000000001") is True  # unknown = held
    assert _run_is_active("not-a-flow-run-id") is False


@pytest.mark.usefixtures("prefect_harness")
def test_a_lease_holder_the_api_does_not_know_is_held() -> None:
    """The caller may ask another Prefect API than the run's: unknown is held until the lease expires."""
    from envsteward.tasks.promotion import _run_is_active

    assert _run_is_active("00000000-0000-0000-0000-000000000001") is True


# ---------------------------------------------------------------------------------------------------------
# --status, --repair and the one-line failure (issue 18)
# ---------------------------------------------------------------------------------------------------------


def _journal_half_applied(folder: Path, run_id: str) -> Any:
    """Take staging's lease for ``run_id``, journal the services.** promotion and apply its first change
    (what a worker killed in the middle of its apply leaves behind); the journal."""
    from datetime import UTC, datetime, timedelta

    from envsteward.promotion import apply_plan
    from envsteward.promotion import lock as promotion_lock
    from envsteward.promotion.journal import open_journal
    from envsteward.promotion.runbook import make_plan, target_sources
    from envsteward.services import get_services

    services = get_services()
    plan = make_plan(services, "development", "staging", ["services.**"])
    now = datetime.now(UTC)
    promotion_lock.acquire(
        services.state_store(),
        target="staging",
        source="development",
        run_id=run_id,
        requested_by="dave",
        now=now,
        expires_at=now + timedelta(hours=1),
        is_active=lambda _run: True,
    )
    # the run is unknown to this Prefect API, which counts as running: only a passed apply deadline
    # lets the sweep take its journal over (a killed worker's run)
    journal = open_journal(services, plan, run_id=run_id, now=now, apply_deadline=now - timedelta(seconds=1))
    apply_plan(plan, target_sources(services, plan))
    assert "1.1.0" in (folder / "live" / "staging" / "services.json").read_text()
    return journal


def test_status_shows_the_lease_and_a_pending_rollback(file_catalog: Path) -> None:
    from datetime import UTC, datetime

    from envsteward.promotion.journal import JournalStatus, set_status
    from envsteward.services import get_services

    empty = runner.invoke(app, ["promote", "--status", "staging"])
    assert empty.exit_code == 0, empty.output
    assert "staging: no promotion holds the lease" in empty.output
    assert "staging: no rollback pending" in empty.output

    run_id = "11111111-2222-4333-8444-555555555555"
    journal = _journal_half_applied(file_catalog, run_id)
    set_status(
        get_services().state_store(),
        journal,
        JournalStatus.ROLLBACK_PENDING,
        now=datetime.now(UTC),
        keys_left=["services.api.image"],
        last_error="file services: restore failed: connection refused",
    )
    shown = runner.invoke(app, ["promote", "--status", "staging"])
    assert shown.exit_code == 0, shown.output
    assert f"lease held by flow run {run_id}" in shown.output
    assert "rollback_pending" in shown.output
    assert "keys left changed: services.api.image" in shown.output
    assert "age: " in shown.output
    assert "last error: file services: restore failed" in shown.output

    both = runner.invoke(app, ["promote", "development", "staging", "--status", "staging"])
    assert both.exit_code == 1
    assert "take no SOURCE/TARGET" in both.output


@pytest.mark.usefixtures("prefect_harness")
def test_repair_rolls_back_a_dead_runs_journal_and_exits_1_while_one_is_left(file_catalog: Path) -> None:
    from envsteward.promotion import lock as promotion_lock
    from envsteward.promotion.journal import load_journal
    from envsteward.services import get_services

    before = (file_catalog / "live" / "staging" / "services.json").read_bytes()
    run_id = "22222222-2222-4333-8444-555555555555"  # unknown to the Prefect API, past its deadline
    _journal_half_applied(file_catalog, run_id)
    repaired = runner.invoke(app, ["promote", "--repair", "staging"])
    assert repaired.exit_code == 0, repaired.output
    assert f"rolled back the promotion of flow run {run_id}" in repaired.output
    assert (file_catalog / "live" / "staging" / "services.json").read_bytes() == before
    store = get_services().state_store()
    assert load_journal(store, "staging") is None
    assert promotion_lock.holder(store, "staging") is None

    journal = _journal_half_applied(file_catalog, run_id)
    (copy,) = (Path(entry.copy_path) for entry in journal.entries)
    copy.unlink()  # the journal's copy of the file is gone: nothing can be restored from it
    pending = runner.invoke(app, ["promote", "--repair", "staging"])
    assert pending.exit_code == 1, pending.output
    assert "rollback still pending" in pending.output
    assert "the rollback journal is still there" in pending.output
    assert load_journal(store, "staging") is not None
    assert promotion_lock.holder(store, "staging") is not None, "the lease stays held"


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_run_is_one_line_on_the_terminal_and_the_traceback_is_in_the_log(
    file_catalog: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "cli-home"
    env = {
        **os.environ,
        "ENVSTEWARD_CATALOG": str(file_catalog),
        "ENVSTEWARD_HOME": str(home),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    # without --select the api_key reference is in scope and cannot be checked (no Vault): the run fails
    result = subprocess.run(
        [sys.executable, "-m", "envsteward.cli.main", "promote", "development", "staging"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    log = home / "logs" / "promote.log"
    assert errors[0].startswith("error: promotion: the promotion development -> staging is blocked")
    assert str(log) in errors[0]
    # the run ends in its named failed state (no traceback: the flow returns the state); the log has it
    assert "Finished in state Blocked(" in log.read_text()
