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

Export and import (``envsteward backup key export`` / ``import``). :func:`export_key` wraps the KEK with a
passphrase into a small versioned JSON document::

    {"format": "envsteward-backup-key", "version": 1, "key_id": "local:...", "created_at": "...",
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<base64>"},
     "cipher": {"name": "AES-256-GCM", "nonce": "<base64>"}, "ciphertext": "<base64>"}

The wrapping key is scrypt(passphrase NFC-normalised as UTF-8, salt); the associated data is the canonical
JSON of every other field, so changing any of them (the KDF parameters, the key id...) fails authentication
exactly like a wrong passphrase does. :func:`import_key` installs the key when there is none, is a no-op
for the same key and refuses a different one. A successful export (or import, whose key evidently exists
elsewhere) is recorded in ``<key file>.exported.json`` (when, how, the key id; never the key):
:func:`export_record` tells the backup runs whether to warn that the only copy lives beside the data.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from envsteward._fsync import fsync_dir
from envsteward._keyfiles import read_or_create_key_file
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
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
        self.key_id = key_id_of(self._kek)

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


def key_id_of(kek: bytes) -> str:
    """``local:`` + the first 16 hex digits of SHA-256 over a domain tag and ``kek``. Pure."""
    return "local:" + hashlib.sha256(_KEY_ID_DOMAIN + kek).hexdigest()[:16]


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


# ---------------------------------------------------------------------------------------------------------
# Export and import, wrapped with a passphrase
# ---------------------------------------------------------------------------------------------------------

EXPORT_FORMAT = "envsteward-backup-key"
EXPORT_VERSION = 1
MIN_PASSPHRASE_CHARS = 12
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_MAX_SCRYPT_MEMORY = 512 * 1024 * 1024
"""A key export asking for more scrypt memory than this (128 * r * n bytes) is refused, not attempted."""
_MAX_EXPORT_BYTES = 64 * 1024
_EXPORT_AAD = b"envsteward-backup-key-export\0"
MARKER_SUFFIX = ".exported.json"


