"""The production profile: check its settings and systems, then create its work pool and concurrency limits.

    python -m envsteward.deployments.production check [--env-file deployments/production.env]
    python -m envsteward.deployments.production setup [--env-file deployments/production.env]

The profile (README "Running it for real"; template ``deployments/production.env.example``): the Prefect
server on PostgreSQL (``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...``), flow state in
Redis (``ENVSTEWARD_STATE__KIND=redis``), backups and the audit log in S3
(``ENVSTEWARD_STORAGE__KIND=s3``), a process work pool served by workers on several hosts, and one Prefect
global concurrency limit per external system (``ENVSTEWARD_LIMITS__ENABLED=true``).

``check`` reads only: one line per system (``ok`` or ``FAIL`` and why), exit 0 when all are ok, 1 when
any is not. ``setup`` runs the same checks and stops on a failure; otherwise it creates or updates the
work pool (a process pool whose base job template carries the ``ENVSTEWARD_*`` settings and the working
directory, so every worker runs flows the same way) and the concurrency limits, and says what it did.
Running it again changes nothing that is already right.

External calls: the Prefect server's database (asyncpg, as the server connects), the Prefect API, Redis,
S3. Printed URLs never show a password.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from envsteward.deployments.catalog import REPO_ROOT

from envsteward.errors import EnvstewardError
from envsteward.limits import SYSTEMS, limit_names
from envsteward.settings import Settings

WORK_POOL = "envsteward"
"""The pool every deployment of ``prefect.yaml`` names."""
DB_URL_VARIABLE = "PREFECT_API_DATABASE_CONNECTION_URL"
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    """One line of the report. A failed check that is not ``blocking`` (``setup`` has not run yet) shows
    as ``todo`` and does not fail ``check``."""

    name: str
    ok: bool
    detail: str
    blocking: bool = True

    @property
    def failed(self) -> bool:
        return not self.ok and self.blocking

    def line(self) -> str:
        status = "ok  " if self.ok else ("FAIL" if self.blocking else "todo")
        return f"{status}  {self.name:<12} {self.detail}"


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (safe to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def load_env_file(path: Path) -> None:
    """Put the file's ``NAME=value`` lines into ``os.environ`` where the variable is not set already (the
    process environment wins, as pydantic-settings does). Raises FileNotFoundError."""
    from dotenv import dotenv_values

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such settings file")
    for name, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(name, value)


def pool_environment(environ: dict[str, str]) -> dict[str, str]:
    """The variables the work pool passes to every flow run: the ``ENVSTEWARD_*`` variables that ARE
    settings (a top-level field or section of :class:`Settings`), plus ``ENVSTEWARD_REPO_DIR``. Settings
    hold references to credentials, never values; variables that hold a credential themselves
    (``ENVSTEWARD_FINGERPRINT_KEY``, ``ENVSTEWARD_SMTP_PASSWORD``) are not settings and stay on the host."""
    fields = set(Settings.model_fields)
    chosen = {}
    for name, value in environ.items():
        if not name.startswith("ENVSTEWARD_"):
            continue
        field = name.removeprefix("ENVSTEWARD_").lower().split("__", 1)[0]
        if field in fields or name == "ENVSTEWARD_REPO_DIR":
            chosen[name] = value
    return dict(sorted(chosen.items()))


# --- checks (read-only) ------------------------------------------------------------------------------


def _guard(name: str, probe: Callable[[], str]) -> Check:
    """Run one probe; any error becomes a FAIL line that names its type and (safe) message."""
    try:
        return Check(name, True, probe())
    except EnvstewardError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a diagnostic: every failure becomes one line
        return Check(name, False, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "(no message)"


def check_profile(settings: Settings) -> list[Check]:
    """The profile's own rules: Redis state, S3 storage with a DR bucket, limits enabled, a PG database."""
    checks = []
    db_url = os.environ.get(DB_URL_VARIABLE, "")
    checks.append(
        Check(
            "db-url",
            db_url.startswith("postgresql+asyncpg://"),
            redact_url(db_url)
            if db_url.startswith("postgresql+asyncpg://")
            else f"{DB_URL_VARIABLE} must be postgresql+asyncpg://USER@HOST:5432/DB"
            f" (is {'unset' if not db_url else redact_url(db_url)})",
        )
    )
    state_ok = settings.state.kind == "redis"
    checks.append(
        Check(
            "state",
            state_ok,
            f"redis {redact_url(settings.state.redis_url)} prefix {settings.state.key_prefix!r}"
            if state_ok
            else f"ENVSTEWARD_STATE__KIND=redis is required (is {settings.state.kind}): workers share state",
        )
    )
    storage = settings.storage
    storage_ok = storage.kind == "s3" and bool(storage.bucket) and bool(storage.dr_bucket)
    checks.append(
        Check(
            "storage",
            storage_ok,
            f"s3 {storage.bucket} (DR {storage.dr_bucket})"
            if storage_ok
            else "ENVSTEWARD_STORAGE__KIND=s3 with ENVSTEWARD_STORAGE__BUCKET and ..._DR_BUCKET is required"
            f" (is {storage.kind}, bucket {storage.bucket or 'unset'}, DR {storage.dr_bucket or 'unset'})",
        )
    )
    sizes = ", ".join(f"{s}={settings.limits.size(s)}" for s in SYSTEMS)
    checks.append(
        Check(
            "limits",
            settings.limits.enabled,
            sizes if settings.limits.enabled else "ENVSTEWARD_LIMITS__ENABLED=true is required",
        )
    )
    return checks


