"""The promotion engine against OpenBao and moto: apply (idempotent, no-ops reported), verify, a real
permission-denied write after half the writes, and a rollback that leaves the target exactly as it was
(Vault KV: old versions written back, new secrets deleted; SSM: new parameters deleted; files rewritten)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient, VaultKVSource
from envsteward.promotion import ApplyError, WriteStatus, apply_plan, rollback, take_snapshot, verify_plan
from envsteward.promotion.engine import verify_rollback
from envsteward.promotion.runbook import make_plan, target_sources
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.unit.promotion._catalog import (
    ALL_SEEDED,
    DEV_TO_STAGING,
    read_everything,
    seed_environments,
    write_catalog,
)


@pytest.fixture
def services(
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
) -> Services:
    folder = write_catalog(tmp_path / "catalog", vault_base=vault_kv_path, ssm_base=f"/{aws_name_prefix}")
    seed_environments(
        folder,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        f"/{aws_name_prefix}",
    )
    return Services(Settings(catalog=folder, home=tmp_path / "home", vault=vault_settings, aws=aws_settings))


def test_apply_writes_every_change_once_and_a_second_apply_is_all_no_ops(services: Services) -> None:
    plan = make_plan(services, "development", "staging")
    assert [c.path for c in plan.changes] == list(DEV_TO_STAGING)
    sources = target_sources(services, plan)
    first = apply_plan(plan, sources)
    assert first.written == len(DEV_TO_STAGING)
    assert first.no_ops == 0
    assert verify_plan(plan, sources) == []
    second = apply_plan(plan, sources)
    assert second.written == 0
    assert second.no_ops == len(DEV_TO_STAGING)
    fresh = make_plan(services, "development", "staging")
    assert fresh.empty, [c.path for c in fresh.changes]
    assert ALL_SEEDED
    assert not any(secret in plan.model_dump_json() for secret in ALL_SEEDED)


def test_a_permission_denied_write_after_half_the_writes_is_rolled_back_exactly(
    services: Services, vault_kv_path: str, make_limited_vault_client: Callable[[str], VaultClient]
) -> None:
    plan = make_plan(services, "development", "staging")
    # Vault last: the file and SSM writes (5 of 7) land before Vault refuses
    ordered = sorted(plan.changes, key=lambda c: c.target_source == "vault-app")
    plan = plan.model_copy(update={"changes": tuple(ordered)})
    before = read_everything(services, "staging")
    admin_sources = target_sources(services, plan)
    snapshot = take_snapshot(services, plan, admin_sources)
    assert "s33d" not in repr(snapshot)

    limited = make_limited_vault_client(f"{vault_kv_path}/staging/database")
    denied = dict(admin_sources)
    denied["vault-app"] = VaultKVSource("vault-app", limited, f"{vault_kv_path}/staging", writable=True)
    with pytest.raises(ApplyError, match="permission") as raised:
        apply_plan(plan, denied, retries=0)
    statuses = [o.status for o in raised.value.report.outcomes]
    assert statuses.count(WriteStatus.WRITTEN) == 5
    assert statuses[5] is WriteStatus.FAILED
    assert statuses[6] is WriteStatus.NOT_ATTEMPTED
    assert read_everything(services, "staging") != before

    assert rollback(snapshot, admin_sources) == []
    assert verify_rollback(snapshot, admin_sources) == []
    assert read_everything(services, "staging") == before
    ssm = AWSClients(services.settings.aws).ssm()
    prefix = services.catalog().environment("staging").sources[1].prefix  # type: ignore[union-attr]
    names = [p["Name"] for p in ssm.get_parameters_by_path(Path=prefix, Recursive=True)["Parameters"]]
    assert not any(name.endswith("/worker/image") for name in names), "a created parameter survived"


def test_vault_rollback_writes_old_versions_back_and_deletes_created_secrets(
    services: Services, vault_kv_path: str
) -> None:
    client = services.vault_client()
    mount, base = vault_kv_path.split("/", 1)
    old_version = client.kv_metadata(mount, f"{base}/staging/database").current_version
    plan = make_plan(services, "development", "staging")
    sources = target_sources(services, plan)
    snapshot = take_snapshot(services, plan, sources)
    apply_plan(plan, sources)
    assert client.kv_read(mount, f"{base}/staging/cache").data == {"ttl": 60}

    assert rollback(snapshot, sources) == []
    assert verify_rollback(snapshot, sources) == []
    meta = client.kv_metadata(mount, f"{base}/staging/database")
    assert meta.current_version == old_version + 2, "the old data comes back as a new version (CAS)"
    assert (
        client.kv_read(mount, f"{base}/staging/database").data
        == client.kv_read(mount, f"{base}/staging/database", version=old_version).data
    )
    assert "cache" not in client.kv_list(mount, f"{base}/staging")


class _Wrapped:
    """A real target source whose writes advance a fake monotonic clock (a slow system)."""

    def __init__(self, inner: object, clock: list[float]) -> None:
        self.inner, self.clock, self.writes = inner, clock, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def write(self, key_path: tuple[str, ...], value: object) -> None:
        self.inner.write(key_path, value)  # type: ignore[attr-defined]
        self.writes += 1
        self.clock[0] += 10


def test_apply_and_rollback_make_no_write_after_their_deadline(services: Services) -> None:
    from envsteward.scan.live import Deadline

    plan = make_plan(services, "development", "staging")
    real = target_sources(services, plan)
    snapshot = take_snapshot(services, plan, real)
    now = [0.0]
    slow = {name: _Wrapped(source, now) for name, source in real.items()}

    with pytest.raises(ApplyError) as caught:
        apply_plan(plan, slow, deadline=Deadline(15, clock=lambda: now[0]))  # type: ignore[arg-type]

    assert sum(source.writes for source in slow.values()) == 2  # at 0 s and 10 s; none from 20 s on
    statuses = [outcome.status for outcome in caught.value.report.outcomes]
    assert statuses.count(WriteStatus.WRITTEN) == 2
    assert statuses[2] is WriteStatus.FAILED
    assert "deadline passed" in (caught.value.report.outcomes[2].error or "")

    expired = Deadline(0, clock=lambda: now[0])
    problems = rollback(snapshot, real, deadline=expired)
    assert problems
    assert all("deadline passed" in problem for problem in problems)
    assert rollback(snapshot, real) == []
    assert verify_rollback(snapshot, real) == []
