"""SSM Parameter Store, Secrets Manager and KMS adapters against moto_server."""

from __future__ import annotations

import json
import secrets

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from envsteward.adapters.aws import (
    AWSClients,
    KMSKeyProvider,
    SecretsManager,
    SecretsManagerSecretStore,
    SecretsManagerSource,
    SSMParameterSource,
    SSMSecretStore,
    aws_errors,
    decode_scalar,
    encode_scalar,
)
from envsteward.errors import (
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from envsteward.ports import ConfigSource, KeyProvider, SecretStore
from envsteward.settings import AWSSettings
from tests.fixtures._proc import free_port

# -- SSM -------------------------------------------------------------------------------------------


def _put(clients: AWSClients, name: str, value: str, kind: str = "String") -> None:
    clients.ssm().put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)


def test_ssm_reads_all_pages_nested_and_decoded(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    prefix = f"/{aws_name_prefix}/staging"
    for n in range(23):  # GetParametersByPath pages hold at most 10
        _put(aws_clients, f"{prefix}/workers/w{n:02d}", str(n))
    _put(aws_clients, f"{prefix}/log/level", "info")
    _put(aws_clients, f"{prefix}/db/port", "5432")
    _put(aws_clients, f"{prefix}/db/ssl", "true")
    _put(aws_clients, f"{prefix}/db/ratio", "0.5")
    _put(aws_clients, f"{prefix}/db/password", "pa55-word", kind="SecureString")
    _put(aws_clients, f"{prefix}/db/quoted", '"5432"')
    _put(aws_clients, f"{prefix}/db/json_object", '{"a": 1}')
    _put(aws_clients, f"/{aws_name_prefix}/stagingX/other", "not under the prefix")

    source = SSMParameterSource("ssm", aws_clients, prefix, writable=False, value_format="json")
    assert isinstance(source, ConfigSource)
    tree = source.read()
    assert len(tree["workers"]) == 23
    assert tree["workers"]["w22"] == 22
    assert tree["log"] == {"level": "info"}
    assert tree["db"] == {
        "port": 5432,
        "ssl": True,
        "ratio": 0.5,
        "password": "pa55-word",  # SecureString decrypted
        "quoted": "5432",
        "json_object": '{"a": 1}',
    }
    assert type(tree["db"]["port"]) is int
    assert type(tree["db"]["ssl"]) is bool
    assert set(tree) == {"workers", "log", "db"}

    raw = SSMParameterSource("ssm", aws_clients, prefix, value_format="string").read()
    assert raw["db"]["port"] == "5432"
    assert raw["db"]["ssl"] == "true"


def test_ssm_write_keeps_type_and_exact_json_types(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    prefix = f"/{aws_name_prefix}/app"
    _put(aws_clients, f"{prefix}/db/password", "old", kind="SecureString")
    _put(aws_clients, f"{prefix}/db/host", "db1")
    source = SSMParameterSource("ssm", aws_clients, prefix, writable=True)

    source.write(("db", "password"), "new-pass")
    source.write(("db", "host"), "db2")
    source.write(("db", "port"), 6432)
    source.write(("db", "port_text"), "6432")
    source.write(("flags", "on"), True)
    source.write(("flags", "none"), None)

    ssm = aws_clients.ssm()
    assert ssm.get_parameter(Name=f"{prefix}/db/password")["Parameter"]["Type"] == "SecureString"
    assert ssm.get_parameter(Name=f"{prefix}/db/host")["Parameter"]["Type"] == "String"
    assert (
        ssm.get_parameter(Name=f"{prefix}/db/port")["Parameter"]["Type"] == "SecureString"
    )  # new: fail safe
    tree = source.read()
    assert tree["db"] == {"password": "new-pass", "host": "db2", "port": 6432, "port_text": "6432"}
    assert type(tree["db"]["port"]) is int
    assert type(tree["db"]["port_text"]) is str
    assert tree["flags"] == {"on": True, "none": None}

    with pytest.raises(PermanentError, match="one scalar"):
        source.write(("db",), {"nested": 1})
    with pytest.raises(PermanentError, match="read-only"):
        SSMParameterSource("ro", aws_clients, prefix).write(("db", "host"), "x")


@pytest.mark.parametrize(
    "value", [5432, "5432", True, "true", None, "null", 0.25, "plain text", '"q"', '{"a":1}', "-1"]
)
def test_scalar_encoding_round_trips_exactly(value: object) -> None:
    decoded = decode_scalar(encode_scalar(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_ssm_missing_prefix_and_secret_store(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    with pytest.raises(NotFoundError, match=f"aws: ssm read /{aws_name_prefix}/none"):
        SSMParameterSource("ssm", aws_clients, f"/{aws_name_prefix}/none").read()
    assert SSMParameterSource("ssm", aws_clients, f"/{aws_name_prefix}/none", missing_ok=True).read() == {}

    _put(aws_clients, f"/{aws_name_prefix}/token", "tok-123", kind="SecureString")
    _put(aws_clients, f"/{aws_name_prefix}/json", '{"user": "u", "password": "p"}', kind="SecureString")
    store = SSMSecretStore(aws_clients)
    assert isinstance(store, SecretStore)
    assert store.get_secret(f"/{aws_name_prefix}/token", None).get_secret_value() == "tok-123"
    assert store.get_secret(f"/{aws_name_prefix}/json", "password").get_secret_value() == "p"
    assert store.secret_exists(f"/{aws_name_prefix}/token", None)
    assert not store.secret_exists(f"/{aws_name_prefix}/missing", None)
    with pytest.raises(NotFoundError, match="ParameterNotFound"):
        store.get_secret(f"/{aws_name_prefix}/missing", None)


# -- Secrets Manager -------------------------------------------------------------------------------


def test_secrets_manager_list_get_put(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    sm = SecretsManager(aws_clients)
    names = [f"{aws_name_prefix}/app/s{n}" for n in range(7)]
    for name in names:
        sm.put_secret_string(name, SecretStr(f"value-{name}"), description="test")
    sm.put_secret_string(f"{aws_name_prefix}-other/x", SecretStr("x"))

    listed = sm.list_secrets(f"{aws_name_prefix}/app/", page_size=3)
    assert [s.name for s in listed] == names
    described = sm.describe(names[0])
    assert described.description == "test"
    assert described.current_version_id
    assert "value-" not in repr(described)

    v2 = sm.put_secret_string(names[0], SecretStr("changed"))
    assert sm.describe(names[0]).current_version_id == v2
    assert sm.get_secret_string(names[0]).get_secret_value() == "changed"
    with pytest.raises(NotFoundError, match="ResourceNotFoundException"):
        sm.get_secret_string(f"{aws_name_prefix}/missing")
    sm.delete(names[1], force=True)
    assert names[1] not in [s.name for s in sm.list_secrets(f"{aws_name_prefix}/app/")]


def test_secrets_manager_source_and_store(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    sm = SecretsManager(aws_clients)
    prefix = f"{aws_name_prefix}/staging/app"
    sm.put_secret_string(f"{prefix}/db", SecretStr(json.dumps({"host": "db", "port": 5432})))
    sm.put_secret_string(f"{prefix}/cache/redis", SecretStr(json.dumps({"url": "redis://r"})))
    sm.put_secret_string(f"{prefix}/api_key", SecretStr("plain-string-key"))
    sm.put_secret_string(f"{prefix}x/not-mine", SecretStr("{}"))

    source = SecretsManagerSource("sm", aws_clients, prefix)
    assert source.writable is False
    assert source.read() == {
        "db": {"host": "db", "port": 5432},
        "cache": {"redis": {"url": "redis://r"}},
        "api_key": "plain-string-key",
    }
    with pytest.raises(PermanentError, match="read-only"):
        source.write(("db", "port"), 1)

    writable = SecretsManagerSource("sm", aws_clients, prefix, writable=True)
    writable.write(("db", "port"), 6432)
    writable.write(("queue", "name"), "jobs")
    tree = writable.read()
    assert tree["db"] == {"host": "db", "port": 6432}
    assert tree["queue"] == {"name": "jobs"}
    with pytest.raises(PermanentError, match="host/name: host holds a value, not a mapping"):
        writable.write(("db", "host", "name"), "x")
    assert writable.read()["db"] == {"host": "db", "port": 6432}

    store = SecretsManagerSecretStore(aws_clients)
    assert isinstance(store, SecretStore)
    assert store.get_secret(f"{prefix}/db", "host").get_secret_value() == "db"
    assert store.get_secret(f"{prefix}/db", "port").get_secret_value() == "6432"
    assert json.loads(store.get_secret(f"{prefix}/db", None).get_secret_value())["port"] == 6432
    assert store.get_secret(f"{prefix}/api_key", None).get_secret_value() == "plain-string-key"
    assert not store.secret_exists(f"{prefix}/db", "nope")
    assert not store.secret_exists(f"{prefix}/nothing", None)
    with pytest.raises(PermanentError, match="not a JSON object"):
        store.get_secret(f"{prefix}/api_key", "field")
    with pytest.raises(NotFoundError):
        SecretsManagerSource("sm", aws_clients, f"{aws_name_prefix}/none").read()


# -- KMS -------------------------------------------------------------------------------------------


def test_kms_data_key_round_trip_and_wrong_key(aws_clients: AWSClients, kms_key_id: str) -> None:
    provider = KMSKeyProvider(aws_clients, kms_key_id)
    assert isinstance(provider, KeyProvider)
    data_key = provider.generate_data_key()
    assert len(data_key.plaintext) == 32
    assert data_key.wrapped != data_key.plaintext
    assert data_key.key_id == kms_key_id
    assert provider.unwrap(data_key.wrapped, data_key.key_id) == data_key.plaintext
    assert provider.unwrap(data_key.wrapped, provider.key_arn()) == data_key.plaintext

    other_id = aws_clients.kms().create_key(Description="other")["KeyMetadata"]["KeyId"]
    other = KMSKeyProvider(aws_clients, other_id)
    with pytest.raises(IntegrityError, match="wrapped by"):
        other.unwrap(data_key.wrapped, data_key.key_id)
    corrupted = bytes([data_key.wrapped[0] ^ 0xFF]) + data_key.wrapped[1:]
    with pytest.raises(IntegrityError, match="InvalidCiphertextException"):
        provider.unwrap(corrupted, kms_key_id)
    with pytest.raises(NotFoundError):
        KMSKeyProvider(aws_clients, "00000000-0000-0000-0000-000000000000").generate_data_key()


# -- errors ----------------------------------------------------------------------------------------


def test_unreachable_endpoint_is_transient_for_every_service() -> None:
    clients = AWSClients(
        AWSSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout_seconds=1, max_attempts=1)
    )
    calls = [
        lambda: SSMParameterSource("s", clients, "/x").read(),
        lambda: SecretsManager(clients).get_secret_string("x"),
        lambda: KMSKeyProvider(clients, "k").generate_data_key(),
    ]
    for call in calls:
        with pytest.raises(TransientError, match="cannot reach the AWS endpoint"):
            call()


def test_no_secret_value_in_any_exception(
    aws_clients: AWSClients, aws_name_prefix: str, kms_key_id: str
) -> None:
    seeded = f"SEEDED-{secrets.token_hex(8)}"
    sm = SecretsManager(aws_clients)
    sm.put_secret_string(f"{aws_name_prefix}/db", SecretStr(json.dumps({"password": seeded})))
    sm.put_secret_string(f"{aws_name_prefix}/plain", SecretStr(seeded))
    _put(aws_clients, f"/{aws_name_prefix}/p", seeded, kind="SecureString")
    provoked: list[EnvstewardError] = []

    def provoke(call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except EnvstewardError as exc:
            provoked.append(exc)

    store = SecretsManagerSecretStore(aws_clients)
    provoke(lambda: store.get_secret(f"{aws_name_prefix}/db", "nope"))
    provoke(lambda: store.get_secret(f"{aws_name_prefix}/plain", "field"))
    provoke(lambda: SSMSecretStore(aws_clients).get_secret(f"/{aws_name_prefix}/p", "field"))
    provoke(lambda: sm.put_secret_string("", SecretStr(seeded)))
    provoke(lambda: KMSKeyProvider(aws_clients, kms_key_id).unwrap(seeded.encode(), kms_key_id))
    assert len(provoked) == 5, provoked
    for exc in provoked:
        text = str(exc) + repr(exc)
        assert seeded not in text, text
        assert exc.__cause__ is None


def test_vendor_messages_that_echo_input_are_redacted(aws_clients: AWSClients) -> None:
    """AWS validation errors quote the rejected input; the translated error must not repeat it."""
    seeded = f"SEEDED-{secrets.token_hex(8)}" * 60  # over the 1024-character filter limit
    raw = aws_clients.ssm()
    with pytest.raises(ClientError) as vendor:
        raw.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [seeded]}])
    assert seeded in str(vendor.value)  # proves the vendor message really echoes it

    with pytest.raises(PermanentError) as info, aws_errors("ssm", "describe_parameters", "/x"):
        raw.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [seeded]}])
    assert "ValidationException" in str(info.value)
    assert seeded[:20] not in str(info.value)
    assert seeded[:20] not in repr(info.value)
    assert info.value.__cause__ is None
