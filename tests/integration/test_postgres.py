"""PostgresClient against the machine's PostgreSQL (own database per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from envsteward.adapters.postgres import PostgresClient, dsn_for_database
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from tests.fixtures._proc import free_port
from tests.fixtures.databases import postgres_dsn

SEEDED_PASSWORD = "pg-seeded-password-7f3a9c"


@pytest.fixture
def client(postgres_db: str) -> PostgresClient:
    return PostgresClient(postgres_db, connect_timeout=3)


@pytest.fixture
def shop(client: PostgresClient) -> PostgresClient:
    client.execute(
        """
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
        CREATE SCHEMA billing;
        CREATE TABLE billing.invoices
                (id int PRIMARY KEY, customer int, amount numeric(10, 2), paid boolean);
        INSERT INTO customers VALUES
            (1, 'Ada', 'ada@example.test'), (2, 'Grace', NULL), (3, 'Linus', 'l@x.test');
        INSERT INTO billing.invoices VALUES (10, 1, 12.50, true), (11, 2, 99.00, false);
        CREATE TABLE empty_table (id int);
        """
    )
    return client


def test_query_ping_and_version(client: PostgresClient) -> None:
    assert client.query("SELECT %s::int + 1, %s::text", (41, "x")) == [(42, "x")]
    assert client.query("CREATE TABLE t (id int)") == []
    assert client.execute("INSERT INTO t SELECT generate_series(1, 5)") == 5
    latency = client.ping()
    assert 0 < latency < 5000
    version = client.server_version()
    assert version.split(".")[0].isdigit()
    assert int(version.split(".")[0]) >= 13
    assert client.target.startswith("127.0.0.1:5432/envsteward_test_")
    assert "password" not in repr(client)


def test_create_exists_drop_database(client: PostgresClient) -> None:
    name = f"envsteward_scratch_{uuid.uuid4().hex[:8]}"
    assert not client.database_exists(name)
    client.create_database(name)
    try:
        assert client.database_exists(name)
        scratch = client.for_database(name)
        scratch.execute("CREATE TABLE a (x int); INSERT INTO a VALUES (1)")
        with pytest.raises(ConflictError, match="42P04"):
            client.create_database(name)
        # An open session does not block a forced drop.
        with scratch.connect() as held:
            held.execute("SELECT 1")
            client.drop_database(name, force=True)
        assert not client.database_exists(name)
    finally:
        client.drop_database(name)
    client.drop_database(name)  # missing_ok by default: idempotent
    with pytest.raises(NotFoundError, match="3D000"):
        client.drop_database(name, missing_ok=False)


def test_drop_the_database_it_is_connected_to(postgres_dsn_base: str) -> None:
    name = f"envsteward_scratch_{uuid.uuid4().hex[:8]}"
    admin = PostgresClient(postgres_dsn_base)
    admin.create_database(name)
    own = PostgresClient(postgres_dsn(name))
    own.drop_database(name)  # switches to the maintenance database for the drop
    assert not admin.database_exists(name)


def test_row_counts_and_checksums_follow_content(shop: PostgresClient) -> None:
    counts = shop.table_row_counts()
    assert counts == {"billing.invoices": 2, "public.customers": 3, "public.empty_table": 0}
    before = shop.table_checksums()
    assert set(before) == set(counts)
    assert all(len(value) == 32 for value in before.values())
    assert shop.table_checksums() == before  # deterministic

    shop.execute("UPDATE customers SET name = 'Ada L.' WHERE id = 1")
    after = shop.table_checksums()
    assert after["public.customers"] != before["public.customers"]
    assert after["billing.invoices"] == before["billing.invoices"]

    shop.execute("UPDATE customers SET name = 'Ada' WHERE id = 1")
    assert shop.table_checksums() == before  # same content, same checksum

    shop.execute("DELETE FROM billing.invoices WHERE id = 11")
    assert shop.table_row_counts()["billing.invoices"] == 1
    assert shop.table_checksums()["billing.invoices"] != before["billing.invoices"]


def test_checksums_ignore_physical_order(shop: PostgresClient, postgres_dsn_base: str) -> None:
    """The same rows inserted in another order (another database) give the same checksums."""
    name = f"envsteward_scratch_{uuid.uuid4().hex[:8]}"
    shop.create_database(name)
    try:
        other = shop.for_database(name)
        other.execute(
            """
            CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
            CREATE SCHEMA billing;
            CREATE TABLE billing.invoices
                (id int PRIMARY KEY, customer int, amount numeric(10, 2), paid boolean);
            INSERT INTO customers VALUES (3, 'Linus', 'l@x.test'), (2, 'Grace', NULL);
            INSERT INTO customers VALUES (1, 'Ada', 'ada@example.test');
            INSERT INTO billing.invoices VALUES (11, 2, 99.00, false), (10, 1, 12.50, true);
            CREATE TABLE empty_table (id int);
            """
        )
        assert other.table_checksums() == shop.table_checksums()
        assert other.table_row_counts() == shop.table_row_counts()
    finally:
        shop.drop_database(name)


def test_missing_database_is_not_found(postgres_dsn_base: str) -> None:
    client = PostgresClient(postgres_dsn(f"envsteward_missing_{uuid.uuid4().hex[:8]}"))
    with pytest.raises(NotFoundError) as caught:
        client.ping()
    assert not caught.value.transient
    assert "postgres: ping on 127.0.0.1:5432/envsteward_missing_" in str(caught.value)


def test_missing_table_is_not_found(client: PostgresClient) -> None:
    with pytest.raises(NotFoundError, match="42P01"):
        client.query("SELECT * FROM no_such_table")


def test_closed_port_is_transient() -> None:
    client = PostgresClient(
        f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres", connect_timeout=2
    )
    with pytest.raises(TransientError) as caught:
        client.query("SELECT 1")
    assert caught.value.transient
    assert caught.value.system == "postgres"


def test_unknown_role_is_authentication_error(postgres_db: str) -> None:
    client = PostgresClient(postgres_db.replace("user=postgres", "user=envsteward_no_such_role"))
    with pytest.raises(AuthenticationError):
        client.ping()


@pytest.fixture
def reader_role(client: PostgresClient) -> Iterator[str]:
    role = f"envsteward_reader_{uuid.uuid4().hex[:8]}"
    client.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    client.execute("CREATE TABLE private_data (id int); INSERT INTO private_data VALUES (1)")
    yield role
    client.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    client.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_permission_denied(postgres_db: str, reader_role: str) -> None:
    as_reader = PostgresClient(postgres_db.replace("user=postgres", f"user={reader_role}"))
    assert as_reader.query("SELECT 1") == [(1,)]
    with pytest.raises(PermissionDeniedError, match="42501"):
        as_reader.query("SELECT * FROM private_data")
    with pytest.raises(PermissionDeniedError):
        as_reader.create_database(f"envsteward_denied_{uuid.uuid4().hex[:8]}")


def test_connection_limit_is_transient(client: PostgresClient, postgres_db: str) -> None:
    """A role over its connection limit gets 53300 (too many connections): retry later."""
    role = f"envsteward_limited_{uuid.uuid4().hex[:8]}"
    client.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 0").format(sql.Identifier(role)))
    try:
        limited = PostgresClient(postgres_db.replace("user=postgres", f"user={role}"))
        with pytest.raises(TransientError):
            limited.ping()
    finally:
        client.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_other_errors_are_permanent_and_hide_data_values(client: PostgresClient) -> None:
    with pytest.raises(PermanentError) as caught:
        client.query("SELECT %s::int", ("not-a-number-s3cr3t",))
    assert not caught.value.transient
    assert "22P02" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    client.execute("CREATE TABLE u (email text UNIQUE)")
    client.execute("INSERT INTO u VALUES (%s)", ("dup-s3cr3t@example.test",))
    with pytest.raises(ConflictError) as dup:
        client.execute("INSERT INTO u VALUES (%s)", ("dup-s3cr3t@example.test",))
    assert "s3cr3t" not in str(dup.value)


def test_syntax_errors_hide_the_token_they_quote(client: PostgresClient) -> None:
    # A literal spliced into a statement (client-side binding, e.g. ALTER ROLE ... PASSWORD) is the token
    # PostgreSQL quotes in "syntax error at or near ...".
    with pytest.raises(PermanentError) as caught:
        client.execute("SELECT 'a' 'literal-s3cr3t'")
    assert "42601" in str(caught.value)
    assert "syntax error" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_missing_relation_keeps_its_name(client: PostgresClient) -> None:
    with pytest.raises(NotFoundError, match='relation "no_such_table" does not exist'):
        client.query("SELECT * FROM no_such_table")


def test_password_is_passed_separately_and_never_shown(postgres_db: str) -> None:
    with pytest.raises(ConfigurationError, match="contains a password") as in_dsn:
        PostgresClient(f"postgresql://postgres:{SEEDED_PASSWORD}@127.0.0.1:5432/postgres")
    assert SEEDED_PASSWORD not in str(in_dsn.value)
    with pytest.raises(ConfigurationError) as in_kv:
        PostgresClient(f"host=127.0.0.1 password={SEEDED_PASSWORD} dbname=postgres")
    assert SEEDED_PASSWORD not in str(in_kv.value)

    # Trust auth ignores the password, so the call succeeds and the password went to libpq only.
    client = PostgresClient(postgres_db, password=SecretStr(SEEDED_PASSWORD))
    assert client.query("SELECT 1") == [(1,)]
    assert SEEDED_PASSWORD not in repr(client)
    missing = client.for_database(f"envsteward_missing_{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFoundError) as caught:
        missing.ping()
    assert SEEDED_PASSWORD not in str(caught.value)
    assert SEEDED_PASSWORD not in repr(caught.value)
    closed = PostgresClient(
        f"host=127.0.0.1 port={free_port()} user=postgres", password=SecretStr(SEEDED_PASSWORD)
    )
    with pytest.raises(TransientError) as refused:
        closed.ping()
    assert SEEDED_PASSWORD not in str(refused.value)


def test_malformed_dsn_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="malformed connection string"):
        PostgresClient("host=127.0.0.1 this is not a dsn")


def test_dsn_for_database_keeps_server_and_user_and_connects(
    postgres_dsn_base: str, postgres_db: str
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(postgres_db)["dbname"]
    url = dsn_for_database("postgresql://postgres@127.0.0.1:5432/postgres?connect_timeout=3", name)
    assert conninfo_to_dict(url) == {
        "host": "127.0.0.1",
        "port": "5432",
        "user": "postgres",
        "dbname": name,
        "connect_timeout": "3",
    }
    assert PostgresClient(dsn_for_database(postgres_dsn_base, name)).query("SELECT current_database()") == [
        (name,)
    ]


def test_dsn_for_database_rejects_a_malformed_dsn_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="malformed connection string") as caught:
        dsn_for_database("host=127.0.0.1 s3cr3t-token is not a dsn", "scratch")
    assert "s3cr3t" not in str(caught.value)


def test_connect_context_translates_errors_raised_inside(client: PostgresClient) -> None:
    with pytest.raises(NotFoundError), client.connect("custom") as conn:
        conn.execute("SELECT * FROM nowhere")
    with client.connect() as conn:
        assert isinstance(conn, psycopg.Connection)


def test_checksums_are_the_documented_two_lane_md5_sum(shop: PostgresClient) -> None:
    """Recompute pg-md5-sum128/v2 in Python from each row's text form: the server's value must match."""
    import hashlib

    from envsteward.adapters.pg_checksums import SESSION_SETTINGS, combine_lanes

    with shop.connect() as conn:
        for name, value in SESSION_SETTINGS:
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        texts = [str(row[0]) for row in conn.execute("SELECT t::text FROM customers AS t").fetchall()]
    lane_a = lane_b = 0
    for text in texts:
        digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
        lane_a += int.from_bytes(digest[:8], "big")
        lane_b += int.from_bytes(digest[8:], "big")
    assert len(texts) == 3
    assert shop.table_checksums()["public.customers"] == combine_lanes(lane_a, lane_b)
    # an empty table sums to zero; two identical rows do not cancel out (a multiset sum, not XOR)
    assert shop.table_checksums()["public.empty_table"] == "0" * 32
    shop.execute("INSERT INTO empty_table VALUES (7), (7)")
    assert shop.table_checksums()["public.empty_table"] != "0" * 32


def test_checksums_do_not_depend_on_the_session_time_zone(shop: PostgresClient) -> None:
    """The pinned session settings win over a role/database default (production vs a scratch server)."""
    shop.execute("CREATE TABLE moments (at timestamptz, span interval, x float8, b bytea)")
    shop.execute("INSERT INTO moments VALUES ('2024-01-01 12:00+02', '1 day 2 hours', 0.1, '\\x01')")
    before = shop.table_checksums()["public.moments"]
    shop.execute(
        sql.SQL(
            "ALTER DATABASE {} SET TimeZone = 'Asia/Tokyo'; "
            "ALTER DATABASE {} SET DateStyle = 'SQL, DMY'; "
            "ALTER DATABASE {} SET extra_float_digits = 0"
        ).format(*[sql.Identifier(shop.dbname)] * 3)
    )
    assert shop.table_checksums()["public.moments"] == before


def test_combine_lanes_wraps_modulo_2_to_the_64() -> None:
    from envsteward.adapters.pg_checksums import combine_lanes

    assert combine_lanes(-1, 1 << 64) == "f" * 16 + "0" * 16
    assert combine_lanes((1 << 64) + 5, -(1 << 65) + 10) == f"{5:016x}{10:016x}"
