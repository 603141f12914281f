"""The catalog's optional ``drill`` section: defaults, validation with file/line/field, and the example."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsteward.catalog import CatalogError, load_catalog
from envsteward.drill.phases import drill_spec, drill_targets, pick_target

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "catalog"
MINIMAL = REPO / "tests" / "data" / "catalogs" / "minimal"


def catalog_with(tmp_path: Path, drill_yaml: str) -> Path:
    import shutil

    root = tmp_path / "catalog"
    shutil.copytree(MINIMAL, root)
    path = root / "environments.yaml"
    path.write_text(path.read_text(encoding="utf-8") + drill_yaml, encoding="utf-8")
    return root


def test_the_example_catalog_drills_production_postgres() -> None:
    catalog = load_catalog(EXAMPLE)
    production = catalog.environment("production")
    assert production.drill is not None
    assert production.drill.server_dsn == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert pick_target(production, production.drill).name == "postgres-main"
    assert drill_targets(production.drill).rto_seconds == 15 * 60
    assert catalog.environment("development").drill is None


def test_defaults_are_15_and_5_minutes_and_the_first_postgres_target(tmp_path: Path) -> None:
    catalog = load_catalog(catalog_with(tmp_path, ""))
    prod = catalog.environment("prod")
    spec = drill_spec(prod)
    targets = drill_targets(spec)
    assert (targets.rto_seconds, targets.rpo_seconds) == (900.0, 300.0)
    assert spec.server_dsn is None
    assert pick_target(prod, spec).name == "db"


def test_a_drill_of_an_unknown_target_is_refused_with_its_location(tmp_path: Path) -> None:
    root = catalog_with(
        tmp_path,
        "    drill:\n      target: nope\n      rto_target_minutes: 30\n",
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    text = str(caught.value)
    assert "environments.yaml" in text
    assert "drill.target 'nope' is not one of this environment's backups (db)" in text


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("    drill:\n      rto_target_minutes: 0\n", "rto_target_minutes"),
        ("    drill:\n      server_dsn: postgresql://u:pw@db/x\n", "may not contain a password"),
        ("    drill:\n      smoke: []\n", "smoke"),
        (
            "    drill:\n      smoke_queries:\n"
            "        - {name: a, sql: SELECT 1}\n        - {name: a, sql: SELECT 2}\n",
            "smoke query names listed twice: a",
        ),
    ],
)
def test_bad_drill_settings_are_named(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog(catalog_with(tmp_path, yaml))
