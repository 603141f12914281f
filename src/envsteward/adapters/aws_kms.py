"""AWS KMS as a KeyProvider (per-object data keys from GenerateDataKey, unwrapped with Decrypt) and as the
audit checkpoint signer (``Sign`` with an asymmetric key, ``GetPublicKey``)."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import Any

from envsteward.adapters.aws_errors import SYSTEM, aws_errors
from envsteward.adapters.aws_session import AWSClients
from envsteward.audit.checkpoints import SigningKey, signature_algorithm_of
from envsteward.errors import ConfigurationError, EnvstewardError, IntegrityError
from envsteward.inventory.metadata import KeyState
from envsteward.ports import DataKey

_KMS_SIGNING_ALGORITHMS = {"ecdsa-p256-sha256": "ECDSA_SHA_256", "ecdsa-p384-sha384": "ECDSA_SHA_384"}


class KMSKeyProvider:
    """Data keys wrapped by one KMS key. ``key_id`` is as configured (key id, ARN or alias); prefer an ARN
    in production so a re-pointed alias cannot change which key decrypts old backups."""

    def __init__(self, clients: AWSClients, key_id: str, region: str | None = None) -> None:
        self._clients = clients
        self.key_id = key_id
        self.region = region
        self._lock = threading.Lock()
        self._arn: str | None = None

    def __repr__(self) -> str:
        return f"KMSKeyProvider(key_id={self.key_id!r})"

    @property
    def _kms(self) -> Any:
        return self._clients.kms(self.region)

    def key_arn(self) -> str:
        """The key's ARN (DescribeKey, cached). Raises NotFoundError, PermissionDeniedError."""
        with self._lock:
            if self._arn is None:
                with aws_errors("kms", "describe_key", self.key_id):
                    self._arn = str(self._kms.describe_key(KeyId=self.key_id)["KeyMetadata"]["Arn"])
            return self._arn

    def generate_data_key(self) -> DataKey:
        """GenerateDataKey (AES_256): a 32-byte key and its KMS ciphertext blob."""
        with aws_errors("kms", "generate_data_key", self.key_id):
            response = self._kms.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
        return DataKey(
            plaintext=bytes(response["Plaintext"]),
            wrapped=bytes(response["CiphertextBlob"]),
            key_id=self.key_id,
        )

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Decrypt the wrapped key with KeyId set to this provider's key.

        Raises IntegrityError when ``key_id`` names another key, or KMS says the ciphertext is not for this
        key (IncorrectKeyException) or is corrupt (InvalidCiphertextException).
        """
        if key_id not in (self.key_id, self._arn) and key_id != self.key_arn():
            raise IntegrityError(
                f"the data key was wrapped by {key_id!r}, this provider uses {self.key_id!r}",
                system=SYSTEM,
                operation="kms unwrap",
            )
        with aws_errors("kms", "decrypt", self.key_id):
            response = self._kms.decrypt(CiphertextBlob=wrapped, KeyId=self.key_id)
        plaintext = bytes(response["Plaintext"])
        if len(plaintext) != 32:
            raise IntegrityError("unwrapped key is not 256 bits", system=SYSTEM, operation="kms unwrap")
        return plaintext

    # -- rotation (envsteward backup rotate-key) ----------------------------------------------------------

    def describe(self) -> KeyState:
        """The key as KMS reports it (DescribeKey, GetKeyRotationStatus, ListKeyRotations): KMS does not
        number key material, so ``latest_version`` is None; ``created_at`` is the newest material's date
        (the last rotation, else the key's creation). Raises NotFoundError, PermissionDeniedError."""
        kms = self._kms
        with aws_errors("kms", "describe_key", self.key_id):
            metadata = kms.describe_key(KeyId=self.key_id)["KeyMetadata"]
        created: datetime | None = metadata.get("CreationDate")
        arn = str(metadata.get("Arn") or self.key_id)  # the rotation calls take no alias
        detail = "automatic rotation status unknown"
        with contextlib.suppress(EnvstewardError):
            with aws_errors("kms", "get_key_rotation_status", self.key_id):
                status = kms.get_key_rotation_status(KeyId=arn)
            if status.get("KeyRotationEnabled"):
                period = status.get("RotationPeriodInDays")
                detail = "AWS rotates the key material automatically" + (
                    f" every {period} days" if period else ""
                )
            else:
                detail = "automatic rotation is OFF (aws kms enable-key-rotation)"
        with contextlib.suppress(EnvstewardError):
            with aws_errors("kms", "list_key_rotations", self.key_id):
                rotations = kms.list_key_rotations(KeyId=arn).get("Rotations") or []
            dates = [item["RotationDate"] for item in rotations if item.get("RotationDate")]
            if dates:
                created = max(dates)
        return KeyState(key_id=self.key_id, created_at=created, detail=detail)

    def rotate(self) -> int | None:
        """Nothing: AWS rotates a KMS key's material itself (automatic rotation, or ``aws kms
        rotate-key-on-demand``) and keeps every older material for decryption. Returns None."""
        return None

    def wrapped_version(self, wrapped: bytes, key_id: str) -> int | None:
        """None: a KMS ciphertext does not say which key material wrapped it."""
        return None

    def rewrap(self, wrapped: bytes, key_id: str) -> DataKey:
        """ReEncrypt the wrapped key from ``key_id`` to this provider's key (its current material) inside
        KMS, then Decrypt it once (the caller re-MACs its manifest and knows the new wrap opens). Raises
        IntegrityError (not a ciphertext of ``key_id``), NotFoundError, PermissionDeniedError."""
        with aws_errors("kms", "re_encrypt", self.key_id):
            response = self._kms.re_encrypt(
                CiphertextBlob=wrapped, SourceKeyId=key_id, DestinationKeyId=self.key_id
            )
        rewrapped = bytes(response["CiphertextBlob"])
        return DataKey(plaintext=self.unwrap(rewrapped, self.key_id), wrapped=rewrapped, key_id=self.key_id)

    def retire_versions_below(self, version: int) -> None:
        """Nothing: KMS keeps every key material; there is no version to retire."""
        return


class KMSCheckpointSigner:
    """Signs audit checkpoints with an asymmetric KMS key (KeyUsage SIGN_VERIFY, KeySpec ECC_NIST_P256 or
    ECC_NIST_P384): the private key never leaves KMS. Give envsteward ``kms:Sign`` and ``kms:GetPublicKey``
    on that key only. Building it calls nothing."""

    kind = "aws_kms"

    def __init__(self, clients: AWSClients, key_id: str, region: str | None = None) -> None:
        self._clients = clients
        self.key_id = key_id
        self.region = region
        self._lock = threading.Lock()
        self._key: SigningKey | None = None

    def __repr__(self) -> str:
        return f"KMSCheckpointSigner(key_id={self.key_id!r})"

    def signing_key(self) -> SigningKey:
        """The key's ARN, public key and algorithm (GetPublicKey, cached). Raises NotFoundError,
        PermissionDeniedError, ConfigurationError (not an ECC signing key)."""
        with self._lock:
            if self._key is None:
                with aws_errors("kms", "get_public_key", self.key_id):
                    response = self._clients.kms(self.region).get_public_key(KeyId=self.key_id)
                public_key = bytes(response["PublicKey"])
                try:
                    algorithm = signature_algorithm_of(public_key)
                except ValueError:
                    algorithm = ""
                if response.get("KeyUsage") != "SIGN_VERIFY" or algorithm not in _KMS_SIGNING_ALGORITHMS:
                    raise ConfigurationError(
                        f"KMS key {self.key_id!r} cannot sign audit checkpoints: use an asymmetric key with "
                        "KeyUsage SIGN_VERIFY and KeySpec ECC_NIST_P256 (or ECC_NIST_P384)",
                        system=SYSTEM,
                        operation="kms get_public_key",
                    )
                self._key = SigningKey(
                    key_id=str(response["KeyId"]),
                    key_version=None,
                    algorithm=algorithm,
                    public_key=public_key,
                )
            return self._key

    def sign(self, message: bytes, key: SigningKey) -> bytes:
        """KMS Sign (MessageType RAW): a DER ECDSA signature. Raises KMS's errors translated."""
        with aws_errors("kms", "sign", self.key_id):
            response = self._clients.kms(self.region).sign(
                KeyId=key.key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=_KMS_SIGNING_ALGORITHMS[key.algorithm],
            )
        return bytes(response["Signature"])

    def trusted_public_keys(self) -> list[bytes]:
        """The key's public key as KMS reports it (GetPublicKey). Read-only."""
        return [self.signing_key().public_key]
