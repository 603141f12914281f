"""DR drill benchmark: a drill of the ~1 GiB database from the backup benchmark vs ``pg_restore`` alone.

Run from the repository root (needs the machine's PostgreSQL on 127.0.0.1:5432 as user postgres, trust
auth):

    .venv/bin/python benchmarks/drill/bench_drill.py [--gib 1.0] [--repeat 2] [--keep] [--json out.json]

It reuses the database of ``benchmarks/backup/bench_pg.py`` (``envsteward_bench``, ~1 GiB of generated
orders; created with the same generation SQL by importing that script when it is missing, and then
dropped at the end unless ``--keep``; a database that already existed is never dropped). In ONE run:

1. envsteward backs it up (the runner: pg_dump from an exported snapshot + table checksums, zstd,
   AES-256-GCM, local key) into a filesystem primary store and replicates it to the DR folder.
2. The DR copy is decrypted once to a file: exactly the custom-format dump the drill restores.
3. Per round (the order alternates between rounds, so a noisy minute hits both alike):
   * ``pg_restore --no-owner --no-privileges --exit-on-error --single-transaction -d <fresh db> <dump>``
     alone (the drill's flags);
   * a full drill (:func:`envsteward.drill.run_drill`, real clock) from the DR store into its scratch
     database on the same server: prepare, choose, fetch+verify (read, authenticate, decompress the whole
     object), restore (CREATE DATABASE, then decrypt + decompress + stream into ``pg_restore`` on stdin),
     verify data (row counts + checksums of every table: ``COPY ... TO STDOUT`` of the restored copy
     hashed client-side, the runner's default algorithm, recorded in the results), health + smoke query,
     teardown.

The comparison the issue asks for: the drill's **restore phase** against ``pg_restore`` alone (target:
within 1.3x). Wall times; results go in README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def bench_pg() -> ModuleType:
    """The backup benchmark's module (database name, generation SQL, machine facts)."""
    spec = importlib.util.spec_from_file_location("bench_pg", REPO / "benchmarks" / "backup" / "bench_pg.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_catalog(folder: Path, db_url: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "drillbench"}), encoding="utf-8")
    target = {
        "name": "orders-db",
        "kind": "postgres",
        "dsn": db_url,
        "key_provider": "local",
        "replica_region": "eu-central-1",
    }
    drill = {
        "server_dsn": PG_SERVER,
        "rto_target_minutes": 15,
        "rpo_target_minutes": 24 * 60,
        "smoke_queries": [{"name": "orders", "sql": "SELECT id FROM orders LIMIT 5", "min_rows": 5}],
    }
    envs = [{"name": "bench", "tier": "development", "backups": [target], "drill": drill}]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")


def pg_restore_alone(dump: Path, round_no: int) -> float:
    """Wall seconds of pg_restore of ``dump`` into a fresh database (created and dropped around it)."""
    import psycopg

    name = f"envsteward_bench_pgrestore_{round_no}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        argv = [
            "pg_restore",
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--no-password",
            "--single-transaction",  # as the drill restores since issue 16 (order-preserving heap loads)
            f"--dbname=host=127.0.0.1 port=5432 user=postgres dbname={name}",
            str(dump),
        ]
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drill_once(services: Any) -> dict[str, Any]:
    from envsteward.drill import DrillStatus, run_drill

    started = time.perf_counter()
    record = run_drill(services, "bench")
    wall = time.perf_counter() - started
    if record.status is DrillStatus.FAILED:
        raise SystemExit(f"the drill failed in {record.failed_phase}: {record.error}")
    return {
        "wall_seconds": round(wall, 2),
        "status": record.status.value,
        "rto_seconds": round(record.rto_seconds or 0.0, 2),
        "phases": {phase.name.value: round(phase.seconds, 2) for phase in record.phases},
        "scratch_removed": record.scratch_removed,
    }


