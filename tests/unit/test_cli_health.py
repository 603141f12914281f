"""``envsteward health``: runs the catalog's checks directly (no Prefect) against loopback services."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from envsteward.cli import health as health_cli
from tests.fixtures._proc import free_port

SEEDED_SECRET = "s3ed3d-cli-health-password-41c9"
PASSWORD_ENV = "ENVSTEWARD_TEST_CLI_HEALTH_PG_PASSWORD"

runner = CliRunner()
app = typer.Typer()
health_cli.register(app)


@app.callback()
def _root() -> None:
    """Keep ``health`` a subcommand, as in cli/main.py."""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.2)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    monkeypatch.setenv("ENVSTEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv(PASSWORD_ENV, SEEDED_SECRET)
    return tmp_path


def write_catalog(folder: Path, dev_checks: list[dict[str, Any]], prod_checks: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "clitest"}), encoding="utf-8")
    envs = [
        {
            "name": "development",
            "tier": "development",
            "promotes_to": "production",
            "health_checks": dev_checks,
        },
        {
            "name": "production",
            "tier": "production",
            "approval": {"approvers": ["alice", "bob"]},
            "health_checks": prod_checks,
        },
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return folder


def healthy_catalog(workdir: Path, http_url: str) -> Path:
    return write_catalog(
        workdir / "catalog",
        [{"kind": "http", "name": "api", "url": f"{http_url}/"}],
        [
            {"kind": "redis", "name": "cache", "url": "redis://127.0.0.1:6379/0"},
            {
                "kind": "postgres",
                "name": "db",
                "dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
                "password": f"secret+env://{PASSWORD_ENV}",
            },
        ],
    )


def test_all_up_prints_a_table_and_exits_0(workdir: Path, http_url: str) -> None:
    result = runner.invoke(app, ["health", "--catalog", str(healthy_catalog(workdir, http_url))])
    assert result.exit_code == 0, result.output
    for word in ("development", "production", "api", "cache", "db", "HTTP 200", "PONG", "query ok"):
        assert word in result.stdout
    assert SEEDED_SECRET not in result.output


def test_json_output(workdir: Path, http_url: str) -> None:
    catalog = healthy_catalog(workdir, http_url)
    result = runner.invoke(app, ["health", "--catalog", str(catalog), "--json", "--env", "production"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "up"
    assert list(data["environments"]) == ["production"]
    assert data["environments"]["production"]["db"]["status"] == "up"
    assert SEEDED_SECRET not in result.output


def test_a_down_check_exits_1(workdir: Path, http_url: str) -> None:
    catalog = write_catalog(
        workdir / "catalog",
        [{"kind": "http", "name": "api", "url": f"http://127.0.0.1:{free_port()}/"}],
        [{"kind": "http", "name": "api", "url": f"{http_url}/"}],
    )
    result = runner.invoke(app, ["health", "--catalog", str(catalog), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["environments"]["development"]["api"] == {
        **data["environments"]["development"]["api"],
        "status": "down",
        "detail": "connection refused",
    }
    assert "1 check(s) down" in result.stderr


def test_degraded_exits_0_with_a_warning(workdir: Path, http_url: str) -> None:
    catalog = write_catalog(
        workdir / "catalog",
        [{"kind": "http", "name": "api", "url": f"{http_url}/slow", "max_latency_ms": 50}],
        [],
    )
    result = runner.invoke(app, ["health", "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    assert "degraded" in result.stdout
    assert "warning: 1 check(s) degraded" in result.stderr


def test_unknown_environment_names_the_known_ones(workdir: Path, http_url: str) -> None:
    catalog = healthy_catalog(workdir, http_url)
    result = runner.invoke(app, ["health", "--catalog", str(catalog), "--env", "prod"])
    assert result.exit_code == 1
    assert "unknown environment(s) 'prod'" in result.stderr
    assert "development, production" in result.stderr
    assert "Traceback" not in result.output


def test_a_broken_catalog_is_one_clear_error(workdir: Path) -> None:
    catalog = write_catalog(workdir / "catalog", [{"kind": "http", "name": "api"}], [])  # no url
    result = runner.invoke(app, ["health", "--catalog", str(catalog)])
    assert result.exit_code == 1
    assert "environments.yaml" in result.stderr
    assert "url" in result.stderr
    assert "Traceback" not in result.output
