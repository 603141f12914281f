"""The demo's port options reach everything that uses those ports: its catalog copy, its settings; a taken
or repeated port is one line naming the option. (The full demo on free ports: tests/e2e/test_demo_e2e.py.)"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from envsteward.deployments import demo

from envsteward.catalog.loader import load_catalog
from envsteward.health.specs import HTTPCheck

MACHINE_PORTS = {5432, 6379}
"""PostgreSQL and Redis: the machine's own services, not the demo's."""
CHOSEN = {
    "prefect_port": 14200,
    "vault_port": 18200,
    "aws_port": 15055,
    "standin_port": 18196,
    "smtp_port": 18025,
}


def args(argv: list[str]) -> argparse.Namespace:
    return demo.parse_args(argv)


def chosen_argv() -> list[str]:
    return [part for dest, port in CHOSEN.items() for part in (f"--{dest.replace('_', '-')}", str(port))]


def loopback_ports(folder: Path) -> set[int]:
    ports: set[int] = set()
    for path in folder.rglob("*.y*ml"):
        ports.update(int(m[2]) for m in demo.LOOPBACK_ADDRESS.finditer(path.read_text(encoding="utf-8")))
    return ports


def test_every_port_option_is_covered() -> None:
    assert set(CHOSEN) == set(demo.PORT_OPTIONS)
    parsed = args(chosen_argv())
    assert demo.chosen_ports(parsed) == {
        default: CHOSEN[dest] for dest, (default, _what) in demo.PORT_OPTIONS.items()
    }


def test_the_demo_catalog_follows_the_chosen_ports(tmp_path: Path) -> None:
    example_ports = loopback_ports(demo.EXAMPLE_CATALOG)
    assert 8080 in example_ports, "the example's API checks are expected on the stand-in's default port"

    demo.render_catalog(demo.EXAMPLE_CATALOG, tmp_path / "catalog", demo.chosen_ports(args(chosen_argv())))

    # every loopback address in the copy is one the demo serves on a chosen port, or the machine's own
    assert loopback_ports(tmp_path / "catalog") <= set(CHOSEN.values()) | MACHINE_PORTS
    catalog = load_catalog(tmp_path / "catalog")
    api_urls = {
        name: check.url
        for name, env in catalog.environments.items()
        for check in env.health_checks
        if isinstance(check, HTTPCheck) and check.name == "api"
    }
    assert api_urls == dict.fromkeys(
        ("development", "staging", "production"), "http://127.0.0.1:18196/healthz"
    )
    # the example itself keeps its readable defaults
    assert loopback_ports(demo.EXAMPLE_CATALOG) == example_ports


def test_default_ports_copy_the_catalog_unchanged(tmp_path: Path) -> None:
    demo.render_catalog(demo.EXAMPLE_CATALOG, tmp_path / "catalog", demo.chosen_ports(args([])))
    for path in demo.EXAMPLE_CATALOG.rglob("*"):
        if path.is_file():
            assert (tmp_path / "catalog" / path.relative_to(demo.EXAMPLE_CATALOG)).read_bytes() == (
                path.read_bytes()
            )


def test_swapped_defaults_move_each_address_once(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.yaml").write_text("x: http://127.0.0.1:8080/h\ny: localhost:4200\nz: 127.0.0.1:80801\n")
    demo.render_catalog(source, tmp_path / "out", {8080: 4200, 4200: 8080})
    assert (tmp_path / "out" / "a.yaml").read_text() == (
        "x: http://127.0.0.1:4200/h\ny: localhost:8080\nz: 127.0.0.1:80801\n"
    )


def test_settings_get_the_chosen_ports(tmp_path: Path) -> None:
    from envsteward.settings import Settings

    before = dict(os.environ)
    try:
        demo.configure_environment(args(chosen_argv()), tmp_path)
        settings = Settings()
        prefect_api = os.environ["PREFECT_API_URL"]
    finally:
        os.environ.clear()
        os.environ.update(before)
    assert prefect_api == "http://127.0.0.1:14200/api"
    assert settings.vault.addr == "http://127.0.0.1:18200"
    assert settings.aws.endpoint_url == "http://127.0.0.1:15055"
    assert settings.slack.base_url == "http://127.0.0.1:18196/slack/api/"
    assert settings.slack.ui_base_url == "http://127.0.0.1:14200"
    assert settings.pagerduty.events_url == "http://127.0.0.1:18196/pagerduty/v2/enqueue"
    assert (settings.smtp.host, settings.smtp.port) == ("127.0.0.1", 18025)
    assert (settings.catalog, settings.home) == (tmp_path / "catalog", tmp_path / "home")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_taken_port_names_its_option(taken_port: int) -> None:
    with pytest.raises(demo.StackError, match=rf"port {taken_port} .*in use.*--standin-port$"):
        demo.check_ports(args([*chosen_argv(), "--standin-port", str(taken_port)]))


def test_a_port_chosen_twice_is_refused() -> None:
    with pytest.raises(demo.StackError, match=r"--smtp-port 18200: --vault-port uses that port"):
        demo.check_ports(args([*chosen_argv(), "--smtp-port", "18200"]))


def test_a_workdir_the_demo_did_not_make_is_never_wiped(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(demo.StackError, match="not empty and not a demo folder"):
        demo.prepare_workdir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"

    made = tmp_path / "demo"
    demo.prepare_workdir(made)
    (made / "logs").mkdir()
    demo.prepare_workdir(made)  # its own folder: wiped and made again
    assert sorted(p.name for p in made.iterdir()) == [demo.DEMO_MARKER]


def test_the_demo_catalog_backs_up_and_drills_the_demos_postgres_database(tmp_path: Path) -> None:
    from envsteward.deployments import demo_database

    from envsteward.catalog.models import PostgresBackup

    demo.render_catalog(demo.EXAMPLE_CATALOG, tmp_path / "catalog", demo.chosen_ports(args([])))
    dsn = "postgresql://postgres@127.0.0.1:5432/envsteward_demo_0123abcd"
    database = demo_database.DemoDatabase("postgres", "envsteward_demo_0123abcd", dsn=dsn)
    changed = demo_database.point_catalog_at(tmp_path / "catalog", database)

    assert changed == ["staging/postgres-main", "production/postgres-main"]
    catalog = load_catalog(tmp_path / "catalog")
    production = catalog.environment("production")
    target = next(b for b in production.backups if b.name == "postgres-main")
    assert isinstance(target, PostgresBackup)
    assert target.dsn == dsn
    assert target.replica_region == "eu-central-1", "the demo verifies a DR replica"
    assert production.drill is not None
    assert production.drill.target == "postgres-main"
    # only the dsn lines changed: comments and every other line of the example stay
    before = (demo.EXAMPLE_CATALOG / "environments.yaml").read_text().splitlines()
    after = (tmp_path / "catalog" / "environments.yaml").read_text().splitlines()
    assert len(before) == len(after)
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        ("        dsn: postgresql://postgres@127.0.0.1:5432/shopfront_staging", f"        dsn: {dsn}"),
        ("        dsn: postgresql://postgres@127.0.0.1:5432/shopfront", f"        dsn: {dsn}"),
    ]


def test_without_postgresql_the_demo_catalog_uses_an_sqlite_target(tmp_path: Path) -> None:
    from envsteward.deployments import demo_database

    from envsteward.catalog.models import SqliteBackup

    demo.render_catalog(demo.EXAMPLE_CATALOG, tmp_path / "catalog", demo.chosen_ports(args([])))
    path = tmp_path / "shopfront.db"
    database = demo_database.DemoDatabase("sqlite", str(path), path=path, why_sqlite="no server")
    demo_database.point_catalog_at(tmp_path / "catalog", database)

    production = load_catalog(tmp_path / "catalog").environment("production")
    target = next(b for b in production.backups if b.name == "postgres-main")
    assert isinstance(target, SqliteBackup)
    assert target.path == str(path)
    assert target.replica_region == "eu-central-1"
    assert production.drill is not None
    assert production.drill.server_dsn is None
    assert [q.name for q in production.drill.smoke_queries] == ["tables-present"]


def test_a_catalog_without_a_postgres_backup_target_is_one_line(tmp_path: Path) -> None:
    from envsteward.deployments import demo_database
    from envsteward.deployments.local_stack import StackError

    (tmp_path / "environments.yaml").write_text("environments:\n  - name: dev\n    backups: []\n")
    database = demo_database.DemoDatabase("postgres", "x", dsn="postgresql://postgres@127.0.0.1:5432/x")
    with pytest.raises(StackError, match="no backup target of kind postgres"):
        demo_database.point_catalog_at(tmp_path, database)


def test_the_demo_catalog_gives_one_secret_a_one_day_maximum_age(tmp_path: Path) -> None:
    """The demo's overdue secret: one override added to the copy (a demo setting, commented as such);
    every other maximum age stays the example's, and every other line of the example stays."""
    from envsteward.deployments import demo_secrets

    demo.render_catalog(demo.EXAMPLE_CATALOG, tmp_path / "catalog", demo.chosen_ports(args([])))
    example = load_catalog(demo.EXAMPLE_CATALOG)
    line = demo_secrets.give_one_secret_a_short_max_age(tmp_path / "catalog")
    assert "demo setting" in line

    environment, reference = demo_secrets.OVERDUE
    catalog = load_catalog(tmp_path / "catalog")
    uri = reference.removeprefix("secret+")
    used = {ref.uri() for ref in catalog.render(environment).secret_refs.values()}
    assert uri in used, "the overdue reference must be one the environment uses"
    policy = catalog.environment(environment).secrets
    assert policy.max_age_for(uri) == demo_secrets.OVERDUE_MAX_AGE_DAYS
    assert demo_secrets.CLOCK_AHEAD.days > demo_secrets.OVERDUE_MAX_AGE_DAYS
    for name, env in catalog.environments.items():
        for ref in catalog.render(name).secret_refs.values():
            if (name, ref.uri()) == (environment, uri):
                continue
            most = env.secrets.max_age_for(ref.uri())
            assert most == example.environment(name).secrets.max_age_for(ref.uri())
            assert most is None or most > demo_secrets.CLOCK_AHEAD.days, "only one secret may be overdue"

    before = (demo.EXAMPLE_CATALOG / "environments.yaml").read_text().splitlines()
    after = (tmp_path / "catalog" / "environments.yaml").read_text().splitlines()
    added = [line for line in after if line not in before]
    assert added == [
        f"        - reference: {reference}",
        "          max_age_days: 1  # make demo: a demo setting, so that one secret is overdue",
    ]
    assert [line for line in before if line not in after] == []
