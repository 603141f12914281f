"""The backup runner end to end: every source kind x every key provider x both stores, through the catalog,
the encrypted pipeline, the DR replica and back; and an interrupted upload that must leave nothing behind.

Real services: the machine's PostgreSQL, OpenBao (KV v2 + transit), moto S3/SSM/KMS in two regions,
local folders. The helpers at the top are shared with ``test_backup_replica_prune.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envsteward.backup import data_object_key, manifest_object_key, read_manifest, restore_backup
from envsteward.backup.replica import read_replica_record, verify_replica
from envsteward.backup.restore import key_provider_for, restore_stored_backup, verify_stored_backup
from envsteward.backup.runner import plan_backups, run_backup, run_backup_target
from envsteward.backup.sources import base as source_base
from envsteward.backup.stores import BackupStores, backup_stores
from envsteward.catalog import CatalogError
from envsteward.errors import ConfigurationError, TransientError
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, StorageSettings, VaultSettings
from tests.fixtures.aws import DR_REGION, REGION, S3Buckets

MARKER = "zq-known-row-7f3e1c9a-plaintext-marker"
SECRET_VALUE = "s3cr3t-backup-value-4b8e2d"

# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------


def write_catalog(
    folder: Path,
    environments: list[dict[str, Any]],
    *,
    channels: list[dict[str, Any]] | None = None,
    base: dict[str, Any] | None = None,
) -> Path:
    """A catalog in ``folder`` (JSON is YAML); ``base`` becomes the base configuration layer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "base.yaml").write_text(json.dumps(base or {"app": {"name": "shop"}}), "utf-8")
    catalog = {"platform": "backuptest", "base": ["config/base.yaml"], "channels": channels or []}
    (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
    (folder / "environments.yaml").write_text(json.dumps({"environments": environments}), encoding="utf-8")
    return folder


def environment(name: str, backups: list[dict[str, Any]], notify: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "tier": "development", "backups": backups, "notify": notify or []}


@dataclass
class Setup:
    """Everything a test needs to build Services for one store kind."""

    tmp_path: Path
    store: str
    aws: AWSSettings | None = None
    buckets: S3Buckets | None = None
    vault: VaultSettings | None = None

    def services(self, catalog: Path, **overrides: Any) -> Services:
        storage = (
            StorageSettings(kind="s3", bucket=self.buckets.primary, dr_bucket=self.buckets.dr)
            if self.store == "s3" and self.buckets is not None
            else StorageSettings()
        )
        options: dict[str, Any] = {
            "catalog": catalog,
            "home": self.tmp_path / "home",
            "actor": "backup-tests",
            "storage": storage,
        }
        if self.aws is not None:
            options["aws"] = self.aws
        if self.vault is not None:
            options["vault"] = self.vault
        options.update(overrides)
        return Services(Settings(**options))


def all_objects(stores: BackupStores) -> dict[str, list[str]]:
    found = {"primary": [info.key for info in stores.primary.list("")]}
    if stores.dr is not None:
        found["dr"] = [info.key for info in stores.dr.list("")]
    return found


def audit_actions(services: Services) -> list[str]:
    return [record.action for record in services.audit_log().records()]


def audit_text(services: Services) -> str:
    return "\n".join(json.dumps(record.model_dump(mode="json")) for record in services.audit_log().records())


def decrypted(services: Services, stores: BackupStores, backup_id: str) -> bytes:
    manifest = read_manifest(stores.primary, backup_id)
    pieces: list[bytes] = []
    restore_backup(stores.primary, backup_id, key_provider_for(services, manifest), pieces.append)
    return b"".join(pieces)


def pg_url(dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{dbname}"


def dbname_of(dsn: str) -> str:
    return dsn.split("dbname=")[1].split(maxsplit=1)[0]


@pytest.fixture
def scratch_database(postgres_dsn_base: str) -> Iterator[Callable[[], str]]:
    """A factory of empty databases (names), all dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"envsteward_restore_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def setup_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str, bool], Setup]:
    """``(store kind, needs vault) -> Setup``; starts only the servers a case needs."""

    def make(store: str, vault: bool) -> Setup:
        setup = Setup(tmp_path=tmp_path, store=store, aws=request.getfixturevalue("aws_settings"))
        if store == "s3":
            setup.buckets = request.getfixturevalue("s3_buckets")
        if vault:
            setup.vault = request.getfixturevalue("vault_settings")
        return setup

    return make


# ---------------------------------------------------------------------------------------------------------
# source kinds: seed -> catalog target -> destination -> check
# ---------------------------------------------------------------------------------------------------------


class Case:
    """One source kind: how to seed it, describe it in the catalog, where to restore and how to check."""

    kind = ""
    needs_vault = False

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    def target(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def base(self) -> dict[str, Any] | None:
        return None

    def destination(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self, destination: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class PostgresCase(Case):
    kind = "postgres"

    def target(self) -> dict[str, Any]:
        dsn = self.request.getfixturevalue("postgres_db")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO customers VALUES (1, %s), (2, 'plain')", (MARKER,))
        return {"name": "orders-db", "kind": "postgres", "dsn": pg_url(dbname_of(dsn))}

    def destination(self) -> str:
        return pg_url(self.request.getfixturevalue("scratch_database")())

    def check(self, destination: str) -> None:
        with psycopg.connect(destination) as conn:
            rows = conn.execute("SELECT id, note FROM customers ORDER BY id").fetchall()
        assert rows == [(1, MARKER), (2, "plain")]


class SqliteCase(Case):
    kind = "sqlite"

    def target(self) -> dict[str, Any]:
        path = self.tmp_path / "app.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            conn.execute("INSERT INTO notes VALUES (1, ?)", (MARKER,))
        conn.close()
        return {"name": "app-db", "kind": "sqlite", "path": str(path)}

    def destination(self) -> str:
        return str(self.tmp_path / "restored.db")

    def check(self, destination: str) -> None:
        conn = sqlite3.connect(destination)
        try:
            assert conn.execute("SELECT body FROM notes").fetchall() == [(MARKER,)]
        finally:
            conn.close()


class VaultCase(Case):
    kind = "vault_kv"
    needs_vault = True

    def target(self) -> dict[str, Any]:
        self.location = self.request.getfixturevalue("vault_kv_path")
        client = self.request.getfixturevalue("vault_client")
        mount, path = self.location.split("/", 1)
        client.kv_write(mount, f"{path}/db", {"password": SECRET_VALUE, "note": MARKER})
        client.kv_write(mount, f"{path}/cache/redis", {"url": "redis://cache"})
        return {"name": "vault-app", "kind": "vault_kv", "path": self.location}

    def destination(self) -> str:
        return f"vault://{self.location}-restored"

    def check(self, destination: str) -> None:
        client = self.request.getfixturevalue("vault_client")
        mount, path = destination.removeprefix("vault://").split("/", 1)
        try:
            assert client.kv_read(mount, f"{path}/db").data == {"password": SECRET_VALUE, "note": MARKER}
            assert client.kv_read(mount, f"{path}/cache/redis").data == {"url": "redis://cache"}
        finally:
            for relative in ("db", "cache/redis"):
                client.kv_delete_all(mount, f"{path}/{relative}")


class SSMCase(Case):
    kind = "ssm"

    def target(self) -> dict[str, Any]:
        clients = self.request.getfixturevalue("aws_clients")
        self.prefix = f"/{self.request.getfixturevalue('aws_name_prefix')}/app"
        ssm = clients.ssm(REGION)
        ssm.put_parameter(Name=f"{self.prefix}/db/password", Value=SECRET_VALUE, Type="SecureString")
        ssm.put_parameter(Name=f"{self.prefix}/note", Value=MARKER, Type="String")
        return {"name": "ssm-params", "kind": "ssm", "prefix": self.prefix + "/", "region": None}

    def destination(self) -> str:
        return f"ssm://{self.prefix}-restored"

    def check(self, destination: str) -> None:
        clients = self.request.getfixturevalue("aws_clients")
        prefix = destination.removeprefix("ssm://")
        ssm = clients.ssm(REGION)
        password = ssm.get_parameter(Name=f"{prefix}/db/password", WithDecryption=True)["Parameter"]
        assert password["Value"] == SECRET_VALUE
        assert password["Type"] == "SecureString"
        assert ssm.get_parameter(Name=f"{prefix}/note")["Parameter"]["Value"] == MARKER


class ConfigCase(Case):
    kind = "config"

    def target(self) -> dict[str, Any]:
        return {"name": "config-snapshot", "kind": "config"}

    def base(self) -> dict[str, Any]:
        return {"app": {"name": "shop", "marker": MARKER, "password": "secret+env://NOT_RESOLVED_EVER"}}

    def destination(self) -> str:
        return str(self.tmp_path / "snapshot.json")

    def check(self, destination: str) -> None:
        document = json.loads(Path(destination).read_text(encoding="utf-8"))
        assert document["environment"] == "dev"
        assert document["data"]["app"]["marker"] == MARKER
        assert document["secret_refs"] == {"app.password": "env://NOT_RESOLVED_EVER"}


CASES = {case.kind: case for case in (PostgresCase, SqliteCase, VaultCase, SSMCase, ConfigCase)}
PROVIDERS = ("local", "vault_transit", "aws_kms")


def key_settings(provider: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if provider == "vault_transit":
        return {
            "key_provider": "vault_transit",
            "key_id": request.getfixturevalue("vault_server").transit_key,
        }
    if provider == "aws_kms":
        return {"key_provider": "aws_kms", "key_id": request.getfixturevalue("kms_key_id")}
    return {"key_provider": "local"}


# ---------------------------------------------------------------------------------------------------------
# the matrix
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["filesystem", "s3"])
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", sorted(CASES))
def test_round_trip_through_the_runner_replica_and_restore(  # noqa: PLR0917
    kind: str,
    provider: str,
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    setup_for: Callable[[str, bool], Setup],
) -> None:
    case = CASES[kind](request, tmp_path)
    setup = setup_for(store, case.needs_vault or provider == "vault_transit")
    target = {**case.target(), **key_settings(provider, request), "replica_region": DR_REGION}
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [target])], base=case.base())
    services = setup.services(catalog)

    (planned,) = plan_backups(services.catalog(), "dev")
    result = run_backup_target(services, planned)
    assert result.status == "ok", result.error
    assert result.replica_status == "ok"
    assert result.backup is not None
    assert result.replica is not None
    backup_id = result.backup.backup_id
    assert backup_id.startswith(f"dev/{target['name']}/")
    assert result.replica.lag_seconds >= 0
    stores = backup_stores(services)
    assert read_replica_record(stores.primary, backup_id)["lag_seconds"] == result.replica.lag_seconds

    manifest = read_manifest(stores.primary, backup_id)
    assert manifest.extra["key_provider"] == provider
    assert manifest.source.kind == kind
    for region_store in (stores.primary, stores.dr):
        assert region_store is not None
        stored = region_store.get_bytes(data_object_key(backup_id))
        assert MARKER.encode() not in stored, "plaintext of a known row in the stored object"
        assert SECRET_VALUE.encode() not in stored
    # ...while the decrypted stream does hold it, so the check above could fail.
    assert MARKER.encode() in decrypted(services, stores, backup_id)
    verify_replica(stores.primary, stores.dr, backup_id)
    verify_stored_backup(services, stores.dr, backup_id)

    destination = case.destination()
    outcome = restore_stored_backup(services, stores.dr, backup_id, destination)  # from the DR replica
    assert outcome.table_mismatches == ()
    case.check(destination)

    actions = audit_actions(services)
    assert actions.count("backup.completed") == 1
    assert actions.count("backup.replicated") == 1
    audit = audit_text(services)
    assert backup_id in audit
    assert SECRET_VALUE not in audit
    assert MARKER not in audit


# ---------------------------------------------------------------------------------------------------------
# failures
# ---------------------------------------------------------------------------------------------------------

PART = 8 * 1024 * 1024


class _FailingStream(source_base.DumpStream):
    """Yields a bit more than one S3 part of incompressible data, then fails like a dropped connection."""

    def _open(self) -> None:
        self._consistent_at = source_base.utcnow()

    def _chunks(self) -> Iterator[bytes]:
        for _ in range(PART // (1 << 20) + 2):
            yield os.urandom(1 << 20)
        raise TransientError("connection to the database was lost", system="test", operation="dump")

    def _close(self) -> None:
        pass


class _FailingSource:
    kind = "sqlite"

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}

    def dump(self) -> _FailingStream:
        return _FailingStream(self.kind, self.name)


@pytest.mark.parametrize("store", ["filesystem", "s3"])
def test_a_source_failing_mid_upload_leaves_no_backup_no_object_no_multipart_upload(
    store: str,
    tmp_path: Path,
    setup_for: Callable[[str, bool], Setup],
    monkeypatch: pytest.MonkeyPatch,
    aws_clients: Any,
) -> None:
    setup = setup_for(store, False)
    target = {"name": "app-db", "kind": "sqlite", "path": "/nonexistent.db", "replica_region": DR_REGION}
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [target])])
    services = setup.services(catalog)
    # the runner builds its source through services.backup_source (the registry's seam)
    monkeypatch.setattr(services, "backup_source", lambda spec, env: _FailingSource(spec.name))

    with pytest.raises(TransientError, match="connection to the database was lost"):
        run_backup(services, "dev", "app-db")

    stores = backup_stores(services)
    backup_objects = [key for keys in all_objects(stores).values() for key in keys if key.startswith("dev/")]
    assert backup_objects == [], "an interrupted backup left objects behind"
    if store == "s3":
        assert setup.buckets is not None
        uploads = aws_clients.s3(REGION).list_multipart_uploads(Bucket=setup.buckets.primary)
        assert uploads.get("Uploads", []) == [], "an aborted upload left parts behind"
    else:
        leftovers = [p for p in (tmp_path / "home" / "objects").rglob("*") if p.is_file()]
        assert leftovers == [], leftovers
    assert "backup.failed" in audit_actions(services)
    assert "backup.completed" not in audit_actions(services)

    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "failed"
    assert result.replica_status == "skipped"
    assert result.error is not None
    assert "connection to the database was lost" in result.error


def test_a_replica_without_a_dr_store_fails_the_target_but_keeps_the_backup(
    tmp_path: Path, setup_for: Callable[[str, bool], Setup]
) -> None:
    setup = setup_for("s3", False)
    assert setup.buckets is not None
    target = {"name": "config-snapshot", "kind": "config", "replica_region": DR_REGION}
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [target])])
    services = setup.services(catalog, storage=StorageSettings(kind="s3", bucket=setup.buckets.primary))

    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "failed"
    assert result.backup is not None
    assert result.replica_status == "failed"
    assert result.error is not None
    assert "storage.dr_bucket" in result.error
    stores = backup_stores(services)
    assert stores.primary.head(manifest_object_key(result.backup.backup_id)) is not None
    records = list(services.audit_log().records())
    failed = [r for r in records if r.action == "backup.failed"]
    assert failed
    assert failed[0].details["stage"] == "replica"


def test_regions_that_do_not_match_the_buckets_are_refused(
    tmp_path: Path, setup_for: Callable[[str, bool], Setup]
) -> None:
    setup = setup_for("s3", False)
    target = {"name": "cfg", "kind": "config", "region": "us-east-1"}
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [target])])
    services = setup.services(catalog)
    with pytest.raises(ConfigurationError, match=r"us-east-1.*aws.region=eu-west-1"):
        run_backup(services, "dev", "cfg")


def test_unknown_environment_and_target_are_clear(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [{"name": "cfg", "kind": "config"}])])
    services = Setup(tmp_path=tmp_path, store="filesystem").services(catalog)
    with pytest.raises(CatalogError, match="unknown environment 'prod'; known: dev"):
        plan_backups(services.catalog(), "prod")
    with pytest.raises(ConfigurationError, match=r"no backup target 'db'.*known targets: dev/cfg"):
        plan_backups(services.catalog(), "dev", "db")
    assert [p.label() for p in plan_backups(services.catalog())] == ["dev/cfg"]


def test_backup_ids_are_unique_per_run(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog", [environment("dev", [{"name": "cfg", "kind": "config"}])])
    services = Setup(tmp_path=tmp_path, store="filesystem").services(catalog)
    first = run_backup(services, "dev", "cfg")
    second = run_backup(services, "dev", "cfg")
    assert first.backup_id != second.backup_id
    assert first.stored_bytes > 0
    assert first.as_json()["sizes"]["plaintext"] == first.plaintext_bytes
