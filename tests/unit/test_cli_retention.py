"""``envsteward retention preview`` through typer's CliRunner: output shapes, exit codes, error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.cli.main import app
from envsteward.retention import (
    DEFAULT_POLICY,
    RetentionPolicy,
    apply_retention,
    backups_from_json,
    parse_rfc3339,
)

BACKUPS: list[dict[str, Any]] = [
    {"id": "n", "time": "2024-06-12T10:00:00Z"},
    {"id": "m", "time": "2024-06-12T08:00:00Z", "verified_by_drill": True},
    {"id": "l", "time": "2024-06-11T23:30:00-05:00"},
    {"id": "k", "time": "2024-06-10T08:00:00Z"},
    {"id": "j", "time": "2024-05-01T08:00:00Z"},
]
NOW = "2024-06-13T00:00:00Z"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(tmp_path: Path, data: Any, name: str = "backups.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _preview(runner: CliRunner, path: Path | str, *options: str, stdin: str | None = None) -> Any:
    return runner.invoke(
        app, ["retention", "preview", "--input", str(path), "--now", NOW, *options], input=stdin
    )


def test_json_output_has_exactly_the_documented_shape(runner: CliRunner, tmp_path: Path) -> None:
    result = _preview(runner, _write(tmp_path, BACKUPS), "--keep-daily", "2", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "keep": ["n", "m", "l"],
        "remove": ["k", "j"],
        "reasons": {
            "n": ["daily snapshot", "newest backup (safety floor)"],
            "l": ["daily snapshot"],
            "m": ["newest drill-verified backup (safety floor)"],
        },
    }
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("options", "policy"),
    [
        (["--keep-last", "2", "--keep-weekly", "-1"], RetentionPolicy(last=2, weekly=-1)),
        (["--keep-monthly", "unlimited", "--keep-yearly", "1"], RetentionPolicy(monthly=-1, yearly=1)),
        (["--keep-hourly=3", "--keep-within", "1d"], RetentionPolicy(hourly=3, within="1d")),
        (
            ["--keep-within-hourly", "12h", "--keep-within-daily", "3d", "--keep-within-weekly", "1m"],
            RetentionPolicy(within_hourly="12h", within_daily="3d", within_weekly="1m"),
        ),
        (
            ["--keep-within-monthly", "1y", "--keep-within-yearly", "5y"],
            RetentionPolicy(within_monthly="1y", within_yearly="5y"),
        ),
        (["--default-policy"], DEFAULT_POLICY),
    ],
)
def test_every_option_reaches_the_policy(
    runner: CliRunner, tmp_path: Path, options: list[str], policy: RetentionPolicy
) -> None:
    result = _preview(runner, _write(tmp_path, BACKUPS), *options, "--json")

    assert result.exit_code == 0, result.output
    expected = apply_retention(backups_from_json(BACKUPS), policy, now=parse_rfc3339(NOW))
    assert json.loads(result.stdout) == expected.as_json()


def test_human_output_is_a_table_with_every_backup(runner: CliRunner, tmp_path: Path) -> None:
    result = _preview(runner, _write(tmp_path, BACKUPS), "--keep-daily", "2")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "retention preview: keep 3, remove 2" in out
    for header in ("id", "time", "decision", "reasons"):
        assert header in out
    assert "2024-06-11T23:30:00-05:00" in out  # shown in its own offset
    assert out.count("keep") >= 3 + 1  # three rows and the title
    assert out.count("remove") >= 2 + 1
    assert "daily snapshot" in out
    assert "keep 2 daily" in out  # the policy, as a caption


def test_ids_are_printed_literally_not_as_markup(runner: CliRunner, tmp_path: Path) -> None:
    data = [{"id": "[bold]x[/bold]", "time": "2024-06-12T10:00:00Z"}]
    result = _preview(runner, _write(tmp_path, data), "--keep-last", "1")

    assert result.exit_code == 0, result.output
    assert "[bold]x[/bold]" in result.stdout


def test_no_keep_option_keeps_everything_and_says_so(runner: CliRunner, tmp_path: Path) -> None:
    result = _preview(runner, _write(tmp_path, BACKUPS), "--json")

    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["remove"] == []
    assert decision["keep"] == ["n", "m", "l", "k", "j"]
    assert all("empty policy keeps everything" in reasons for reasons in decision["reasons"].values())
    assert "the policy is empty" in result.stderr
    assert "--default-policy" in result.stderr


def test_zero_values_also_make_an_empty_policy(runner: CliRunner, tmp_path: Path) -> None:
    result = _preview(runner, _write(tmp_path, BACKUPS), "--keep-daily", "0", "--keep-within", "0d", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["remove"] == []
    assert "the policy is empty" in result.stderr


def test_stdin_input(runner: CliRunner) -> None:
    result = _preview(runner, "-", "--keep-last", "1", "--json", stdin=json.dumps(BACKUPS))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keep"] == ["n", "m"]


def test_now_decides_what_is_in_the_future(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, BACKUPS)
    # At 2024-06-12T09:00Z, n (10:00Z) is in the future: keep-within 1h is measured from m (08:00Z).
    result = runner.invoke(
        app,
        [
            "retention",
            "preview",
            "--input",
            str(path),
            "--keep-within",
            "1h",
            "--now",
            "2024-06-12T09:00:00Z",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reasons"]["m"] == [
        "within 1h",
        "newest drill-verified backup (safety floor)",
    ]


@pytest.mark.parametrize(
    ("data", "options", "fragments"),
    [
        ({"id": "a"}, [], ["expected a JSON list"]),
        ([{"time": "2024-06-12T10:00:00Z"}], [], ["entry 0", "missing 'id'"]),
        ([{"id": "a", "time": "2024-06-12T10:00:00Z"}, {"id": "b"}], [], ["entry 1", "missing 'time'"]),
        ([{"id": "a", "time": "12/06/2024"}], [], ["entry 0", "'time'", "RFC 3339"]),
        ([{"id": "a", "time": "2024-06-12T10:00:00"}], [], ["entry 0", "UTC offset"]),
        (
            [{"id": "a", "time": "2024-06-12T10:00:00Z"}, {"id": "a", "time": "2024-06-11T10:00:00Z"}],
            [],
            ["entry 1", "duplicate id 'a'", "entry 0"],
        ),
        (
            [{"id": "a", "time": "2024-06-12T10:00:00Z", "verifed": True}],
            [],
            ["entry 0", "unknown key", "verifed"],
        ),
        (BACKUPS, ["--keep-within", "1x"], ["--keep-within", "unknown unit 'x'"]),
        (BACKUPS, ["--keep-within-daily", "-3d"], ["--keep-within-daily", "negative"]),
        (BACKUPS, ["--keep-daily", "-2"], ["--keep-daily", "negative values other than -1"]),
        (BACKUPS, ["--keep-yearly", "many"], ["--keep-yearly", "whole number"]),
        (BACKUPS, ["--default-policy", "--keep-last", "1"], ["--default-policy", "cannot be combined"]),
    ],
)
def test_bad_input_is_a_clear_error_and_exit_1(
    runner: CliRunner, tmp_path: Path, data: Any, options: list[str], fragments: list[str]
) -> None:
    result = _preview(runner, _write(tmp_path, data), *options, "--json")

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert message.startswith("error:")
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in result.output


def test_missing_file_and_broken_json(runner: CliRunner, tmp_path: Path) -> None:
    missing = _preview(runner, tmp_path / "nope.json", "--keep-last", "1")
    assert missing.exit_code == 1
    assert "nope.json" in missing.stderr
    assert "cannot read" in missing.stderr

    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"id": "a",\n', encoding="utf-8")
    result = _preview(runner, broken, "--keep-last", "1")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "broken.json" in message
    assert "not valid JSON" in message
    assert "line 3" in message


def test_bad_now(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, BACKUPS)
    result = runner.invoke(app, ["retention", "preview", "--input", str(path), "--now", "tomorrow"])
    assert result.exit_code == 1
    assert "--now" in result.stderr


def test_input_is_required(runner: CliRunner) -> None:
    result = runner.invoke(app, ["retention", "preview", "--keep-last", "1"])
    assert result.exit_code == 2  # click's usage error
    assert "--input" in result.output


def test_importing_the_cli_module_stays_light() -> None:
    import subprocess
    import sys

    script = (
        "import sys, envsteward.cli.retention\n"
        "print(','.join(m for m in ('envsteward.retention', 'pydantic', 'rich.table') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