def check_database(url: str) -> Check:
    """Connect to the Prefect server's database the way the server does (asyncpg) and run SELECT 1."""

    def probe() -> str:
        import asyncpg

        async def select_one() -> str:
            conn = await asyncpg.connect(url.replace("+asyncpg", "", 1), timeout=TIMEOUT_SECONDS)
            try:
                version = await conn.fetchval("SHOW server_version")
            finally:
                await conn.close()
            return f"PostgreSQL {version} answers at {redact_url(url)}"

        return asyncio.run(select_one())

    return _guard("prefect-db", probe)


def check_redis(settings: Settings) -> Check:
    """PING the state store's Redis."""
    from envsteward.adapters import redis_client

    def probe() -> str:
        latency = redis_client.ping(
            settings.state.redis_url, None, TIMEOUT_SECONDS, auth_hint="put the password in the URL"
        )
        return f"{redact_url(settings.state.redis_url)} answers PING ({latency:.1f} ms)"

    return _guard("redis", probe)


def check_s3(settings: Settings) -> list[Check]:
    """List (one page of) the primary and the DR bucket through envsteward's own S3 store."""
    from envsteward.backup.stores import backup_stores
    from envsteward.services import Services

    stores = backup_stores(Services(settings))
    result = []
    for name, store, bucket in (
        ("s3", stores.primary, settings.storage.bucket),
        ("s3-dr", stores.dr, settings.storage.dr_bucket),
    ):
        if store is None:
            result.append(Check(name, False, "no DR store configured (ENVSTEWARD_STORAGE__DR_BUCKET)"))
            continue

        def probe(store: Any = store, bucket: str | None = bucket) -> str:
            next(iter(store.list("")), None)
            return f"bucket {bucket} is readable"

        result.append(_guard(name, probe))
    return result


def check_api() -> Check:
    """GET the Prefect API's /health (PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return Check(
            "prefect-api", False, "PREFECT_API_URL is not set: point it at the Prefect server's /api"
        )

    def probe() -> str:
        with urllib.request.urlopen(f"{url}/health", timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        return f"{url} is healthy"

    return _guard("prefect-api", probe)


async def _present(settings: Settings) -> tuple[bool, list[str]]:
    """Whether the work pool exists and which of the limits do not (Prefect API; reads only)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    missing = []
    async with get_client() as client:
        try:
            await client.read_work_pool(WORK_POOL)
            pool = True
        except ObjectNotFound:
            pool = False
        for name in limit_names(settings.limits.prefix, SYSTEMS):
            try:
                await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                missing.append(name)
    return pool, missing


