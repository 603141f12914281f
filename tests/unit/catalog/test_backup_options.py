"""Backup target options: ``table_checksums`` (postgres) and ``retention`` (every kind), and that prune
and the example catalog use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from envsteward.catalog import BackupTarget, load_catalog
from envsteward.retention import RetentionPolicy

BACKUPS: TypeAdapter[Any] = TypeAdapter(BackupTarget)
PG = {"name": "db", "kind": "postgres", "dsn": "postgresql://backup@db:5432/orders"}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "catalog"


def test_defaults_keep_the_old_behaviour() -> None:
    target = BACKUPS.validate_python(PG)
    assert target.table_checksums is True
    assert target.retention is None
    assert BACKUPS.validate_python({"name": "c", "kind": "config"}).retention is None


def test_table_checksums_can_be_switched_off() -> None:
    assert BACKUPS.validate_python(PG | {"table_checksums": False}).table_checksums is False


def test_table_checksums_is_postgres_only() -> None:
    with pytest.raises(ValidationError, match="table_checksums"):
        BACKUPS.validate_python({"name": "c", "kind": "config", "table_checksums": False})


@pytest.mark.parametrize("kind", [{"kind": "sqlite", "path": "/x.db"}, {"kind": "config"}, PG])
def test_retention_parses_into_a_policy(kind: dict[str, Any]) -> None:
    target = BACKUPS.validate_python(
        {"name": "t"} | kind | {"retention": {"last": 3, "daily": 7, "within": "2d"}}
    )
    assert isinstance(target.retention, RetentionPolicy)
    assert (target.retention.last, target.retention.daily) == (3, 7)
    assert target.retention.within is not None
    assert target.retention.within.days == 2


@pytest.mark.parametrize(
    ("retention", "field"),
    [
        ({"dialy": 7}, "dialy"),
        ({"daily": -2}, "daily"),
        ({"within": "two days"}, "within"),
    ],
)
def test_bad_retention_names_the_field(retention: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BACKUPS.validate_python(PG | {"retention": retention})
    text = str(caught.value)
    assert "retention" in text
    assert field in text


def test_the_example_production_target_has_a_retention_policy_that_prune_uses() -> None:
    from envsteward.backup.prune import DEFAULT_POLICY, catalog_policies

    catalog = load_catalog(EXAMPLES)
    target = next(item for item in catalog.environment("production").backups if item.name == "postgres-main")
    assert target.retention is not None
    assert target.retention != DEFAULT_POLICY
    lookup = catalog_policies(catalog)
    assert lookup("production", "postgres-main") == target.retention
    assert lookup("production", "vault-app") == DEFAULT_POLICY  # no retention: the default
    assert lookup("production", "no-such-target") is None
