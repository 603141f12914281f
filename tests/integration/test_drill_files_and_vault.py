"""DR drills of the other restorable kinds: Vault KV (OpenBao, transit-wrapped keys, moto S3 stores) into a
scratch prefix that is gone afterwards, and SQLite into a scratch file. The seeded secret value appears in
no record, report or audit record."""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.vault import VaultClient
from envsteward.backup import read_manifest
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.stores import backup_stores
from envsteward.drill import DrillStatus, PhaseName, render_markdown, run_drill, table_rows
from envsteward.drill.scratch import VAULT_SCRATCH_FOLDER
from envsteward.services import Services
from tests.fixtures.aws import DR_REGION
from tests.integration.test_backup_runner import Setup, audit_text, write_catalog
from tests.integration.test_drill_postgres import STEP, FakeClock, drill_env

SECRET_VALUE = "vault-drill-secret-3b9f0c2d"


def backed_up(services: Services) -> str:
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    return result.backup.backup_id


def test_a_vault_kv_drill_restores_into_a_scratch_prefix_and_removes_it(
    request: pytest.FixtureRequest, tmp_path: Path, vault_kv_path: str, vault_client: VaultClient
) -> None:
    mount, path = vault_kv_path.split("/", 1)
    vault_client.kv_write(mount, f"{path}/db", {"password": SECRET_VALUE, "user": "app"})
    vault_client.kv_write(mount, f"{path}/cache/redis", {"url": "redis://cache:6379/0"})
    setup = Setup(
        tmp_path=tmp_path,
        store="s3",
        aws=request.getfixturevalue("aws_settings"),
        buckets=request.getfixturevalue("s3_buckets"),
        vault=request.getfixturevalue("vault_settings"),
    )
    target = {
        "name": "vault-app",
        "kind": "vault_kv",
        "path": vault_kv_path,
        "key_provider": "vault_transit",
        "key_id": request.getfixturevalue("vault_server").transit_key,
        "replica_region": DR_REGION,
    }
    services = setup.services(write_catalog(tmp_path / "catalog", [drill_env("prod", [target], {})]))
    backup_id = backed_up(services)
    consistent_at = read_manifest(backup_stores(services).primary, backup_id).consistent_at
    token = secrets.token_hex(4)

    record = run_drill(
        services, "prod", clock=FakeClock(consistent_at + timedelta(minutes=1), STEP), token=token
    )

    assert record.status is DrillStatus.PASSED, (record.failed_phase, record.error)
    assert record.kind == "vault_kv"
    assert record.scratch == f"{mount}/{VAULT_SCRATCH_FOLDER}/envsteward_drill_prod_{token}"
    rows = {(row.kind, row.name): row for row in record.verifications}
    assert rows[("secrets", "restored secrets")].ok
    assert rows[("secrets", "restored secrets")].actual == "2 secret(s) read back"
    assert rows[("health", "vault")].ok
    assert record.scratch_removed is True
    assert list(vault_client.kv_walk(mount, f"{VAULT_SCRATCH_FOLDER}/envsteward_drill_prod_{token}")) == []
    # the source is untouched
    assert vault_client.kv_read(mount, f"{path}/db").data["password"] == SECRET_VALUE
    produced = json.dumps(record.as_json()) + render_markdown(record) + json.dumps(table_rows(record))
    assert SECRET_VALUE not in produced
    assert SECRET_VALUE not in audit_text(services)


def test_a_sqlite_drill_verifies_tables_and_removes_its_scratch_file(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes VALUES (?, ?)", [(1, SECRET_VALUE), (2, "plain")])
    conn.close()
    target: dict[str, Any] = {
        "name": "app-db",
        "kind": "sqlite",
        "path": str(db),
        "replica_region": DR_REGION,
    }
    spec = {"smoke_queries": [{"name": "notes", "sql": "SELECT id FROM notes", "min_rows": 2}]}
    services = Setup(tmp_path=tmp_path, store="filesystem").services(
        write_catalog(tmp_path / "catalog", [drill_env("dev", [target], spec)])
    )
    backup_id = backed_up(services)
    consistent_at = read_manifest(backup_stores(services).primary, backup_id).consistent_at

    record = run_drill(services, "dev", clock=FakeClock(consistent_at + timedelta(seconds=30), STEP))

    assert record.status is DrillStatus.PASSED, (record.failed_phase, record.error)
    rows = {(row.kind, row.name): row for row in record.verifications}
    assert rows[("table", "main.notes")].ok
    assert rows[("table", "main.notes")].expected.startswith("2 rows")
    assert rows[("health", "integrity_check")].ok
    assert rows[("smoke", "notes")].ok
    assert record.scratch is not None
    assert not Path(record.scratch).exists()
    assert record.scratch_removed is True
    assert [phase.name for phase in record.phases] == list(PhaseName)
    assert SECRET_VALUE not in json.dumps(record.as_json())