def check_created(settings: Settings) -> list[Check]:
    """Whether ``setup`` has run: the work pool and every concurrency limit exist on the server."""
    try:
        pool, missing = asyncio.run(_present(settings))
    except Exception as exc:  # noqa: BLE001 - a diagnostic line
        return [Check("work-pool", False, f"cannot read it: {type(exc).__name__}: {_first_line(exc)}")]
    return [
        Check("work-pool", pool, WORK_POOL if pool else f"{WORK_POOL} does not exist: run setup", False),
        Check(
            "limits-made",
            not missing,
            f"all {len(SYSTEMS)} exist" if not missing else f"missing {', '.join(missing)}: run setup",
            False,
        ),
    ]


def run_checks(settings: Settings, *, created: bool) -> list[Check]:
    """Every check, in order; ``created`` adds whether the pool and limits exist (``check`` does)."""
    checks = check_profile(settings)
    db_url = os.environ.get(DB_URL_VARIABLE, "")
    if db_url.startswith("postgresql+asyncpg://"):
        checks.append(check_database(db_url))
    if settings.state.kind == "redis":
        checks.append(check_redis(settings))
    if settings.storage.kind == "s3" and settings.storage.bucket:
        checks.extend(check_s3(settings))
    api = check_api()
    checks.append(api)
    if created and api.ok:
        checks.extend(check_created(settings))
    return checks


# --- setup ---------------------------------------------------------------------------------------------


def base_job_template(environ: dict[str, str], working_dir: str) -> dict[str, Any]:
    """Prefect's default process-worker template with the profile's defaults: ``env`` (see
    :func:`pool_environment`) and ``working_dir`` (the repository root on every worker host)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    properties = template["variables"]["properties"]
    properties["env"]["default"] = pool_environment(environ)
    properties["working_dir"]["default"] = working_dir
    return template


async def _setup(settings: Settings, template: dict[str, Any]) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
        WorkPoolUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    done = []
    async with get_client() as client:
        try:
            pool = await client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            await client.create_work_pool(
                WorkPoolCreate(name=WORK_POOL, type="process", base_job_template=template)
            )
            done.append(f"created work pool {WORK_POOL} (process)")
        else:
            if pool.type != "process":
                raise SystemExit(f"error: work pool {WORK_POOL} exists with type {pool.type}, not process")
            if pool.base_job_template != template:
                await client.update_work_pool(WORK_POOL, WorkPoolUpdate(base_job_template=template))
                done.append(f"updated work pool {WORK_POOL}'s job template")
        for system in SYSTEMS:
            (name,) = limit_names(settings.limits.prefix, [system])
            size = settings.limits.size(system)
            try:
                limit = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=size)
                )
                done.append(f"created concurrency limit {name} = {size}")
                continue
            if limit.limit != size or not limit.active:
                await client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=size, active=True)
                )
                done.append(f"updated concurrency limit {name} = {size}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m envsteward.deployments.production",
        description="Check the production profile's settings and systems; create its work pool and limits.",
    )
    parser.add_argument("command", choices=["check", "setup"])
    parser.add_argument("--env-file", type=Path, help="a settings file (deployments/production.env.example)")
    args = parser.parse_args(argv)
    try:
        if args.env_file is not None:
            load_env_file(args.env_file)
        settings = Settings()
    except Exception as exc:  # noqa: BLE001 - pydantic's errors name the field; one line per problem
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    checks = run_checks(settings, created=args.command == "check")
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.failed]
    if args.command == "check" or failed:
        if failed:
            print(f"{len(failed)} check(s) failed", file=sys.stderr)
        return 1 if failed else 0
    working_dir = os.environ.get("ENVSTEWARD_REPO_DIR") or str(REPO_ROOT)
    template = base_job_template(dict(os.environ), working_dir)
    done = asyncio.run(_setup(settings, template))
    for line in done or ["nothing to change: the work pool and every limit are as configured"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
