"""The embedded default's checkpoint signer: an ed25519 private key in a PEM file outside ENVSTEWARD_HOME.

The key file (PKCS#8 PEM, unencrypted, mode 0600 in a 0700 folder) lives by default in
``~/.config/envsteward/audit-signing.key`` so that whoever can write the audit log under ``ENVSTEWARD_HOME``
(a copy, a mount, a shared volume) cannot read it. It is created by :meth:`LocalCheckpointSigner.signing_key`
only, which only writing commands call (an append that makes a checkpoint due, ``envsteward audit
checkpoint``); building the signer touches no file, so ``envsteward audit verify`` never creates one. When
it creates the key it pins the public key's fingerprint in the pin file (``audit.trusted_keys_file``): that
pin, not the copy of the public key inside each checkpoint, is what verification trusts. See
:mod:`envsteward.audit.checkpoints` for the whole trust model.
"""

from __future__ import annotations

import threading
from pathlib import Path

from envsteward._keyfiles import read_or_create_key_file
from envsteward.audit.checkpoints import SigningKey, fingerprint_public_key, pin_fingerprint
from envsteward.errors import ConfigurationError

SYSTEM = "local-signing"


def _new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    return (
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode("ascii")
        .strip()
    )


class LocalCheckpointSigner:
    """Signs checkpoints with the ed25519 key in ``key_file``; pins a new key's fingerprint in
    ``pin_file``."""

    kind = "local"

    def __init__(self, key_file: Path, pin_file: Path | None, *, home: Path | None = None) -> None:
        """Touches no file. ``home`` (ENVSTEWARD_HOME) is only used to refuse a key file inside it."""
        self.key_file = Path(key_file).expanduser()
        self.pin_file = pin_file
        self.home = home
        self._lock = threading.Lock()
        self._private: object | None = None
        self._key: SigningKey | None = None

    def __repr__(self) -> str:
        return f"LocalCheckpointSigner(key_file={str(self.key_file)!r})"

    def _check_outside_home(self) -> None:
        if self.home is None:
            return
        key = self.key_file.resolve()
        home = Path(self.home).expanduser().resolve()
        if key == home or home in key.parents:
            raise ConfigurationError(
                f"the audit signing key {self.key_file} is inside ENVSTEWARD_HOME ({self.home}): whoever can "
                "write the audit log could then forge checkpoints; set ENVSTEWARD_AUDIT__SIGNING_KEY_FILE "
                "to a path outside it",
                system=SYSTEM,
                operation="load key",
            )

    def signing_key(self) -> SigningKey:
        """The key (created with mode 0600 on first use, its fingerprint then pinned). Local files only.

        Raises ConfigurationError when the key file is inside home, readable by group or others, not an
        ed25519 PEM private key, or cannot be read or created, or the pin cannot be written.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        with self._lock:
            if self._key is not None:
                return self._key
            self._check_outside_home()
            existed = self.key_file.exists()
            text = read_or_create_key_file(
                self.key_file, _new_private_pem, what="audit signing key file", system=SYSTEM
            )
            try:
                private = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            except (ValueError, TypeError):
                private = None
            if not isinstance(private, ed25519.Ed25519PrivateKey):
                raise ConfigurationError(
                    f"audit signing key file {self.key_file} must hold an unencrypted ed25519 private key "
                    "(PKCS#8 PEM)",
                    system=SYSTEM,
                    operation="load key",
                )
            public = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            fingerprint = fingerprint_public_key(public)
            if not existed and self.pin_file is not None:
                pin_fingerprint(self.pin_file, fingerprint, f"local audit signing key {self.key_file}")
            self._private = private
            self._key = SigningKey(
                key_id=f"local:{fingerprint[7:23]}", key_version=None, algorithm="ed25519", public_key=public
            )
            return self._key

    def sign(self, message: bytes, key: SigningKey) -> bytes:
        """An ed25519 signature of ``message``. No external call."""
        from cryptography.hazmat.primitives.asymmetric import ed25519

        current = self.signing_key()
        if key.public_key != current.public_key or not isinstance(self._private, ed25519.Ed25519PrivateKey):
            raise ConfigurationError("this signer holds another key", system=SYSTEM, operation="sign")
        return self._private.sign(message)

    def trusted_public_keys(self) -> list[bytes]:
        """None: a local key is trusted through its pin (the pin file or settings), never by itself."""
        return []
