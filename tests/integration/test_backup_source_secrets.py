"""Backup sources whose dumps hold secret values: a Vault KV tree (OpenBao) and SSM parameters (moto).

Round trips restore into a scratch prefix and compare; every test seeds a known secret value and checks
that it appears in no exception, log record, fact, report or repr (only in the dump's bytes).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.registry import BACKUP_SOURCES, RESTORE_TARGETS, Clients
from envsteward.adapters.vault import VaultClient, split_mount_path
from envsteward.backup.sources.ssm import SSMBackupSource, SSMRestoreTarget
from envsteward.backup.sources.vault_kv import VaultKVBackupSource, VaultKVRestoreTarget
from envsteward.catalog import SSMBackup, VaultKVBackup
from envsteward.errors import ConflictError, EnvstewardError, IntegrityError, NotFoundError


def _no_secret_anywhere(secret: str, caplog: pytest.LogCaptureFixture, *objects: Any) -> None:
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()
    for thing in objects:
        assert secret not in repr(thing)
        assert secret not in str(thing)
        if hasattr(thing, "facts"):
            assert secret not in json.dumps(thing.facts, default=str)


@pytest.fixture
def capture_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="envsteward")
    return caplog


def _tree(client: VaultClient, location: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    mount, path = split_mount_path(location)
    result = {}
    for relative in client.kv_walk(mount, path):
        try:
            secret = client.kv_read(mount, f"{path}/{relative}")
        except NotFoundError:
            continue  # current version deleted
        result[relative] = (dict(secret.data), dict(secret.custom_metadata))
    return result


# ---------------------------------------------------------------------------------------------------------
# Vault KV
# ---------------------------------------------------------------------------------------------------------


def test_vault_kv_tree_round_trip_into_a_scratch_prefix(
    vault_client: VaultClient, vault_kv_path: str, capture_logs: pytest.LogCaptureFixture
) -> None:
    value = f"vault-seeded-{secrets.token_hex(8)}"
    mount, base = split_mount_path(vault_kv_path)
    src = f"{base}/app"
    vault_client.kv_write(mount, f"{src}/db", {"user": "app", "password": value, "port": 5432})
    vault_client.kv_write(mount, f"{src}/db", {"user": "app", "password": value, "port": 6432})  # version 2
    vault_client.kv_write(mount, f"{src}/cache/redis", {"url": "redis://r:6379", "tls": True})
    vault_client.kv_write(mount, f"{src}/cache/deep/er/most", {"nested": {"list": [1, "two", None]}})
    vault_client.kv_update_metadata(mount, f"{src}/cache/redis", custom_metadata={"owner": "team-a"})
    vault_client.kv_write(mount, f"{src}/gone", {"k": "v"})
    vault_client.kv_delete_versions(mount, f"{src}/gone", [1])  # current version deleted: skipped

    source = VaultKVBackupSource("app-secrets", vault_client, f"{mount}/{src}")
    with source.dump() as stream:
        data = b"".join(stream)
    assert stream.complete
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0] == {"format": "envsteward-vault-kv/1", "source": f"{mount}/{src}"}
    assert [line["path"] for line in lines[1:]] == ["cache/deep/er/most", "cache/redis", "db"]
    db_line = next(line for line in lines if line.get("path") == "db")
    assert db_line["version"] == 2
    assert db_line["data"]["password"] == value  # in the (to be encrypted) stream, and only there
    assert stream.facts == {"location": f"{mount}/{src}", "secrets": 3, "skipped": 1}
    assert stream.tools["vault"] != ""

    scratch = f"{vault_kv_path}/restored"
    report = VaultKVRestoreTarget(vault_client, scratch).restore([data[:50], data[50:]])
    assert report.items == 3
    expected = _tree(vault_client, f"{mount}/{src}")
    assert "gone" not in expected
    assert _tree(vault_client, scratch) == expected
    assert _tree(vault_client, scratch)["cache/redis"][1] == {"owner": "team-a"}
    _no_secret_anywhere(value, capture_logs, stream, report, source)


def test_vault_restore_refuses_to_overwrite_and_never_shows_the_value(
    vault_client: VaultClient, vault_kv_path: str, capture_logs: pytest.LogCaptureFixture
) -> None:
    value = f"vault-seeded-{secrets.token_hex(8)}"
    mount, base = split_mount_path(vault_kv_path)
    vault_client.kv_write(mount, f"{base}/src/db", {"password": value})
    with VaultKVBackupSource("s", vault_client, f"{vault_kv_path}/src").dump() as stream:
        data = b"".join(stream)
    vault_client.kv_write(mount, f"{base}/dst/db", {"password": "already-here"})
    with pytest.raises(ConflictError) as caught:
        VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/dst").restore([data])
    assert vault_client.kv_read(mount, f"{base}/dst/db").data == {"password": "already-here"}
    # a damaged stream names the line, never its content
    damaged = data.replace(b'"password"', b'"password"{', 1)
    with pytest.raises(IntegrityError, match="line 2 is not valid JSON") as bad:
        VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/other").restore([damaged])
    escape = data.replace(b'"path":"db"', b'"path":"../../escape"', 1)
    with pytest.raises(IntegrityError, match="'path' must be a relative") as escaped:
        VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/other").restore([escape])
    with pytest.raises(IntegrityError, match="not a Vault KV dump"):
        VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/other").restore(
            [b'{"format": "envsteward-ssm/1"}\n']
        )
    VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/dst", overwrite=True).restore([data])
    assert vault_client.kv_read(mount, f"{base}/dst/db").data == {"password": value}
    _no_secret_anywhere(value, capture_logs, caught.value, bad.value, escaped.value)


def test_vault_dump_of_an_empty_location_is_not_found(vault_client: VaultClient, vault_kv_path: str) -> None:
    with (
        pytest.raises(NotFoundError, match="no secrets"),
        VaultKVBackupSource("s", vault_client, f"{vault_kv_path}/nothing").dump(),
    ):
        pass


def test_vault_secret_at_the_location_itself_is_kept(vault_client: VaultClient, vault_kv_path: str) -> None:
    mount, base = split_mount_path(vault_kv_path)
    vault_client.kv_write(mount, f"{base}/leaf", {"only": "me"})
    with VaultKVBackupSource("s", vault_client, f"{vault_kv_path}/leaf").dump() as stream:
        data = b"".join(stream)
    VaultKVRestoreTarget(vault_client, f"{vault_kv_path}/copy").restore([data])
    assert vault_client.kv_read(mount, f"{base}/copy").data == {"only": "me"}


# ---------------------------------------------------------------------------------------------------------
# SSM
# ---------------------------------------------------------------------------------------------------------


def _parameters(clients: AWSClients, prefix: str) -> dict[str, tuple[str, str]]:
    found = {}
    paginator = clients.ssm().get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=prefix, Recursive=True, WithDecryption=True):
        for parameter in page["Parameters"]:
            found[parameter["Name"][len(prefix) + 1 :]] = (parameter["Type"], parameter["Value"])
    return found


def test_ssm_parameters_round_trip_including_secure_strings(
    aws_clients: AWSClients, aws_name_prefix: str, capture_logs: pytest.LogCaptureFixture
) -> None:
    value = f"ssm-seeded-{secrets.token_hex(8)}"
    prefix = f"/{aws_name_prefix}/app"
    ssm = aws_clients.ssm()
    ssm.put_parameter(Name=f"{prefix}/db/password", Value=value, Type="SecureString", Description="db pw")
    ssm.put_parameter(Name=f"{prefix}/db/host", Value="db.internal", Type="String")
    ssm.put_parameter(Name=f"{prefix}/hosts", Value="a,b,c", Type="StringList")
    ssm.put_parameter(Name=f"{prefix}/log/level/deep", Value="5432", Type="String")
    ssm.put_parameter(Name=f"/{aws_name_prefix}/elsewhere", Value="not me", Type="String")

    source = SSMBackupSource("params", aws_clients, prefix + "/")
    with source.dump() as stream:
        data = b"".join(stream)
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0]["format"] == "envsteward-ssm/1"
    by_path = {line["path"]: line for line in lines[1:]}
    assert set(by_path) == {"db/password", "db/host", "hosts", "log/level/deep"}
    assert by_path["db/password"]["value"] == value  # decrypted, in the stream only
    assert by_path["db/password"]["type"] == "SecureString"
    assert by_path["db/password"]["description"] == "db pw"
    assert stream.facts["parameters"] == 4
    assert stream.facts["types"] == {"SecureString": 1, "String": 2, "StringList": 1}

    scratch = f"/{aws_name_prefix}/restored"
    report = SSMRestoreTarget(aws_clients, scratch).restore([data[:100], data[100:]])
    assert report.items == 4
    assert _parameters(aws_clients, scratch) == _parameters(aws_clients, prefix)
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [f"{scratch}/db/password"]}]
    )["Parameters"][0]
    assert described["Description"] == "db pw"

    with pytest.raises(ConflictError) as caught:
        SSMRestoreTarget(aws_clients, scratch).restore([data])
    SSMRestoreTarget(aws_clients, scratch, overwrite=True).restore([data])
    _no_secret_anywhere(value, capture_logs, stream, report, source, caught.value)


def test_ssm_empty_prefix_is_not_found(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    with (
        pytest.raises(NotFoundError, match="no parameters"),
        SSMBackupSource("p", aws_clients, f"/{aws_name_prefix}/none").dump(),
    ):
        pass


def test_ssm_restore_rejects_bad_records_without_echoing_them(
    aws_clients: AWSClients, aws_name_prefix: str
) -> None:
    value = f"ssm-seeded-{secrets.token_hex(8)}"
    header = b'{"format": "envsteward-ssm/1", "source": "/x", "region": "eu-west-1"}\n'
    bad_type = json.dumps({"path": "a", "type": "Binary", "value": value}).encode()
    with pytest.raises(IntegrityError, match="line 2: 'type'") as caught:
        SSMRestoreTarget(aws_clients, f"/{aws_name_prefix}/r").restore([header, bad_type])
    assert value not in str(caught.value)
    assert _parameters(aws_clients, f"/{aws_name_prefix}/r") == {}


def test_registry_builds_vault_and_ssm_sources(
    vault_client: VaultClient, vault_kv_path: str, aws_clients: AWSClients, aws_name_prefix: str
) -> None:
    clients = Clients(vault=lambda: vault_client, aws=lambda: aws_clients)

    def resolve(ref: Any) -> Any:
        raise AssertionError("no secret to resolve")

    def render(environment: str) -> Any:
        raise AssertionError("no catalog needed")

    def build_source(spec: Any) -> Any:
        return BACKUP_SOURCES.factory(spec.kind)(spec, "prod", clients, resolve, render)

    def build_target(spec: Any, destination: str) -> Any:
        return RESTORE_TARGETS.factory(spec.kind)(spec, destination, clients, resolve, False)

    mount, base = split_mount_path(vault_kv_path)
    vault_client.kv_write(mount, f"{base}/src/x", {"k": "v"})
    target = VaultKVBackup(name="kv", kind="vault_kv", path=f"{vault_kv_path}/src")
    source = build_source(target)
    assert isinstance(source, VaultKVBackupSource)
    with source.dump() as stream:
        data = b"".join(stream)
    build_target(target, f"{vault_kv_path}/dst").restore([data])
    assert vault_client.kv_read(mount, f"{base}/dst/x").data == {"k": "v"}

    aws_clients.ssm().put_parameter(Name=f"/{aws_name_prefix}/p/a", Value="1", Type="String")
    ssm_target = SSMBackup(name="params", kind="ssm", prefix=f"/{aws_name_prefix}/p")
    ssm_source = build_source(ssm_target)
    assert isinstance(ssm_source, SSMBackupSource)
    with ssm_source.dump() as stream:
        data = b"".join(stream)
    build_target(ssm_target, f"/{aws_name_prefix}/q").restore([data])
    assert _parameters(aws_clients, f"/{aws_name_prefix}/q") == {"a": ("String", "1")}


def test_errors_from_secret_sources_are_envsteward_errors(vault_client: VaultClient) -> None:
    with pytest.raises(EnvstewardError), VaultKVBackupSource("s", vault_client, "no-such-mount/x").dump():
        pass
