"""``envsteward promote``, ``approve`` and ``reject``: arguments, clear errors, and a dry run end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
def test_a_lease_holder_the_api_does_not_know_is_inactive() -> None:
    from envsteward.tasks.promotion import _run_is_active

    assert _run_is_active("00000000-0000-0000-0000-000000000001") is False
