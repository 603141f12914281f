"""The embedded default's KeyProvider: a local key-encryption key (KEK) in a file.

The key file holds 32 random bytes as hex (one line). It is created on first use with mode 0600, and a key
file that group or others can read is refused. Data keys are wrapped with AES-256-GCM under the KEK:

    wrapped = b"ESLK1" || nonce (12 bytes) || ciphertext+tag

with the key id as associated data, so a wrapped key only unwraps under the KEK (and key id) it was made
with. The key id is ``local:`` followed by the first 16 hex digits of SHA-256 over a domain tag and the KEK:
a fingerprint of a *key-encryption key* (256 random bits, so the hash reveals nothing usable), which lets a
backup manifest say which local key it needs. It is not a fingerprint of any secret configuration value.

For production use Vault transit or AWS KMS: this file is the only copy of the key, so back it up apart
from the backups it protects.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from envsteward._keyfiles import read_or_create_key_file
from envsteward.errors import ConfigurationError, IntegrityError
from envsteward.ports import DataKey

SYSTEM = "local-keys"
KEY_BYTES = 32
NONCE_BYTES = 12
_MAGIC = b"ESLK1"
_KEY_ID_DOMAIN = b"envsteward-local-kek-id\0"


class LocalKeyProvider:
    """Wraps and unwraps data keys with a KEK read from (or created in) ``key_file``."""

    def __init__(self, key_file: Path, *, create: bool = True) -> None:
        """Load the KEK, creating the file (mode 0600, folder 0700) when it does not exist and ``create``
        is true. Only a backup run may create it: readers (verify, restore, drills) pass
        ``create=False``, since a new key can never unwrap an existing backup. Local files only.

        Raises ConfigurationError when the file is missing (``create=False``, naming where it was
        expected), readable by group or others, not 32 bytes of hex, or cannot be read or created.
        """
        self.key_file = Path(key_file)
        if not create and not self.key_file.exists():
            raise ConfigurationError(
                f"no local backup key at {self.key_file}: backups made with the local key provider need the "
                "key file they were made with; put it back (from your copy, or `envsteward backup key "
                "import`) - a new key cannot decrypt them, so none is created",
                system=SYSTEM,
                operation="load key",
            )
        self._kek = _load_or_create(self.key_file)
        self.key_id = "local:" + hashlib.sha256(_KEY_ID_DOMAIN + self._kek).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_file={str(self.key_file)!r}, key_id={self.key_id!r}, key=<redacted>)"

    def generate_data_key(self) -> DataKey:
        """A fresh random 256-bit data key and its AES-256-GCM-wrapped form. No external call."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        plaintext = secrets.token_bytes(KEY_BYTES)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(self._kek).encrypt(nonce, plaintext, self._aad(self.key_id))
        return DataKey(plaintext=plaintext, wrapped=_MAGIC + nonce + ciphertext, key_id=self.key_id)

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """The plaintext data key. No external call.

        Raises IntegrityError when ``key_id`` is not this provider's key, or the wrapped key was made with
        another KEK, or was altered or truncated.
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if key_id != self.key_id:
            raise IntegrityError(
                f"data key was wrapped by {key_id!r}, but {self.key_file} holds {self.key_id!r}: "
                "restore the key file that was used for this backup",
                system=SYSTEM,
                operation="unwrap",
            )
        body = bytes(wrapped)
        if not body.startswith(_MAGIC) or len(body) < len(_MAGIC) + NONCE_BYTES + 16 + 1:
            raise IntegrityError(
                "wrapped data key is malformed or truncated", system=SYSTEM, operation="unwrap"
            )
        nonce = body[len(_MAGIC) : len(_MAGIC) + NONCE_BYTES]
        ciphertext = body[len(_MAGIC) + NONCE_BYTES :]
        try:
            plaintext = AESGCM(self._kek).decrypt(nonce, ciphertext, self._aad(key_id))
        except InvalidTag:
            raise IntegrityError(
                "wrapped data key failed authentication (wrong key file, or the wrapped key was altered)",
                system=SYSTEM,
                operation="unwrap",
            ) from None
        if len(plaintext) != KEY_BYTES:
            raise IntegrityError("unwrapped data key has the wrong length", system=SYSTEM, operation="unwrap")
        return plaintext

    @staticmethod
    def _aad(key_id: str) -> bytes:
        return b"envsteward-local-wrap\0" + key_id.encode("utf-8")


def _load_or_create(path: Path) -> bytes:
    """The KEK in ``path`` (created when missing). Raises ConfigurationError naming the file and the fix."""
    text = read_or_create_key_file(path, lambda: secrets.token_hex(KEY_BYTES), system=SYSTEM)
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"key file {path} must hold {KEY_BYTES} bytes as hex (64 hex digits, one line)",
            system=SYSTEM,
            operation="load key",
        )
    return key
