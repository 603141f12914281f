"""Shared setup for the PITR tests: a catalog and an envsteward home the database's OS user owns, and a
cluster that archives into them with ``envsteward wal push``."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fixtures.pg_cluster import (
    ClusterFactory,
    PgCluster,
    as_db_user,
    db_user_envsteward,
    give_to_db_user,
)

SELECTOR = "dev/db"


@dataclass
class PitrSetup:
    root: Path
    home: Path
    catalog: Path
    executable: str
    cluster: PgCluster | None = None

    @property
    def env(self) -> dict[str, str]:
        keys = self.root / "audit-keys"  # the audit signer's key lives outside home, owned by the DB user
        return {
            "ENVSTEWARD_HOME": str(self.home),
            "ENVSTEWARD_CATALOG": str(self.catalog),
            "ENVSTEWARD_AUDIT__SIGNING_KEY_FILE": str(keys / "audit-signing.key"),
            "ENVSTEWARD_AUDIT__TRUSTED_KEYS_FILE": str(keys / "audit-trusted-keys"),
        }

    def archive_command(self) -> str:
        assignments = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"'{assignments} {self.executable} wal push --target {SELECTOR} %p'"

    def write_catalog(self, port: int, **pitr: Any) -> None:
        target = {
            "name": "db",
            "kind": "postgres",
            "dsn": f"postgresql://postgres@127.0.0.1:{port}/postgres",
            "replica_region": "eu-west-1",
            "pitr": {"enabled": True, **pitr},
        }
        environment = {"name": "dev", "tier": "development", "backups": [target]}
        (self.catalog / "config").mkdir(parents=True, exist_ok=True)
        (self.catalog / "config" / "base.yaml").write_text(json.dumps({"app": {"name": "pitr"}}))
        catalog = {"platform": "pitrtest", "base": ["config/base.yaml"], "channels": []}
        (self.catalog / "catalog.yaml").write_text(json.dumps(catalog))
        (self.catalog / "environments.yaml").write_text(json.dumps({"environments": [environment]}))
        give_to_db_user(self.catalog)

    def envsteward(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run envsteward as the database's OS user (as on the database host)."""
        command = as_db_user([self.executable, *args], {**self.env, "ENVSTEWARD_EXECUTABLE": self.executable})
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"envsteward {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done


def pitr_setup(factory: ClusterFactory, name: str = "pitr") -> PitrSetup:
    """Under the factory's folder, so it is removed after the clusters stopped."""
    root = factory.base / name
    root.mkdir()
    home, catalog = root / "home", root / "catalog"
    for folder in (home, home / "objects", home / "objects-dr", catalog):
        folder.mkdir(parents=True, exist_ok=True)
    give_to_db_user(root)
    return PitrSetup(root=root, home=home, catalog=catalog, executable=db_user_envsteward(root))


def archiving_cluster(
    factory: ClusterFactory, setup: PitrSetup, name: str = "primary", **settings: str
) -> PgCluster:
    """A cluster that archives with envsteward; the catalog points at it."""
    conf = {"archive_mode": "on", "archive_command": setup.archive_command(), "archive_timeout": "'60s'"}
    conf.update(settings)
    cluster = factory(name, **conf)
    setup.write_catalog(cluster.port)
    setup.cluster = cluster
    return cluster


def switch_and_wait_archived(cluster: PgCluster, timeout: float = 60) -> str:
    """``pg_switch_wal()`` and wait until PostgreSQL reports that segment archived; its name."""
    import time

    (segment,) = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0]
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        rows = cluster.execute(
            "SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver"
        )
        last = rows[0][0]
        if last is not None and last >= segment:
            return str(segment)
        time.sleep(0.1)
    raise AssertionError(f"segment {segment} not archived within {timeout}s: {rows}\n{cluster.log()[-3000:]}")


def insert(cluster: PgCluster, ids: range) -> datetime:
    """Insert rows one transaction each; the commit time of the last one (the server's clock)."""
    for row in ids:
        cluster.execute("INSERT INTO t (id) VALUES (%s)", (row,))
    (at,) = cluster.execute("SELECT max(at) FROM t")[0]
    return at.astimezone(UTC)


def restored_ids(port: int) -> list[int]:
    """The ids in table ``t`` of the restored cluster on ``port``, in order."""
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM t ORDER BY id").fetchall()]


def restore_latest_from_dr_only(setup: PitrSetup, factory: ClusterFactory) -> tuple[dict[str, Any], int]:
    """Lose the primary region (its object folder is removed), then ``pitr restore --to-latest --from dr``
    into a new directory; the command's JSON outcome and the restored cluster's port."""
    import shutil

    shutil.rmtree(setup.home / "objects")
    latest = setup.root / "restored-latest"
    port = factory.adopt_restored(latest)
    done = setup.envsteward(
        "pitr", "restore", SELECTOR, "--to-latest", "--from", "dr", "--data-dir", str(latest),
        "--port", str(port), "--json",
    )  # fmt: skip
    return json.loads(done.stdout), port
