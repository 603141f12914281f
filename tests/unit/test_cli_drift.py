"""``envsteward drift diff``: exit codes 0/2/1, JSON shape, human table, clear errors naming file and line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsteward.cli.main import app

SEEDED = "Seeded-Secret-Value-77"
runner = CliRunner()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _invoke(*args: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (wide, so rich does not fold long paths; whitespace runs collapsed)."""
    result = runner.invoke(app, ["drift", "diff", *map(str, args)], env={"COLUMNS": "400"})
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.fixture
def docs(tmp_path: Path) -> tuple[Path, Path, Path]:
    desired = _write(
        tmp_path,
        "desired.yaml",
        "replicas: 3\nflag: true\ndb:\n  host: db\n  password: old-" + SEEDED + "\nservices:\n"
        "  - name: api\n    port: 80\n  - name: web\n    port: 81\n",
    )
    live = _write(
        tmp_path,
        "live.json",
        json.dumps(
            {
                "replicas": 3,
                "flag": 1,
                "db": {"host": "db", "password": SEEDED},
                "services": [{"name": "web", "port": 81}, {"name": "api", "port": 8080}],
                "extra": "x",
            }
        ),
    )
    rules = _write(
        tmp_path,
        "rules.yaml",
        "list_keys:\n  - path: services\n    key: name\n"
        "severity:\n  - path: services[*].port\n    severity: critical\n",
    )
    return desired, live, rules


def test_no_drift_exits_0(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "a: 1\nb: [1, 2]\n")
    b = _write(tmp_path, "b.json", '{"b": [1, 2], "a": 1}')
    code, out, _ = _invoke(a, b)
    assert code == 0, out
    assert "No drift" in out
    code, out, _ = _invoke(a, b, "--json")
    assert code == 0
    assert json.loads(out)["summary"]["total"] == 0


def test_drift_exits_2_with_json_report(docs: tuple[Path, Path, Path]) -> None:
    desired, live, rules = docs
    code, out, _ = _invoke(desired, live, "--rules", rules, "--json")
    assert code == 2
    report = json.loads(out)
    assert set(report) >= {"items", "summary"}
    items = {item["path"]: item for item in report["items"]}
    assert set(items) == {"flag", "db.password", "services[name=api].port", "extra"}
    for item in report["items"]:
        assert {"path", "kind", "severity", "desired", "live", "origin", "healable", "fingerprint"} <= set(
            item
        )
    assert items["flag"]["kind"] == "type_changed"
    assert items["flag"]["origin"] == f"{desired}:2"
    assert items["services[name=api].port"]["severity"] == "critical"
    assert items["services[name=api].port"]["origin"] == f"{desired}:8"
    assert items["db.password"]["desired"] == "<redacted>"
    assert report["summary"]["total"] == 4
    assert report["summary"]["by_severity"]["critical"] == 1
    assert report["summary"]["by_kind"] == {"added": 1, "removed": 0, "changed": 2, "type_changed": 1}
    assert SEEDED not in out


def test_human_output_is_a_table_without_secrets(docs: tuple[Path, Path, Path]) -> None:
    desired, live, rules = docs
    code, out, _ = _invoke(desired, live, "--rules", rules)
    assert code == 2
    assert "services[name=api].port" in out
    assert "critical" in out
    assert "type_changed" in out
    assert "4 drift item(s)" in out
    assert SEEDED not in out


