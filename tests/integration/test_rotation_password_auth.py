"""A PostgreSQL role's password rotated by the rotate-secret flow, proven by real logins.

The machine's PostgreSQL trusts loopback logins, so tests/flows/test_rotate_secret_flow.py can only compare
SCRAM verifiers. Here a throwaway cluster requires ``scram-sha-256`` for every TCP login (the fixture's own
admin path is the trusted Unix socket), the catalog's admin connection logs in over TCP with a password held
in OpenBao (``admin_password``), and the assertions are logins as the role: the new password is accepted,
the old one refused by the server, and the other way round when the test step fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from envsteward.adapters.vault import VaultClient
from envsteward.catalog.models import GeneratedValuePolicy
from envsteward.rotation.model import RotationFailedError, Step
from envsteward.services import Services, set_services
from envsteward.settings import Settings, VaultSettings
from tests.fixtures.pg_cluster import ClusterFactory, PgCluster

pytestmark = pytest.mark.usefixtures("prefect_harness")

REFUSED = "password authentication failed"


@dataclass
class World:
    cluster: PgCluster
    services: Services
    vault: VaultClient
    base: str
    roles: list[str]
    old: dict[str, str]  # role -> its password before the rotation
    admin_password: str
    generated: list[SecretStr]  # every value the rotation generated, in order

    def kv(self, name: str, version: int | None = None) -> tuple[int, dict[str, Any]]:
        mount, path = self.base.split("/", 1)
        secret = self.vault.kv_read(mount, f"{path}/development/{name}", version=version)
        return secret.version, dict(secret.data)

    def secrets(self) -> list[str]:
        return [*self.old.values(), self.admin_password, *(v.get_secret_value() for v in self.generated)]


def login(cluster: PgCluster, role: str, password: str) -> None:
    """A real password login as ``role`` over TCP (scram-sha-256); psycopg's OperationalError if refused."""
    with psycopg.connect(
        host="127.0.0.1",
        port=cluster.port,
        user=role,
        password=password,
        dbname="postgres",
        connect_timeout=10,
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)


def _set_password(cluster: PgCluster, role: str, password: str, *, create: bool = False) -> None:
    """Through the trusted socket, as a SCRAM verifier (no plain password in the server's statement log)."""
    with psycopg.connect(cluster.libpq(), autocommit=True, connect_timeout=10) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        statement = "CREATE ROLE {} LOGIN PASSWORD {}" if create else "ALTER ROLE {} PASSWORD {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(verifier.decode("ascii"))))


def _catalog(folder: Path, base: str, port: int, roles: list[str]) -> None:
    admin_dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    admin_password = f"secret+vault://{base}/development/pgadmin#password"
    (folder / "config").mkdir(parents=True)
    (folder / "catalog.yaml").write_text("platform: shop\nbase: [config/base.yaml]\n")
    (folder / "config" / "base.yaml").write_text("app:\n  name: shop\n")
    (folder / "config" / "development.yaml").write_text(
        "app:\n"
        f"  db_password: secret+vault://{base}/development/db#password\n"
        f"  broken_db_password: secret+vault://{base}/development/db2#password\n"
    )
    (folder / "environments.yaml").write_text(
        f"""environments:
  - name: development
    tier: development
    overlays: [config/development.yaml]
    secrets:
      rotation:
        - reference: secret+vault://{base}/development/db#password
          generate: {{length: 24, alphabet: alphanumeric}}
          postgres: {{role: {roles[0]}, admin_dsn: "{admin_dsn}", admin_password: "{admin_password}"}}
        - reference: secret+vault://{base}/development/db2#password
          generate: {{length: 24, alphabet: alphanumeric}}
          postgres:
            role: {roles[1]}
            admin_dsn: "{admin_dsn}"
            admin_password: "{admin_password}"
            database: no_such_database_{roles[1]}
"""
    )