def backup_and_dump(services: Any, dump: Path) -> dict[str, Any]:
    """Back up (runner: primary + DR replica), then decrypt the DR copy to ``dump``."""
    from envsteward.backup import read_manifest, restore_backup
    from envsteward.backup.restore import key_provider_for
    from envsteward.backup.runner import plan_backups, run_backup_target
    from envsteward.backup.stores import backup_stores

    started = time.perf_counter()
    backup = run_backup_target(services, plan_backups(services.catalog())[0])
    if backup.status != "ok" or backup.backup is None:
        raise SystemExit(f"backup failed: {backup.error}")
    seconds = round(time.perf_counter() - started, 2)
    stores = backup_stores(services)
    assert stores.dr is not None
    manifest = read_manifest(stores.dr, backup.backup.backup_id)
    with dump.open("wb") as handle:
        restore_backup(stores.dr, manifest.backup_id, key_provider_for(services, manifest), handle.write)
    return {
        "backup_seconds": seconds,
        "dump_bytes": manifest.sizes.plaintext,
        "stored_bytes": manifest.sizes.ciphertext,
        "checksum_algorithm": manifest.tables[0].algorithm if manifest.tables else None,
    }


def rounds(pg: ModuleType, services: Any, dump: Path, repeat: int) -> dict[str, Any]:
    """pg_restore alone and a full drill, ``repeat`` times, alternating which goes first."""
    baseline: list[float] = []
    drills: list[dict[str, Any]] = []
    for round_no in range(repeat):
        order = ["pg_restore", "drill"] if round_no % 2 == 0 else ["drill", "pg_restore"]
        for what in order:
            pg.checkpoint()
            if what == "pg_restore":
                baseline.append(round(pg_restore_alone(dump, round_no), 2))
                print(f"round {round_no}: pg_restore alone {baseline[-1]:.1f} s", flush=True)
            else:
                drills.append(drill_once(services))
                print(f"round {round_no}: drill {json.dumps(drills[-1])}", flush=True)
    restore = [run["phases"]["restore"] for run in drills]
    verify = [run["phases"]["verify_data"] for run in drills]
    rto = [run["rto_seconds"] for run in drills]
    return {
        "pg_restore_alone_seconds": baseline,
        "drills": drills,
        "median": {
            "pg_restore_alone": statistics.median(baseline),
            "drill_restore_phase": statistics.median(restore),
            "drill_verify_data": statistics.median(verify),
            "drill_rto": statistics.median(rto),
            "drill_total": statistics.median(run["wall_seconds"] for run in drills),
        },
        # issue 16: verification no slower than the restore; RTO within 1.3x pg_restore alone + verification
        "ratio_verify_data_to_restore_phase": round(
            statistics.median(verify) / statistics.median(restore), 3
        ),
        "ratio_rto_to_pg_restore_plus_verify": round(
            statistics.median(rto) / (statistics.median(baseline) + statistics.median(verify)), 3
        ),
        "ratio_restore_phase_to_pg_restore": round(
            statistics.median(restore) / statistics.median(baseline), 3
        ),
        "target_ratio": 1.3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=1.0, help="table data to generate when missing (GiB)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (median and best reported)")
    parser.add_argument("--keep", action="store_true", help="keep a database this run created")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    pg = bench_pg()
    size = pg.table_bytes()
    created = False
    if size is None:
        size = pg.create_database(args.gib)
        created = True
    elif size < 0.9 * args.gib * (1 << 30):
        raise SystemExit(
            f"{pg.DB} exists with {size / (1 << 30):.2f} GiB of table data; not touching a database this "
            "run did not create: recreate it with benchmarks/backup/bench_pg.py --recreate --keep"
        )
    else:
        print(f"reusing {pg.DB}: {size / (1 << 30):.2f} GiB of table data")

    from envsteward.services import Services
    from envsteward.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="envsteward-drill-bench-"))
    results: dict[str, Any] = {"machine": pg.machine(), "table_bytes": size, "repeat": args.repeat}
    try:
        write_catalog(home / "catalog", pg.DB_URL)
        services = Services(Settings(catalog=home / "catalog", home=home / "home", actor="drill-bench"))
        dump = home / "orders.dump"
        results |= backup_and_dump(services, dump)
        results |= rounds(pg, services, dump, args.repeat)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if created and not args.keep:
            import psycopg

            with psycopg.connect(pg.ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {pg.DB} WITH (FORCE)")
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