def _kdf_key(passphrase: SecretStr, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    secret = unicodedata.normalize("NFC", passphrase.get_secret_value()).encode("utf-8")
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(secret)


def _aad(document: dict[str, Any]) -> bytes:
    header = {name: value for name, value in document.items() if name != "ciphertext"}
    return _EXPORT_AAD + json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_key(key_file: Path, passphrase: SecretStr, *, now: datetime | None = None) -> str:
    """The KEK in ``key_file`` wrapped with ``passphrase`` (the JSON document in the module docstring,
    ending with a newline). Reads the key file only (never creates one). No external call.

    Raises ConfigurationError when the key file is missing or unusable, or the passphrase is shorter
    than :data:`MIN_PASSPHRASE_CHARS` characters.
    """
    if len(passphrase.get_secret_value()) < MIN_PASSPHRASE_CHARS:
        raise ConfigurationError(
            f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters",
            system=SYSTEM,
            operation="export key",
        )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    provider = LocalKeyProvider(key_file, create=False)
    salt = secrets.token_bytes(_SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "key_id": provider.key_id,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": {"name": "AES-256-GCM", "nonce": _b64(nonce)},
    }
    wrapping = _kdf_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    document["ciphertext"] = _b64(AESGCM(wrapping).encrypt(nonce, provider._kek, _aad(document)))
    return json.dumps(document, indent=2) + "\n"


def _bad_export(source: str, why: str) -> IntegrityError:
    return IntegrityError(
        f"{source} is not a usable envsteward key export: {why}", system=SYSTEM, operation="import key"
    )


def _field(data: dict[str, Any], name: str, kind: type, source: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad_export(source, f"field {name!r} is missing or not a {kind.__name__}")
    return value


def _bytes_field(data: dict[str, Any], name: str, source: str) -> bytes:
    try:
        return base64.b64decode(_field(data, name, str, source), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_export(source, f"field {name!r} is not base64") from None


def open_export(text: str, passphrase: SecretStr, *, source: str = "the key export") -> tuple[str, bytes]:
    """The key id and KEK inside an export made by :func:`export_key`. Pure (no file, no network).

    Raises IntegrityError (naming ``source``) when the passphrase is wrong or anything in the document was
    altered (one message for both: they cannot be told apart), or the document is malformed; and
    ConfigurationError for a format version this envsteward does not know.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _bad_export(source, f"not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise _bad_export(source, f"'format' is not {EXPORT_FORMAT!r}")
    if document.get("version") != EXPORT_VERSION:
        raise ConfigurationError(
            f"{source} is a version {document.get('version')!r} key export; this envsteward reads version "
            f"{EXPORT_VERSION}: import it with the envsteward that exported it",
            system=SYSTEM,
            operation="import key",
        )
    key_id = _field(document, "key_id", str, source)
    kdf = _field(document, "kdf", dict, source)
    cipher = _field(document, "cipher", dict, source)
    if kdf.get("name") != "scrypt" or cipher.get("name") != "AES-256-GCM":
        raise _bad_export(source, "only scrypt with AES-256-GCM is supported")
    n, r, p = (_field(kdf, name, int, source) for name in ("n", "r", "p"))
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * n > _MAX_SCRYPT_MEMORY:
        raise _bad_export(source, f"scrypt parameters n={n} r={r} p={p} are out of bounds")
    salt = _bytes_field(kdf, "salt", source)
    nonce = _bytes_field(cipher, "nonce", source)
    ciphertext = _bytes_field(document, "ciphertext", source)
    if len(nonce) != NONCE_BYTES:
        raise _bad_export(source, f"the nonce must be {NONCE_BYTES} bytes")
    try:
        kek = AESGCM(_kdf_key(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _aad(document))
    except InvalidTag:
        raise IntegrityError(
            f"cannot open {source}: wrong passphrase, or the file was altered",
            system=SYSTEM,
            operation="import key",
        ) from None
    if len(kek) != KEY_BYTES or key_id_of(kek) != key_id:  # pragma: no cover - authenticated above
        raise _bad_export(source, "the key inside does not match its key id")
    return key_id, kek


@dataclass(frozen=True)
class ImportedKey:
    key_id: str
    installed: bool
    """False: ``key_file`` already held this very key (nothing changed)."""


def import_key(
    key_file: Path, text: str, passphrase: SecretStr, *, source: str = "the key export"
) -> ImportedKey:
    """Install the key of an export as ``key_file`` (mode 0600) when there is none; a no-op when the same
    key is already there. Records the import (:func:`record_export`). Local files only.

    Raises what :func:`open_export` raises, ConflictError (naming both key ids) when ``key_file`` holds a
    different key, and ConfigurationError when the key file is unusable or cannot be written.
    """
    key_id, kek = open_export(text, passphrase, source=source)
    if key_file.exists():
        present = LocalKeyProvider(key_file, create=False).key_id
        if present != key_id:
            raise ConflictError(
                f"{key_file} already holds key {present}; {source} holds {key_id}. Importing would make "
                f"every backup wrapped by {present} unreadable: move {key_file} away first if you really "
                "mean to replace it",
                system=SYSTEM,
                operation="import key",
            )
        record_export(key_file, key_id, how="import")
        return ImportedKey(key_id=key_id, installed=False)
    text_in_file = read_or_create_key_file(key_file, kek.hex, system=SYSTEM)
    if key_id_of(bytes.fromhex(text_in_file.strip())) != key_id:  # another process created one meanwhile
        raise ConflictError(
            f"{key_file} was created by another process meanwhile with a different key; "
            f"{source} holds {key_id}",
            system=SYSTEM,
            operation="import key",
        )
    record_export(key_file, key_id, how="import")
    return ImportedKey(key_id=key_id, installed=True)


def export_marker(key_file: Path) -> Path:
    """Where the record of the key's last export or import lives (beside the key file)."""
    return key_file.with_name(key_file.name + MARKER_SUFFIX)


def record_export(
    key_file: Path,
    key_id: str,
    *,
    how: Literal["export", "import"] = "export",
    now: datetime | None = None,
) -> Path:
    """Record that the key ``key_id`` of ``key_file`` has a copy elsewhere: when, how, and its key id (a
    fingerprint; never the key). Written atomically, mode 0600. Local files only. Raises ConfigurationError
    when it cannot be written."""
    marker = export_marker(key_file)
    record = {"key_id": key_id, "how": how, "at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, marker)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot record the key export in {marker}: {exc.strerror or type(exc).__name__}",
            system=SYSTEM,
            operation="record export",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(marker.parent)
    return marker


def export_record(key_file: Path) -> dict[str, str] | None:
    """The recorded export or import of the key now in ``key_file``, or None: no record, an unreadable
    one, no key file, or a record of another key (the key was replaced since). Reads local files only;
    never raises for a missing or bad record (the caller then warns)."""
    try:
        record = json.loads(export_marker(key_file).read_text(encoding="utf-8"))
        present = LocalKeyProvider(key_file, create=False).key_id
    except (OSError, ValueError, ConfigurationError):
        return None
    if not isinstance(record, dict) or record.get("key_id") != present:
        return None
    return {str(name): str(value) for name, value in record.items()}
