"""``envsteward validate``: exit codes and what it prints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsteward.cli.main import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "catalog"
DATA = REPO / "tests" / "data" / "catalogs"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", *args], env={"COLUMNS": "200", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_example_catalog_is_valid() -> None:
    code, output = run(str(EXAMPLE))
    assert code == 0, output
    assert "promotion path development -> staging -> production" in output
    for line in (
        "ok  development (development): 3 tier rules pass",
        "ok  staging (staging): 4 tier rules pass",
        "ok  production (production): 16 tier rules pass",
        "valid: 3 environments pass their tier rules",
    ):
        assert line in output


def test_catalog_defaults_to_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run(env={"ENVSTEWARD_CATALOG": str(DATA / "minimal")})
    assert code == 0, output
    assert "platform mini" in output


def test_the_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "envsteward"
    assert script.exists(), "the project is not installed in this interpreter's venv"
    result = subprocess.run(
        [str(script), "validate", str(EXAMPLE), "--env", "production"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  production (production): 16 tier rules pass" in result.stdout
    assert "development" not in result.stdout.split("promotion path", 1)[1].split("\n", 1)[1]


def test_five_mistakes_are_listed_with_file_and_line() -> None:
    code, output = run(str(DATA / "bad" / "five_mistakes"))
    assert code == 1
    assert "is invalid: 5 problems" in output
    lines = [line.strip() for line in output.splitlines() if line.startswith("  ")]
    assert [re.match(r"^(\S+:\d+):", line)[1] for line in lines] == [  # type: ignore[index]
        "five_mistakes/catalog.yaml:7",
        "five_mistakes/config/prod.yaml:2",
        "five_mistakes/environments.yaml:6",
        "five_mistakes/environments.yaml:8",
        "five_mistakes/policies.yaml:5",
    ]
    assert "Traceback" not in output


def test_three_broken_tier_rules_are_listed_exactly() -> None:
    code, output = run(str(DATA / "three_violations"), "--env", "production")
    assert code == 1
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]
    assert [(row[0], row[2], row[3]) for row in rows] == [
        ("session-timeout", "security.session.timeout_minutes", "config/prod.yaml:9"),
        ("debug-off", "services.api.debug", "config/prod.yaml:6"),
        ("min-instances", "services.api.instances", "config/prod.yaml:5"),
    ]
    assert "production (production): 3 violations of 14 tier rules" in output
    assert "invalid: 3 tier-rule violations in production" in output


def test_only_the_selected_environment_is_checked() -> None:
    code, output = run(str(DATA / "three_violations"), "--env", "development")
    assert code == 0, output
    assert "ok  development (development)" in output
    assert "production (production)" not in output


def test_all_environments_by_default_fail_when_one_breaks_a_rule() -> None:
    code, output = run(str(DATA / "three_violations"))
    assert code == 1
    assert "ok  development (development)" in output
    assert "3 violations" in output


def test_unknown_environment() -> None:
    code, output = run(str(EXAMPLE), "--env", "qa")
    assert code == 1
    assert "unknown environment 'qa'; known: development, staging, production" in output


def test_missing_folder() -> None:
    code, output = run("/nonexistent/catalog")
    assert code == 1
    assert "catalog folder /nonexistent/catalog does not exist" in output


def test_markup_in_messages_is_printed_literally(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(DATA / "minimal", root)
    (root / "config" / "prod.yaml").write_text("db:\n  password: secret+[bold]x[/bold]\n", encoding="utf-8")
    code, output = run(str(root))
    assert code == 1
    assert "secret reference '[bold]x[/bold]'" in output


def test_the_command_module_imports_nothing_heavy() -> None:
    """``envsteward --help`` imports every command module: this one must not load the catalog machinery."""
    script = (
        "import sys, envsteward.cli.validate\n"
        "print(sorted(m for m in ('pydantic', 'ruamel', 'rich', 'envsteward.catalog') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_problems_print_without_markup_or_emoji(tmp_path: Path) -> None:
    """``environments.yaml:100:`` is a line number, not the 💯 emoji; ``[bold]`` in a name is text."""
    root = tmp_path / "catalog"
    shutil.copytree(DATA / "minimal", root)
    envs = root / "environments.yaml"
    lines = envs.read_text(encoding="utf-8").splitlines()
    lines[1:1] = [f"  # padding {i}" for i in range(99 - len(lines))]
    lines.append("    tier_typo: 1")
    lines.append('    "[bold]x[/bold]:thumbs_up:": 1')
    envs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = run(str(root))
    assert code == 1
    assert "catalog/environments.yaml:100: environments[1].tier_typo: unknown field 'tier_typo'" in output
    assert "environments.yaml:101: " in output
    assert "unknown field '[bold]x[/bold]:thumbs_up:'" in output
    assert "💯" not in output
    assert "👍" not in output


def test_cli_errors_print_as_plain_text(tmp_path: Path) -> None:
    """An error message goes to stderr as it is: no markup eaten, no emoji made."""
    script = "from envsteward.cli._common import fail\nfail('file a.yaml:100: [bold]x[/bold] :thumbs_up:')\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: file a.yaml:100: [bold]x[/bold] :thumbs_up:"