@pytest.fixture
def world(
    tmp_path: Path,
    pg_cluster_factory: ClusterFactory,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    from envsteward.rotation import engine

    # log every statement: the server log must not hold a plain password either
    cluster = pg_cluster_factory("rotation", password_auth=True, log_statement="all")
    admin_password = "Adm-" + secrets.token_hex(10)
    _set_password(cluster, "postgres", admin_password)
    roles = [f"rot_{secrets.token_hex(4)}", f"rot_{secrets.token_hex(4)}"]
    old = {role: "Old-" + secrets.token_hex(10) for role in roles}
    for role in roles:
        _set_password(cluster, role, old[role], create=True)

    vault = VaultClient.from_settings(vault_settings)
    mount, path = vault_kv_path.split("/", 1)
    vault.kv_write(mount, f"{path}/development/pgadmin", {"password": admin_password})
    vault.kv_write(mount, f"{path}/development/db", {"password": old[roles[0]], "user": roles[0]})
    vault.kv_write(mount, f"{path}/development/db2", {"password": old[roles[1]]})
    folder = tmp_path / "catalog"
    _catalog(folder, vault_kv_path, cluster.port, roles)

    # a spy on the real generator: the test must know the new value to log in with it
    generated: list[SecretStr] = []
    real_generate = engine.generate_value

    def recording_generate(policy: GeneratedValuePolicy) -> SecretStr:
        value = real_generate(policy)
        generated.append(value)
        return value

    monkeypatch.setattr(engine, "generate_value", recording_generate)
    settings = Settings(catalog=folder, home=tmp_path / "home", actor="tester", vault=vault_settings)
    services = Services(settings)
    set_services(services)
    try:
        yield World(cluster, services, vault, vault_kv_path, roles, old, admin_password, generated)
    finally:
        set_services(None)


def _outputs(world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What the test can capture: log records, stdout/stderr, every file under the home (the audit log),
    the server's log, and the Prefect API's logs, artifacts and run parameters/messages."""
    from prefect.client.orchestration import get_client

    captured = capsys.readouterr()
    parts = [caplog.text, captured.out, captured.err, world.cluster.log()]
    parts += [p.read_text(errors="replace") for p in world.services.settings.home.rglob("*") if p.is_file()]
    with get_client(sync_client=True) as client:
        parts += [str(a.data) for a in client.read_artifacts()]
        parts += [log.message for log in client.read_logs()]
        for run in client.read_flow_runs():
            parts += [str(run.parameters), str(run.state.message if run.state else "")]
        for task_run in client.read_task_runs():
            parts += [str(task_run.task_inputs), str(task_run.state.message if task_run.state else "")]
    return "\n".join(parts)


def _assert_no_value(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    haystack = _outputs(world, caplog, capsys)
    assert list(world.services.audit_log().records()), "the audit log was written"
    for value in world.secrets():
        assert value not in haystack, "a secret value leaked into an output"


# ---------------------------------------------------------------------------------------------------------


def test_rotated_password_logs_in_the_old_one_is_refused_vault_holds_the_new_version(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    role, old = world.roles[0], world.old[world.roles[0]]
    login(world.cluster, role, old)  # works before the rotation
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(world.cluster, role, "not-" + old)  # the cluster does check passwords over TCP
    version_before, _ = world.kv("db")

    result = rotate_secret("development", f"vault://{world.base}/development/db#password")
    assert result["outcome"] == "rotated", result
    assert result["steps"] == ["create", "set", "test", "finish"]

    version, data = world.kv("db")
    assert version == version_before + 1
    assert data["user"] == role
    assert [v.get_secret_value() for v in world.generated] == [data["password"]]
    login(world.cluster, role, data["password"])  # the new password, as read from Vault
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(world.cluster, role, old)
    assert world.kv("db", version=version_before)[1]["password"] == old  # the previous version is kept
    assert f'ALTER ROLE "{role}" PASSWORD' in world.cluster.log()  # so the server log below is not empty
    actions = [r.action for r in world.services.audit_log().records()]
    assert actions.count("rotation.step") == 4
    assert "rotation.completed" in actions
    _assert_no_value(world, caplog, capsys)


def test_a_failing_test_step_leaves_the_old_password_logging_in_and_refuses_the_new_one(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test step connects to a database that does not exist (the failure injected by the catalog, as
    in tests/flows/test_rotate_secret_flow.py): the password is set by then, so restore must undo it."""
    from envsteward.flows.rotate_secret import rotate_secret

    role, old = world.roles[1], world.old[world.roles[1]]
    before = world.kv("db2")
    with pytest.raises(RotationFailedError) as caught:
        rotate_secret("development", f"vault://{world.base}/development/db2#password")
    assert caught.value.step is Step.TEST
    assert caught.value.restored

    assert len(world.generated) == 1
    new = world.generated[0].get_secret_value()
    assert new != old
    login(world.cluster, role, old)
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(world.cluster, role, new)
    assert world.kv("db2") == before  # Vault still holds the old value, at the same version
    login(world.cluster, world.roles[0], world.old[world.roles[0]])  # the other role is untouched
    records = list(world.services.audit_log().records())
    failed = [r for r in records if r.action == "rotation.step" and r.details.get("outcome") == "failed"]
    assert [r.details["step"] for r in failed] == ["test"]
    assert any(r.action == "rotation.restored" for r in records)
    _assert_no_value(world, caplog, capsys)
