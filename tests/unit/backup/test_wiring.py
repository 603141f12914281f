"""The backup package's wiring (issue 10): sources and restore targets are entries of the one adapter
registry, built through ``Services`` with narrow arguments, and the PostgreSQL connection-string helpers
the restore uses live in the adapter."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from envsteward.adapters.postgres import dsn_database, same_server
from envsteward.adapters.registry import BACKUP_SOURCES, RESTORE_TARGETS
from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget, ConfigSnapshotSource
from envsteward.backup.sources.postgres import PostgresRestoreTarget
from envsteward.backup.sources.sqlite import SqliteBackupSource, SqliteRestoreTarget
from envsteward.catalog import ConfigBackup, PostgresBackup, SqliteBackup, models
from envsteward.errors import ConfigurationError, EnvstewardError
from envsteward.services import Services
from envsteward.settings import Settings

MINIMAL = Path(__file__).resolve().parents[2] / "data" / "catalogs" / "minimal"


def _catalog_backup_kinds() -> set[str]:
    classes = get_args(get_args(models.BackupTarget)[0])
    return {kind for cls in classes for kind in get_args(cls.model_fields["kind"].annotation)}


def test_every_catalog_backup_kind_has_a_source_and_a_restore_target() -> None:
    """A kind the catalog accepts but the registry does not serve would fail only when a backup runs."""
    assert set(BACKUP_SOURCES.kinds()) == _catalog_backup_kinds()
    assert set(RESTORE_TARGETS.kinds()) == _catalog_backup_kinds()


def test_services_builds_backup_sources_without_loading_what_they_do_not_need(tmp_path: Path) -> None:
    """A sqlite source needs no catalog and no client; a config snapshot renders the catalog only when
    dumped (so a missing catalog fails there, not when the source is built)."""
    services = Services(Settings(catalog=tmp_path / "no-catalog", home=tmp_path / "home"))
    lite = SqliteBackup(name="app", kind="sqlite", path=str(tmp_path / "app.db"))
    assert isinstance(services.backup_source(lite, "prod"), SqliteBackupSource)
    config = services.backup_source(ConfigBackup(name="config", kind="config"), "prod")
    assert isinstance(config, ConfigSnapshotSource)
    with pytest.raises(EnvstewardError), config.dump() as stream:
        b"".join(stream)


def test_services_builds_restore_targets_from_the_registry(tmp_path: Path) -> None:
    services = Services(Settings(catalog=MINIMAL, home=tmp_path / "home"))
    lite = SqliteBackup(name="app", kind="sqlite", path="/srv/app.db")
    assert isinstance(services.restore_target(lite, str(tmp_path / "copy.db")), SqliteRestoreTarget)
    config = services.restore_target(ConfigBackup(name="c", kind="config"), str(tmp_path / "c.json"))
    assert isinstance(config, ConfigSnapshotRestoreTarget)
    pg = PostgresBackup(name="db", kind="postgres", dsn="postgresql://backup@db.internal:6432/orders")
    target = services.restore_target(pg, "scratch_0412")
    assert isinstance(target, PostgresRestoreTarget)
    assert target.client.target == "db.internal:6432/scratch_0412"
    with pytest.raises(ConfigurationError, match="no overwrite"):
        services.restore_target(pg, "scratch_0412", overwrite=True)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("postgresql://app@db:5432/orders", "host=db port=5432 user=app dbname=scratch", True),
        ("postgresql://app@db/orders", "postgresql://app@db:5432/other", True),
        ("postgresql://app@db:5432/orders", "postgresql://app@db:5433/orders", False),
        ("postgresql://app@db:5432/orders", "postgresql://other@db:5432/orders", False),
        ("postgresql://app@db:5432/orders", "host=elsewhere user=app dbname=orders", False),
        ("postgresql://app@db:5432/orders", "not a = connection 'string", False),
    ],
)
def test_same_server_compares_host_port_and_user(a: str, b: str, same: bool) -> None:
    assert same_server(a, b) is same


def test_dsn_database_names_the_database_or_none() -> None:
    assert dsn_database("postgresql://app@db:5432/orders") == "orders"
    assert dsn_database("host=db user=app dbname=scratch") == "scratch"
    assert dsn_database("postgresql://app@db:5432") is None
    assert dsn_database("not a = connection 'string") is None
