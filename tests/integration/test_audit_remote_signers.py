"""Audit checkpoints signed by Vault transit (OpenBao) and AWS KMS (moto), and kept in S3 with Object Lock
retention where the bucket has it (moto)."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.audit import AuditLog, Checkpoint
from envsteward.audit.verify import REWRITTEN
from envsteward.errors import ConfigurationError, PermanentError
from envsteward.services import Services
from envsteward.settings import AuditSettings, AWSSettings, Settings, StorageSettings, VaultSettings
from tests.fixtures.aws import REGION, create_bucket
from tests.fixtures.vault import VaultServer
from tests.unit.audit import tampering as t

SEEDED_SECRET = "remote-SEEDED-secret-9e04"


def _fill(log: AuditLog, count: int) -> None:
    for index in range(count):
        log.append("backup.created", target=f"b{index}", environment="production", details={"n": index})


def _audit(tmp_path: Path, **values: object) -> AuditSettings:
    return AuditSettings.model_validate(
        {
            "checkpoint_every": 5,
            # Deliberately unusable local paths: a remote signer must not need (or create) them.
            "signing_key_file": tmp_path / "no-local-key" / "k.key",
            "trusted_keys_file": tmp_path / "no-local-key" / "pins",
            **values,
        }
    )


def _rewrite_jsonl(home: Path) -> None:
    path = home / "audit" / "audit.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("".join(f"{line}\n" for line in t.rewrite_consistently(lines, 2, "actor", "mallory")))


# ---------------------------------------------------------------------------------------------------------
# Vault transit (OpenBao)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "algorithm"), [("ed25519", "ed25519"), ("ecdsa-p256", "ecdsa-p256-sha256")]
)
def test_vault_transit_signs_checkpoints(
    tmp_path: Path, vault_server: VaultServer, vault_settings: VaultSettings, key_type: str, algorithm: str
) -> None:
    key = f"audit-{secrets.token_hex(4)}"
    vault_server.admin().secrets.transit.create_key(name=key, key_type=key_type, mount_point="transit")
    settings = Settings(
        home=tmp_path / "home",
        actor="alice",
        vault=vault_settings,
        audit=_audit(tmp_path, signer="vault_transit", vault_transit_key=key),
    )
    services = Services(settings)
    log = services.audit_log()
    _fill(log, 12)
    outcome = log.verify_with_checkpoints()
    assert outcome.ok, outcome.failure_line()
    checkpoint = outcome.checkpoints.checkpoint
    assert checkpoint is not None
    assert (checkpoint.seq, checkpoint.signer.kind, checkpoint.signer.algorithm) == (
        11,
        "vault_transit",
        algorithm,
    )
    assert checkpoint.signer.key_version == 1
    # Vault itself agrees that the stored signature is its own.
    vault = services.vault_client()
    signature = f"vault:v1:{checkpoint.signature}"
    assert vault.transit_verify(key, checkpoint.signed_bytes(), signature)
    assert not vault.transit_verify(key, checkpoint.signed_bytes() + b"x", signature)
    assert not (tmp_path / "no-local-key").exists()

    _rewrite_jsonl(settings.home)
    rejected = log.verify_with_checkpoints()
    assert not rejected.ok
    assert (rejected.chain.kind, rejected.chain.first_bad_seq) == (REWRITTEN, 11)


def test_vault_rotation_keeps_old_checkpoints_valid(
    tmp_path: Path, vault_server: VaultServer, vault_settings: VaultSettings
) -> None:
    key = f"audit-{secrets.token_hex(4)}"
    admin = vault_server.admin()
    admin.secrets.transit.create_key(name=key, key_type="ed25519", mount_point="transit")
    settings = Settings(
        home=tmp_path / "home", actor="alice", vault=vault_settings,
        audit=_audit(tmp_path, signer="vault_transit", vault_transit_key=key),
    )  # fmt: skip
    log = Services(settings).audit_log()
    _fill(log, 6)
    admin.secrets.transit.rotate_key(name=key, mount_point="transit")
    _fill(log, 5)
    outcome = log.verify_with_checkpoints()
    assert outcome.ok, outcome.failure_line()
    assert outcome.checkpoints.checkpoint is not None
    assert outcome.checkpoints.checkpoint.signer.key_version == 2


def test_a_symmetric_transit_key_cannot_sign(
    tmp_path: Path, vault_server: VaultServer, vault_settings: VaultSettings
) -> None:
    settings = Settings(
        home=tmp_path / "home", actor="alice", vault=vault_settings,
        audit=_audit(tmp_path, signer="vault_transit", vault_transit_key=vault_server.transit_key),
    )  # fmt: skip
    with pytest.raises(PermanentError, match="no public key"):
        Services(settings).checkpoint_signer().signing_key()


# ---------------------------------------------------------------------------------------------------------
# AWS KMS (moto) and S3 Object Lock
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def kms_signing_key(aws_clients: AWSClients) -> str:
    response = aws_clients.kms(REGION).create_key(
        Description="envsteward audit checkpoints", KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256"
    )
    return str(response["KeyMetadata"]["Arn"])


def _s3_settings(
    tmp_path: Path, aws_settings: AWSSettings, bucket: str, checkpoint_bucket: str, **audit: object
) -> Settings:
    return Settings(
        home=tmp_path / "home",
        actor="alice",
        aws=aws_settings,
        storage=StorageSettings(kind="s3", bucket=bucket),
        audit=_audit(tmp_path, checkpoint_bucket=checkpoint_bucket, **audit),
    )


def test_kms_signs_checkpoints_kept_under_object_lock(
    tmp_path: Path,
    aws_settings: AWSSettings,
    aws_clients: AWSClients,
    aws_name_prefix: str,
    kms_signing_key: str,
) -> None:
    bucket = create_bucket(aws_clients, f"{aws_name_prefix}-log", REGION)
    locked = f"{aws_name_prefix}-checkpoints"
    aws_clients.s3(REGION).create_bucket(
        Bucket=locked,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    settings = _s3_settings(
        tmp_path, aws_settings, bucket, locked, signer="aws_kms", kms_key_id=kms_signing_key,
        object_lock_mode="COMPLIANCE", object_lock_days=30,
    )  # fmt: skip
    services = Services(settings)
    log = services.audit_log()
    _fill(log, 7)
    assert log.checkpointer is not None
    s3 = aws_clients.s3(REGION)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=locked)["Contents"]]
    assert keys == ["audit-checkpoints/000000000001.json", "audit-checkpoints/000000000006.json"]
    head = s3.head_object(Bucket=locked, Key=keys[-1])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)
    # Under COMPLIANCE retention the checkpoint cannot be deleted.
    version = head["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=locked, Key=keys[-1], VersionId=version)

    checkpoint = Checkpoint.model_validate_json(s3.get_object(Bucket=locked, Key=keys[-1])["Body"].read())
    assert (checkpoint.signer.kind, checkpoint.signer.algorithm) == ("aws_kms", "ecdsa-p256-sha256")
    # GetPublicKey's KeyId (real KMS answers the ARN; moto the bare key id)
    assert kms_signing_key.endswith(checkpoint.signer.key_id.rsplit("/", 1)[-1])
    # KMS agrees that the signature is its own.
    verdict = aws_clients.kms(REGION).verify(
        KeyId=kms_signing_key,
        Message=checkpoint.signed_bytes(),
        MessageType="RAW",
        Signature=base64.b64decode(checkpoint.signature),
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert verdict["SignatureValid"]
    outcome = log.verify_with_checkpoints()
    assert outcome.ok, outcome.failure_line()
    assert (outcome.checkpoints.unanchored_count, outcome.checkpoints.first_unanchored_seq) == (1, 7)

    # A consistent rewrite of the log objects is rejected through the checkpoint.
    lines = [
        s3.get_object(Bucket=bucket, Key=f"audit/{seq:012d}.json")["Body"].read().decode()
        for seq in range(1, 8)
    ]
    for seq, line in enumerate(t.rewrite_consistently(lines, 2, "actor", "mallory"), start=1):
        s3.put_object(Bucket=bucket, Key=f"audit/{seq:012d}.json", Body=line.encode())
    rejected = log.verify_with_checkpoints()
    assert not rejected.ok
    assert (rejected.chain.kind, rejected.chain.first_bad_seq) == (REWRITTEN, 6)
    assert SEEDED_SECRET not in json.dumps(rejected.to_dict())


def test_checkpoints_in_a_bucket_without_object_lock(
    tmp_path: Path,
    aws_settings: AWSSettings,
    aws_clients: AWSClients,
    aws_name_prefix: str,
    kms_signing_key: str,
) -> None:
    bucket = create_bucket(aws_clients, f"{aws_name_prefix}-log", REGION)
    settings = _s3_settings(
        tmp_path, aws_settings, bucket, bucket, signer="aws_kms", kms_key_id=kms_signing_key
    )
    log = Services(settings).audit_log()
    _fill(log, 2)
    s3 = aws_clients.s3(REGION)
    key = "audit-checkpoints/000000000001.json"
    assert s3.head_object(Bucket=bucket, Key=key).get("ObjectLockMode") is None
    assert log.verify_with_checkpoints().ok
    # Deleting the checkpoints is possible here, and fails verification closed.
    s3.delete_object(Bucket=bucket, Key=key)
    assert (log.verify_with_checkpoints().failure_line() or "").startswith("audit checkpoints MISSING")


def test_a_symmetric_kms_key_cannot_sign(
    tmp_path: Path, aws_settings: AWSSettings, aws_clients: AWSClients, aws_name_prefix: str, kms_key_id: str
) -> None:
    bucket = create_bucket(aws_clients, f"{aws_name_prefix}-log", REGION)
    settings = _s3_settings(tmp_path, aws_settings, bucket, bucket, signer="aws_kms", kms_key_id=kms_key_id)
    with pytest.raises(ConfigurationError, match="cannot sign audit checkpoints") as info:
        Services(settings).checkpoint_signer().signing_key()
    assert kms_key_id in str(info.value)
