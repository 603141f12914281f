"""Every health check kind against the real thing on loopback (HTTP server, PostgreSQL, Redis, OpenBao,
moto S3), up and down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from envsteward.catalog.refs import SecretRef
from envsteward.errors import NotFoundError
from envsteward.health.checks import CheckContext, run_check
from envsteward.health.result import CheckResult, CheckStatus
from envsteward.health.specs import HTTPCheck, PostgresCheck, RedisCheck, S3Check, VaultCheck
from tests.fixtures._proc import free_port

SEEDED_SECRET = "hunter2-health-seeded-secret"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        code = {"/fail": 503, "/missing": 404}.get(self.path, 200)
        body = f"body mentions {SEEDED_SECRET}".encode()  # a response body must never reach the detail
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the timeout test hangs up on a slow answer: a broken pipe is expected there


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise NotFoundError(f"no secret at {ref.uri()}", system="test", operation="read")


def ctx(resolve=_no_secrets, **kwargs: object) -> CheckContext:  # type: ignore[no-untyped-def]
    return CheckContext(environment="staging", resolve_secret=resolve, **kwargs)  # type: ignore[arg-type]


def assert_clean(result: CheckResult) -> None:
    assert SEEDED_SECRET not in result.model_dump_json()


# -- HTTP ----------------------------------------------------------------------------------------------------


def test_http_up(http_base: str) -> None:
    result = run_check(HTTPCheck(kind="http", name="api", url=f"{http_base}/ok"), ctx())
    assert (result.status, result.detail, result.kind) == (CheckStatus.UP, "HTTP 200", "http")
    assert result.latency_ms is not None
    assert 0 < result.latency_ms < 1000
    assert result.environment == "staging"
    assert result.check == "api"
    assert result.checked_at.tzinfo is not None
    assert_clean(result)


def test_http_503_is_down_and_transient(http_base: str) -> None:
    result = run_check(HTTPCheck(kind="http", name="api", url=f"{http_base}/fail"), ctx())
    assert (result.status, result.detail, result.transient) == (
        CheckStatus.DOWN,
        "HTTP 503 (expected 200)",
        True,
    )
    assert_clean(result)


def test_http_unexpected_4xx_is_down_and_not_transient(http_base: str) -> None:
    result = run_check(HTTPCheck(kind="http", name="api", url=f"{http_base}/missing"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
    assert result.detail == "HTTP 404 (expected 200)"


def test_http_expected_status_list(http_base: str) -> None:
    spec = HTTPCheck(kind="http", name="api", url=f"{http_base}/missing", expect_status=[200, 404])
    assert run_check(spec, ctx()).status is CheckStatus.UP


def test_http_slow_is_degraded(http_base: str) -> None:
    spec = HTTPCheck(kind="http", name="api", url=f"{http_base}/slow", max_latency_ms=100)
    result = run_check(spec, ctx())
    assert result.status is CheckStatus.DEGRADED
    assert result.detail.startswith("latency ")
    assert result.detail.endswith(" ms > 100 ms")
    assert result.latency_ms is not None
    assert result.latency_ms >= 300


def test_http_timeout_is_down(http_base: str) -> None:
    spec = HTTPCheck(kind="http", name="api", url=f"{http_base}/slow", timeout_seconds=0.1)
    result = run_check(spec, ctx())
    assert (result.status, result.detail, result.transient) == (
        CheckStatus.DOWN,
        "timed out after 0.1 s",
        True,
    )


def test_http_closed_port_is_down() -> None:
    spec = HTTPCheck(kind="http", name="api", url=f"http://127.0.0.1:{free_port()}/")
    result = run_check(spec, ctx())
    assert (result.status, result.detail, result.transient) == (CheckStatus.DOWN, "connection refused", True)


def test_http_credentials_in_url_never_reach_the_detail() -> None:
    spec = HTTPCheck(kind="http", name="api", url=f"http://user:{SEEDED_SECRET}@127.0.0.1:{free_port()}/")
    result = run_check(spec, ctx())
    assert result.status is CheckStatus.DOWN
    assert_clean(result)


def test_http_malformed_url_is_a_clear_misconfiguration() -> None:
    result = run_check(HTTPCheck(kind="http", name="api", url="ftp://example.invalid/"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
    assert "invalid URL" in result.detail


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def test_postgres_up() -> None:
    spec = PostgresCheck(kind="postgres", name="db", dsn="postgresql://postgres@127.0.0.1:5432/postgres")
    result = run_check(spec, ctx())
    assert (result.status, result.detail) == (CheckStatus.UP, "query ok"), result.detail


def test_postgres_custom_query_and_resolved_password() -> None:
    seen: list[SecretRef] = []

    def resolve(ref: SecretRef) -> SecretStr:
        seen.append(ref)
        return SecretStr(SEEDED_SECRET)  # trust auth ignores it; it must still never show up

    spec = PostgresCheck(
        kind="postgres",
        name="db",
        dsn="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        password="secret+env://HEALTH_TEST_PG_PASSWORD",
        query="SELECT count(*) FROM pg_catalog.pg_database",
    )
    result = run_check(spec, ctx(resolve))
    assert result.status is CheckStatus.UP, result.detail
    assert seen == [SecretRef("env", "HEALTH_TEST_PG_PASSWORD")]
    assert_clean(result)


def test_postgres_closed_port_is_down() -> None:
    spec = PostgresCheck(
        kind="postgres", name="db", dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    )
    result = run_check(spec, ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, True)
    assert "refused" in result.detail.lower(), result.detail


def test_postgres_failing_query_is_down() -> None:
    spec = PostgresCheck(
        kind="postgres",
        name="db",
        dsn="postgresql://postgres@127.0.0.1:5432/postgres",
        query="SELECT * FROM nope_x",
    )
    result = run_check(spec, ctx())
    assert result.status is CheckStatus.DOWN
    assert "nope_x" in result.detail


def test_postgres_unresolvable_password_is_down_with_a_clear_detail() -> None:
    spec = PostgresCheck(
        kind="postgres",
        name="db",
        dsn="postgresql://postgres@127.0.0.1:5432/postgres",
        password="secret+vault://secret/app/db#password",
    )
    result = run_check(spec, ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
    assert result.detail.startswith("cannot resolve password vault://secret/app/db#password")


def test_postgres_dsn_with_a_password_is_refused_without_echoing_it() -> None:
    spec = PostgresCheck(
        kind="postgres", name="db", dsn=f"postgresql://postgres:{SEEDED_SECRET}@127.0.0.1:5432/postgres"
    )
    result = run_check(spec, ctx())
    assert result.status is CheckStatus.DOWN
    assert "password" in result.detail
    assert_clean(result)


# -- Redis ---------------------------------------------------------------------------------------------------


def test_redis_up() -> None:
    result = run_check(RedisCheck(kind="redis", name="cache", url="redis://127.0.0.1:6379/0"), ctx())
    assert (result.status, result.detail) == (CheckStatus.UP, "PONG"), result.detail
    assert result.latency_ms is not None


def test_redis_closed_port_is_down() -> None:
    result = run_check(
        RedisCheck(kind="redis", name="cache", url=f"redis://127.0.0.1:{free_port()}/0"), ctx()
    )
    assert (result.status, result.detail, result.transient) == (
        CheckStatus.DOWN,
        "Redis is not reachable (connection refused)",
        True,
    )


def test_redis_wrong_password_is_down_without_the_password() -> None:
    # the machine's Redis has only the default user: AUTH as another user is refused (WRONGPASS)
    spec = RedisCheck(
        kind="redis", name="cache", url="redis://nosuchuser@127.0.0.1:6379/0", password="secret+env://X"
    )
    result = run_check(spec, ctx(lambda ref: SecretStr(SEEDED_SECRET)))
    assert (result.status, result.transient) == (CheckStatus.DOWN, False), result.detail
    assert result.detail == "authentication failed (check the password reference)"
    assert_clean(result)


def test_redis_malformed_url() -> None:
    result = run_check(RedisCheck(kind="redis", name="cache", url="http://127.0.0.1:6379"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
    assert "not a valid Redis URL" in result.detail


# -- Vault ---------------------------------------------------------------------------------------------------


def test_vault_with_its_own_addr_up(vault_server) -> None:  # type: ignore[no-untyped-def]
    result = run_check(VaultCheck(kind="vault", name="vault", addr=vault_server.addr), ctx())
    assert (result.status, result.detail) == (CheckStatus.UP, "active"), result.detail


def test_vault_from_settings_up(vault_server) -> None:  # type: ignore[no-untyped-def]
    from envsteward.adapters.vault import VaultClient
    from envsteward.settings import VaultSettings

    calls: list[float] = []

    def health(timeout: float):  # type: ignore[no-untyped-def]
        calls.append(timeout)
        settings = VaultSettings(addr=vault_server.addr, timeout_seconds=timeout)
        return VaultClient.from_settings(settings, authenticate=False).health()

    result = run_check(VaultCheck(kind="vault", name="vault", timeout_seconds=3), ctx(vault_health=health))
    assert (result.status, result.detail) == (CheckStatus.UP, "active"), result.detail
    assert calls == [3]


def test_vault_closed_port_is_down() -> None:
    result = run_check(VaultCheck(kind="vault", name="vault", addr=f"http://127.0.0.1:{free_port()}"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, True)
    assert "connection refused" in result.detail


def test_vault_not_a_vault_server(http_base: str) -> None:
    result = run_check(VaultCheck(kind="vault", name="vault", addr=http_base), ctx())
    assert result.status is CheckStatus.DOWN
    assert "not a Vault health document" in result.detail
    assert_clean(result)


def test_vault_without_any_address_is_a_misconfiguration() -> None:
    result = run_check(VaultCheck(kind="vault", name="vault"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
    assert "ENVSTEWARD_VAULT__ADDR" in result.detail


# -- S3 ------------------------------------------------------------------------------------------------------


def test_s3_bucket_reachable(aws_clients, s3_buckets) -> None:  # type: ignore[no-untyped-def]
    spec = S3Check(kind="s3", name="backups", bucket=s3_buckets.primary)
    result = run_check(spec, ctx(aws_clients=lambda: aws_clients))
    assert (result.status, result.detail) == (CheckStatus.UP, "bucket reachable"), result.detail
    dr = S3Check(kind="s3", name="dr", bucket=s3_buckets.dr, region=s3_buckets.dr_region)
    assert run_check(dr, ctx(aws_clients=lambda: aws_clients)).status is CheckStatus.UP


def test_s3_missing_bucket_is_down(aws_clients, aws_name_prefix) -> None:  # type: ignore[no-untyped-def]
    spec = S3Check(kind="s3", name="backups", bucket=f"{aws_name_prefix}-missing")
    result = run_check(spec, ctx(aws_clients=lambda: aws_clients))
    assert (result.status, result.transient) == (CheckStatus.DOWN, False), result.detail
    assert f"{aws_name_prefix}-missing" in result.detail


def test_s3_unreachable_endpoint_is_down() -> None:
    from envsteward.adapters.aws import AWSClients
    from envsteward.settings import AWSSettings

    clients = AWSClients(
        AWSSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout_seconds=1, max_attempts=1)
    )
    result = run_check(
        S3Check(kind="s3", name="backups", bucket="anything"), ctx(aws_clients=lambda: clients)
    )
    assert (result.status, result.transient) == (CheckStatus.DOWN, True), result.detail


def test_s3_without_aws_is_a_misconfiguration() -> None:
    result = run_check(S3Check(kind="s3", name="backups", bucket="b"), ctx())
    assert (result.status, result.transient) == (CheckStatus.DOWN, False)