def test_bad_yaml_names_file_and_line(tmp_path: Path, docs: tuple[Path, Path, Path]) -> None:
    _, live, _ = docs
    bad = _write(tmp_path, "bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    code, out, err = _invoke(bad, live)
    assert code == 1
    assert "bad.yaml: line 3" in err
    assert "invalid YAML" in err
    assert out == ""


def test_bad_json_names_file_and_line(tmp_path: Path, docs: tuple[Path, Path, Path]) -> None:
    desired, _, _ = docs
    bad = _write(tmp_path, "bad.json", '{\n  "a": 1,\n  "b": 2,\n}\n')
    code, _, err = _invoke(desired, bad)
    assert code == 1
    assert "bad.json: line 4" in err
    assert "invalid JSON" in err


def test_missing_file_is_an_error_not_drift(tmp_path: Path, docs: tuple[Path, Path, Path]) -> None:
    desired, _, _ = docs
    code, _, err = _invoke(desired, tmp_path / "nope.json")
    assert code == 1
    assert "nope.json: no such file" in err


@pytest.mark.parametrize(
    ("rules_text", "expected"),
    [
        ("severity:\n  - path: a\n    severity: urgent\n", r"line 3: field severity\[0\]\.severity"),
        ("ignore:\n  - path: a..b\n    reason: r\n", r"line 2: field ignore\[0\]\.path"),
        ("ignore:\n  - path: a\n", r"field ignore\[0\]\.reason"),
        ("colour: blue\n", r"line 1: field colour"),
    ],
)
def test_bad_rules_name_the_field(
    tmp_path: Path, docs: tuple[Path, Path, Path], rules_text: str, expected: str
) -> None:
    desired, live, _ = docs
    rules = _write(tmp_path, "bad-rules.yaml", rules_text)
    code, out, err = _invoke(desired, live, "--rules", rules)
    assert code == 1, out
    assert "bad-rules.yaml" in err
    assert re.search(expected, err), err


def test_usage_errors_exit_1_never_2(docs: tuple[Path, Path, Path]) -> None:
    desired, _, _ = docs
    code, _, _ = _invoke(desired)
    assert code == 1
    code, _, _ = _invoke(desired, desired, "--no-such-option")
    assert code == 1


def test_environment_option_applies_per_environment_ignores(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "x: 1\n")
    b = _write(tmp_path, "b.yaml", "x: 2\n")
    rules = _write(
        tmp_path, "r.yaml", "ignore:\n  - path: x\n    reason: hotfix\n    environments: [staging]\n"
    )
    assert _invoke(a, b, "--rules", rules)[0] == 2
    assert _invoke(a, b, "--rules", rules, "-e", "staging")[0] == 0


def test_help_stays_fast_and_does_not_import_the_engine() -> None:
    code = (
        "import sys, envsteward.cli.main\n"
        "heavy = ('envsteward.drift.engine', 'deepdiff', 'rich.table')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "envsteward.drift.engine" not in out


# ---------------------------------------------------------------------------------------------------------
# envsteward drift scan (file sources only: no servers needed)
# ---------------------------------------------------------------------------------------------------------

SCAN_SECRET = "Scan-Seeded-Api-Key-31"
SCAN_SECRETS = {"development": SCAN_SECRET + "-dev", "staging": SCAN_SECRET}


def _scan_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "config").mkdir(parents=True)
    (root / "live").mkdir()
    (root / "catalog.yaml").write_text("platform: clitest\nbase: [config/base.yaml]\n")
    (root / "config" / "base.yaml").write_text("app:\n  workers: 4\n  mode: fast\n")
    (root / "policies.yaml").write_text(
        "drift:\n  severity:\n    - {path: app.mode, severity: high}\n"
        "  heal: {enabled: false, max_severity: medium}\n"
    )
    envs = []
    for name, nxt in (("development", "staging"), ("staging", None)):
        (root / "config" / f"{name}.yaml").write_text(
            f"app:\n  api_key: secret+env://ENVSTEWARD_TEST_SCAN_KEY_{name.upper()}\n"
        )
        (root / "live" / f"{name}.json").write_text(
            json.dumps({"workers": 4, "mode": "fast", "api_key": SCAN_SECRETS[name]})
        )
        source = {
            "name": "app",
            "kind": "file",
            "path": f"live/{name}.json",
            "mount_at": "app",
            "writable": True,
        }
        env = {"name": name, "tier": name, "sources": [source], "overlays": [f"config/{name}.yaml"]}
        if nxt:
            env["promotes_to"] = nxt
        else:
            env["approval"] = {"approvers": ["alice"]}
        envs.append(env)
    (root / "environments.yaml").write_text(json.dumps({"environments": envs}))
    return root


def _scan(tmp_path: Path, *args: object) -> tuple[int, str, str]:
    result = runner.invoke(
        app,
        ["drift", "scan", "--catalog", str(tmp_path / "catalog"), *map(str, args)],
        env={
            "COLUMNS": "400",
            "ENVSTEWARD_HOME": str(tmp_path / "home"),
            "ENVSTEWARD_TEST_SCAN_KEY_DEVELOPMENT": SCAN_SECRETS["development"],
            "ENVSTEWARD_TEST_SCAN_KEY_STAGING": SCAN_SECRETS["staging"],
            "ENVSTEWARD_ACTOR": "cli-test",
        },
    )
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_scan_exit_codes_follow_the_threshold(tmp_path: Path) -> None:
    root = _scan_catalog(tmp_path)
    code, out, err = _scan(tmp_path)
    assert code == 0, out + err
    assert "development" in out
    assert "parity" in out
    # the same secret in both environments is a critical parity finding
    os_env = {"ENVSTEWARD_TEST_SCAN_KEY_DEVELOPMENT": SCAN_SECRET}
    reused = runner.invoke(
        app,
        ["drift", "scan", "--catalog", str(root), "--json"],
        env={
            "ENVSTEWARD_HOME": str(tmp_path / "home"),
            "ENVSTEWARD_TEST_SCAN_KEY_STAGING": SCAN_SECRET,
            **os_env,
        },
    )
    assert reused.exit_code == 2
    (finding,) = json.loads(reused.stdout)["parity"]["development<->staging"]["report"]["items"]
    assert (finding["kind"], finding["severity"]) == ("secret_reused", "critical")
    assert SCAN_SECRET not in reused.stdout
    live = root / "live" / "staging.json"
    live.write_text(json.dumps({"workers": 4.0, "mode": "fast", "api_key": SCAN_SECRET}))  # a type trap
    code, out, _ = _scan(tmp_path, "--json")
    assert code == 2
    result = json.loads(out)
    (item,) = result["environments"]["staging"]["report"]["items"]
    assert (item["path"], item["kind"], item["severity"]) == ("app.workers", "type_changed", "medium")
    assert _scan(tmp_path, "--fail-on", "high")[0] == 0, "medium drift under a high threshold"
    assert _scan(tmp_path, "--fail-on", "medium")[0] == 2
    code, _, err = _scan(tmp_path, "--fail-on", "severe")
    assert code == 1
    assert "not a severity" in err
    code, _, err = _scan(tmp_path, "--env", "prod")
    assert code == 1
    assert "unknown environment" in err


def test_scan_secret_drift_is_redacted_and_an_unreadable_source_is_an_error(tmp_path: Path) -> None:
    root = _scan_catalog(tmp_path)
    (root / "live" / "development.json").write_text(
        json.dumps({"workers": 4, "mode": "fast", "api_key": "other"})
    )
    code, out, _ = _scan(tmp_path, "--json", "--env", "development")
    assert code == 2
    (item,) = json.loads(out)["environments"]["development"]["report"]["items"]
    assert item["path"] == "app.api_key"
    assert item["secret"]
    assert item["severity"] == "high"
    assert SCAN_SECRET not in out
    assert '"other"' not in out
    (root / "live" / "staging.json").unlink()
    code, out, err = _scan(tmp_path, "--env", "staging")
    assert code == 1
    assert "staging could not be scanned" in err
    assert "app" in err
    assert SCAN_SECRET not in out + err


def test_scan_heal_writes_back_items_at_or_below_the_threshold_only(tmp_path: Path) -> None:
    root = _scan_catalog(tmp_path)
    live = root / "live" / "staging.json"
    live.write_text(json.dumps({"workers": 9, "mode": "slow", "api_key": SCAN_SECRET}))
    before = live.read_bytes()
    assert _scan(tmp_path, "--env", "staging")[0] == 2
    assert live.read_bytes() == before, "a scan without --heal wrote to the source"
    code, out, _ = _scan(tmp_path, "--env", "staging", "--heal", "--json")
    assert code == 2  # the high item stays open
    outcomes = {o["path"]: o["result"] for o in json.loads(out)["heal"]["outcomes"]}
    assert outcomes == {"app.workers": "healed", "app.mode": "not_approved"}
    assert json.loads(live.read_text()) == {"workers": 4, "mode": "slow", "api_key": SCAN_SECRET}
    audit = (tmp_path / "home" / "audit" / "audit.jsonl").read_text()
    assert '"drift.healed"' in audit
    assert SCAN_SECRET not in audit
