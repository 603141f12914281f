"""Vault transit as the audit checkpoint signer (``audit.signer: vault_transit``).

The transit key (type ``ed25519``, or ``ecdsa-p256``) must exist: create it once, e.g. ``vault write -f
transit/keys/envsteward-audit type=ed25519``, and give envsteward's policy ``update`` on
``transit/sign/envsteward-audit`` and ``read`` on ``transit/keys/envsteward-audit`` only (never ``export``).
Vault keeps the private key and records every signature in its audit device; the public keys it reports
(GET transit/keys/<key>) are trusted by ``envsteward audit verify`` over the authenticated client.
"""

from __future__ import annotations

import base64

from envsteward.adapters.vault_client import VaultClient
from envsteward.adapters.vault_errors import SYSTEM
from envsteward.audit.checkpoints import SigningKey, signature_algorithm_of
from envsteward.errors import IntegrityError, PermanentError


def public_key_der(key_type: str, public_key: str) -> bytes:
    """A transit public key (base64 raw ed25519, or PEM) as SubjectPublicKeyInfo DER. Pure.

    Raises PermanentError for a key that cannot be read.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        if key_type == "ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
            return key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        loaded = serialization.load_pem_public_key(public_key.encode("ascii"))
        return loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError):
        raise PermanentError(
            f"vault reported a {key_type} public key that cannot be read",
            system=SYSTEM,
            operation="transit key",
        ) from None


class VaultCheckpointSigner:
    """Signs with the latest version of one transit key; building it calls nothing."""

    kind = "vault_transit"

    def __init__(self, client: VaultClient, key: str) -> None:
        self.client = client
        self.key = key

    def __repr__(self) -> str:
        return f"VaultCheckpointSigner(key={self.key!r})"

    def _public_keys(self) -> tuple[str, dict[int, bytes]]:
        key_type, keys = self.client.transit_public_keys(self.key)
        return key_type, {version: public_key_der(key_type, text) for version, text in keys.items()}

    def signing_key(self) -> SigningKey:
        """The transit key's latest version (GET transit/keys/<key>). Raises NotFoundError (create the key),
        PermissionDeniedError, PermanentError (a key type that cannot sign checkpoints)."""
        _key_type, keys = self._public_keys()
        version = max(keys)
        try:
            algorithm = signature_algorithm_of(keys[version])
        except ValueError as exc:
            raise PermanentError(str(exc), system=SYSTEM, operation=f"transit key {self.key}") from None
        return SigningKey(
            key_id=f"{self.client.transit_mount}/{self.key}",
            key_version=version,
            algorithm=algorithm,
            public_key=keys[version],
        )

    def sign(self, message: bytes, key: SigningKey) -> bytes:
        """POST transit/sign/<key> with that key version; the raw signature bytes. Raises Vault's errors and
        IntegrityError for an answer that is not ``vault:v<version>:<base64>``."""
        answer = self.client.transit_sign(self.key, message, key_version=key.key_version)
        prefix = f"vault:v{key.key_version}:"
        if not answer.startswith(prefix):
            raise IntegrityError(
                "vault signed with another key version", system=SYSTEM, operation="transit sign"
            )
        try:
            return base64.b64decode(answer[len(prefix) :], validate=True)
        except ValueError:
            raise IntegrityError(
                "vault returned a signature that is not base64", system=SYSTEM, operation="transit sign"
            ) from None

    def trusted_public_keys(self) -> list[bytes]:
        """Every version's public key, as Vault reports it (GET transit/keys/<key>). Read-only."""
        return list(self._public_keys()[1].values())
