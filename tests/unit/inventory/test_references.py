"""Which references the inventory lists: the catalog's credential fields count, the rotation admin
password of a PostgreSQL role included."""

from __future__ import annotations

from pathlib import Path

from envsteward.catalog.loader import load_catalog
from envsteward.inventory.references import collect_references, named_locations

ADMIN = "secret+vault://secret/shop/production/postgres-admin#password"


def _catalog(folder: Path) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "catalog.yaml").write_text("platform: shop\nbase: [config/base.yaml]\n")
    (folder / "config" / "base.yaml").write_text("app:\n  name: shop\n")
    (folder / "config" / "production.yaml").write_text(
        "app:\n  db_password: secret+vault://secret/shop/production/db#password\n"
    )
    (folder / "environments.yaml").write_text(
        f"""environments:
  - name: production
    tier: production
    overlays: [config/production.yaml]
    approval: {{approvers: [alice, bob], approvals_needed: 1}}
    secrets:
      rotation:
        - reference: secret+vault://secret/shop/production/db#password
          postgres:
            role: shop_app
            admin_dsn: "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
            admin_password: {ADMIN}
        - reference: secret+vault://secret/shop/production/other#password
          postgres: {{role: shop_other, admin_dsn: "host=127.0.0.1 user=postgres", admin_password: {ADMIN}}}
        - reference: secret+vault://secret/shop/production/plain#token
"""
    )
    return folder


def test_a_rotation_admin_password_is_a_listed_reference(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog(tmp_path / "catalog"))
    usages = collect_references(catalog.environment("production"), catalog.render("production"))
    by_reference = {usage.reference: usage.used_at for usage in usages}
    assert by_reference == {
        "vault://secret/shop/production/db#password": ("app.db_password",),
        ADMIN.removeprefix("secret+"): (
            "secrets.rotation[0].postgres.admin_password",
            "secrets.rotation[1].postgres.admin_password",
        ),
    }
    assert "secret/shop/production/postgres-admin" in named_locations(catalog)["vault"], (
        "the admin password's secret is named: never an orphan"
    )
