"""The embedded default's KeyProvider: a local key-encryption key (KEK) in a file.

The key file is created on first use with mode 0600, holding 32 random bytes as hex (one line: version 1
of the key); a key file that group or others can read is refused. The first ``envsteward backup rotate-key``
converts it to a versioned JSON document (older versions kept so that backups they wrapped still open)::

    {"format": "envsteward-local-kek", "version": 2, "min_decryption_version": 1,
     "keys": [{"version": 1, "key": "<64 hex>", "created_at": "..."}, {"version": 2, ...}]}

New data keys are wrapped with the newest version; a version below ``min_decryption_version`` is retired
(it no longer unwraps; rotate-key retires the old versions only after every retained backup was rewrapped,
and keeps their bytes, like Vault's ``min_decryption_version``, so an operator can lower it again). Both
formats are read; writes are atomic (temporary file, fsync, rename) under a lock on the key folder. Data
keys are wrapped with AES-256-GCM under a version's KEK:

    wrapped = b"ESLK1" || nonce (12 bytes) || ciphertext+tag

with the key id as associated data, so a wrapped key only unwraps under the KEK (and key id) it was made
with. The key id of version 1 is ``local:`` followed by the first 16 hex digits of SHA-256 over a domain
tag and the KEK; later versions append ``:v<N>`` (``local:<16 hex>:v2``). The hex part is
a fingerprint of a *key-encryption key* (256 random bits, so the hash reveals nothing usable), which lets a
backup manifest say which local key it needs. It is not a fingerprint of any secret configuration value.

For production use Vault transit or AWS KMS: this file is the only copy of the key, so back it up apart
from the backups it protects.

Export and import (``envsteward backup key export`` / ``import``). :func:`export_key` wraps the KEK with a
passphrase into a small versioned JSON document (format version 1 for a single-version key; version 2,
whose ciphertext holds the whole versioned key document and whose ``key_ids`` lists every version's id,
once the key was rotated)::

    {"format": "envsteward-backup-key", "version": 1, "key_id": "local:...", "created_at": "...",
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<base64>"},
     "cipher": {"name": "AES-256-GCM", "nonce": "<base64>"}, "ciphertext": "<base64>"}

The wrapping key is scrypt(passphrase NFC-normalised as UTF-8, salt); the associated data is the canonical
JSON of every other field, so changing any of them (the KDF parameters, the key id...) fails authentication
exactly like a wrong passphrase does. :func:`import_key` installs the key when there is none, is a no-op
when every version in the export is already there, replaces the key file with an export that holds all of
its versions and more (a newer export of the same key), and refuses anything else. A successful export
(or import, whose key evidently exists elsewhere) is recorded in ``<key file>.exported.json`` (when,
how, the newest version's key id; never the key): :func:`export_record` tells the backup runs whether to
warn that the only copy lives beside the data.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from envsteward._fsync import fsync_dir
from envsteward._keyfiles import read_or_create_key_file
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
from envsteward.inventory.metadata import KeyState
from envsteward.ports import DataKey

SYSTEM = "local-keys"
KEY_BYTES = 32
NONCE_BYTES = 12
_MAGIC = b"ESLK1"
_KEY_ID_DOMAIN = b"envsteward-local-kek-id\0"
RING_FORMAT = "envsteward-local-kek"
RING_VERSION = 2


@dataclass(frozen=True, repr=False)
class KeyVersion:
    """One version of the local KEK. ``created_at`` is None only when nothing tells (never for a file)."""

    version: int
    kek: bytes
    created_at: datetime | None

    @property
    def key_id(self) -> str:
        return key_id_of(self.kek, self.version)

    def __repr__(self) -> str:
        return f"KeyVersion(version={self.version}, key_id={self.key_id!r}, key=<redacted>)"


@dataclass(frozen=True, repr=False)
class KeyRing:
    """Every version of the local KEK, oldest first, and the oldest version still allowed to unwrap."""

    versions: tuple[KeyVersion, ...]
    min_decryption_version: int = 1
    legacy: bool = False
    """Read from the single-key (one hex line) format."""

    def __repr__(self) -> str:
        return (
            f"KeyRing(versions={[v.version for v in self.versions]}, "
            f"min_decryption_version={self.min_decryption_version}, key=<redacted>)"
        )

    @property
    def latest(self) -> KeyVersion:
        return self.versions[-1]

    def by_key_id(self, key_id: str) -> KeyVersion | None:
        return next((version for version in self.versions if version.key_id == key_id), None)

    def to_text(self) -> str:
        """The versioned JSON document (ASCII, no trailing newline). Holds the keys: never log it."""
        document = {
            "format": RING_FORMAT,
            "version": RING_VERSION,
            "min_decryption_version": self.min_decryption_version,
            "keys": [
                {
                    "version": item.version,
                    "key": item.kek.hex(),
                    "created_at": item.created_at.isoformat(timespec="seconds") if item.created_at else None,
                }
                for item in self.versions
            ],
        }
        return json.dumps(document, sort_keys=True)

    def same_keys(self) -> set[tuple[int, bytes]]:
        return {(item.version, item.kek) for item in self.versions}


def parse_key_ring(text: str, where: str, *, file_time: datetime | None = None) -> KeyRing:
    """The key ring in ``text`` (either format; see the module docstring). ``file_time`` dates a
    single-key file's only version (its modification time). Pure. Raises ConfigurationError naming
    ``where`` and what is wrong, never a key."""

    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"key file {where} {why}", system=SYSTEM, operation="load key")

    stripped = text.strip()
    if not stripped.startswith("{"):
        try:
            key = bytes.fromhex(stripped)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise bad(
                f"must hold {KEY_BYTES} bytes as hex (64 hex digits, one line) or a versioned key document"
            )
        return KeyRing(versions=(KeyVersion(1, key, file_time),), legacy=True)
    try:
        document = json.loads(stripped)
    except ValueError:
        raise bad("is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != RING_FORMAT:
        raise bad(f"is not an {RING_FORMAT!r} document")
    if document.get("version") != RING_VERSION:
        raise bad(f"has format version {document.get('version')!r}; this envsteward reads {RING_VERSION}")
    entries = document.get("keys")
    if not isinstance(entries, list) or not entries:
        raise bad("has no 'keys'")
    versions = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"keys[{index}] is not an object")
        number, key_hex, created = entry.get("version"), entry.get("key"), entry.get("created_at")
        if not isinstance(number, int) or isinstance(number, bool) or number != index + 1:
            raise bad(f"keys[{index}].version must be {index + 1}")
        try:
            kek = bytes.fromhex(key_hex) if isinstance(key_hex, str) else b""
        except ValueError:
            kek = b""
        if len(kek) != KEY_BYTES:
            raise bad(f"keys[{index}].key must be {KEY_BYTES} bytes as hex")
        try:
            when = datetime.fromisoformat(created).astimezone(UTC) if isinstance(created, str) else None
        except ValueError:
            raise bad(f"keys[{index}].created_at is not an ISO 8601 time") from None
        versions.append(KeyVersion(number, kek, when))
    minimum = document.get("min_decryption_version", 1)
    if not isinstance(minimum, int) or isinstance(minimum, bool) or not 1 <= minimum <= len(versions):
        raise bad(f"min_decryption_version must be between 1 and {len(versions)}")
    return KeyRing(versions=tuple(versions), min_decryption_version=minimum)


def _file_time(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def load_key_ring(path: Path, *, create: bool = False) -> KeyRing:
    """The key ring in ``path``; with ``create``, a new single-key file is created when none exists.
    Local files only. Raises ConfigurationError (missing file without ``create``, unsafe mode, bad
    content), naming the file, never a key."""
    if not create and not path.exists():
        raise ConfigurationError(
            f"no local backup key at {path}: backups made with the local key provider need the "
            "key file they were made with; put it back (from your copy, or `envsteward backup key "
            "import`) - a new key cannot decrypt them, so none is created",
            system=SYSTEM,
            operation="load key",
        )
    text = read_or_create_key_file(path, lambda: secrets.token_hex(KEY_BYTES), system=SYSTEM)
    return parse_key_ring(text, str(path), file_time=_file_time(path))


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (flock on the folder itself: no lock file is left behind)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace_key_file(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (mode 0600; temporary file, fsync, rename, fsync folder).
    Raises ConfigurationError naming the file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(text.encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write key file {path}: {exc.strerror or type(exc).__name__}",
            system=SYSTEM,
            operation="write key",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def update_key_ring(path: Path, change: Callable[[KeyRing], KeyRing | None]) -> KeyRing:
    """Read the ring in ``path`` (which must exist), apply ``change`` and write the result (None: no
    write), all under the key folder's lock so two processes never lose each other's versions. Returns
    the ring now in the file. Local files only. Raises ConfigurationError."""
    with _folder_lock(path.parent):
        ring = load_key_ring(path)
        changed = change(ring)
        if changed is None:
            return ring
        _replace_key_file(path, changed.to_text())
        return changed


class LocalKeyProvider:
    """Wraps data keys with the newest version of a KEK read from (or created in) ``key_file``, and
    unwraps with any version that is not retired."""

    def __init__(self, key_file: Path, *, create: bool = True) -> None:
        """Load the key ring, creating the file (mode 0600, folder 0700) when it does not exist and
        ``create`` is true. Only a backup run may create it: readers (verify, restore, drills, the
        inventory, rotate-key) pass ``create=False``, since a new key can never unwrap an existing
        backup. Local files only.

        Raises ConfigurationError when the file is missing (``create=False``, naming where it was
        expected), readable by group or others, malformed, or cannot be read or created.
        """
        self.key_file = Path(key_file)
        self._set(load_key_ring(self.key_file, create=create))

    def _set(self, ring: KeyRing) -> None:
        self._ring = ring
        self._loaded_as = self._file_identity()
        self.key_id = ring.latest.key_id
        self.key_version = ring.latest.version

    def _file_identity(self) -> tuple[int, int, int] | None:
        try:
            info = self.key_file.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _fresh(self) -> KeyRing:
        """The ring, read again when another process rotated the key file since (a long-lived provider
        must wrap new data keys with the newest version, never with a retired one)."""
        if self._file_identity() != self._loaded_as:
            self.reload()
        return self._ring

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_file={str(self.key_file)!r}, key_id={self.key_id!r}, key=<redacted>)"

    @property
    def ring(self) -> KeyRing:
        """The versions as loaded (holds the keys: never log it)."""
        return self._ring

    @property
    def _kek(self) -> bytes:
        return self._ring.latest.kek

    def reload(self) -> None:
        """Read the key file again (another process may have rotated it). Raises ConfigurationError."""
        self._set(load_key_ring(self.key_file))

    def generate_data_key(self) -> DataKey:
        """A fresh random 256-bit data key wrapped with the newest version. No external call."""
        plaintext = secrets.token_bytes(KEY_BYTES)
        return self._wrap(plaintext, self._fresh().latest)

    def _wrap(self, plaintext: bytes, version: KeyVersion) -> DataKey:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(version.kek).encrypt(nonce, plaintext, self._aad(version.key_id))
        return DataKey(
            plaintext=plaintext,
            wrapped=_MAGIC + nonce + ciphertext,
            key_id=version.key_id,
            key_version=version.version,
        )

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """The plaintext data key. No external call.

        Raises IntegrityError when ``key_id`` is no version of this key file, or a retired one, or the
        wrapped key was made with another KEK, or was altered or truncated.
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        version = self._fresh().by_key_id(key_id)
        if version is None:
            raise IntegrityError(
                f"data key was wrapped by {key_id!r}, but {self.key_file} holds "
                f"{', '.join(repr(v.key_id) for v in self._ring.versions)}: "
                "restore the key file that was used for this backup",
                system=SYSTEM,
                operation="unwrap",
            )
        if version.version < self._ring.min_decryption_version:
            raise IntegrityError(
                f"data key was wrapped by version {version.version} ({key_id!r}) of {self.key_file}, "
                f"which is retired (min_decryption_version {self._ring.min_decryption_version}): run "
                "`envsteward backup rotate-key`, or lower min_decryption_version in the key file",
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
            plaintext = AESGCM(version.kek).decrypt(nonce, ciphertext, self._aad(key_id))
        except InvalidTag:
            raise IntegrityError(
                "wrapped data key failed authentication (wrong key file, or the wrapped key was altered)",
                system=SYSTEM,
                operation="unwrap",
            ) from None
        if len(plaintext) != KEY_BYTES:
            raise IntegrityError("unwrapped data key has the wrong length", system=SYSTEM, operation="unwrap")
        return plaintext

    # -- rotation (envsteward backup rotate-key) ----------------------------------------------------------

    def describe(self) -> KeyState:
        """The newest version, the oldest one that still unwraps, and when the newest was made."""
        ring = self._fresh()
        return KeyState(
            key_id=self.key_id,
            latest_version=ring.latest.version,
            min_decryption_version=ring.min_decryption_version,
            created_at=ring.latest.created_at,
        )

    def rotate(self, *, now: datetime | None = None) -> int:
        """Add a new version (the one new data keys are wrapped with from now on) and return its number;
        a single-key file becomes a versioned document. Local files only. Raises ConfigurationError."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)

        def add(ring: KeyRing) -> KeyRing:
            fresh = KeyVersion(ring.latest.version + 1, secrets.token_bytes(KEY_BYTES), moment)
            return replace(ring, versions=(*ring.versions, fresh), legacy=False)

        self._set(update_key_ring(self.key_file, add))
        return self.key_version

    def wrapped_version(self, wrapped: bytes, key_id: str) -> int | None:
        """The version that wrapped a data key (from its key id), None when no version has that id."""
        version = self._ring.by_key_id(key_id)
        return version.version if version is not None else None

    def rewrap(self, wrapped: bytes, key_id: str) -> DataKey:
        """The data key wrapped anew with the newest version (and its plaintext, in memory only, for the
        caller's manifest MAC). No external call. Raises what :meth:`unwrap` raises."""
        return self._wrap(self.unwrap(wrapped, key_id), self._ring.latest)

    def retire_versions_below(self, version: int) -> None:
        """Set ``min_decryption_version`` (never lowered here, never above the newest version); the key
        bytes stay in the file. Local files only. Raises ConfigurationError."""

        def retire(ring: KeyRing) -> KeyRing | None:
            target = min(version, ring.latest.version)
            if target <= ring.min_decryption_version:
                return None
            return replace(ring, min_decryption_version=target, legacy=False)

        self._set(update_key_ring(self.key_file, retire))

    @staticmethod
    def _aad(key_id: str) -> bytes:
        return b"envsteward-local-wrap\0" + key_id.encode("utf-8")


def key_id_of(kek: bytes, version: int = 1) -> str:
    """``local:`` + the first 16 hex digits of SHA-256 over a domain tag and ``kek``, plus ``:v<N>``
    from version 2 on. Pure."""
    fingerprint = "local:" + hashlib.sha256(_KEY_ID_DOMAIN + kek).hexdigest()[:16]
    return fingerprint if version == 1 else f"{fingerprint}:v{version}"


# ---------------------------------------------------------------------------------------------------------
# Export and import, wrapped with a passphrase
# ---------------------------------------------------------------------------------------------------------

EXPORT_FORMAT = "envsteward-backup-key"
EXPORT_VERSION = 1
EXPORT_VERSION_RING = 2
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
    """The key in ``key_file`` wrapped with ``passphrase`` (the JSON document in the module docstring,
    ending with a newline): format version 1 for a single-key file, version 2 (every version, and which
    ones are retired) once it was rotated. Reads the key file only (never creates one). No external call.

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

    ring = LocalKeyProvider(key_file, create=False).ring
    single = ring.legacy and len(ring.versions) == 1
    salt = secrets.token_bytes(_SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION if single else EXPORT_VERSION_RING,
        "key_id": ring.latest.key_id,
        "created_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": {"name": "AES-256-GCM", "nonce": _b64(nonce)},
    }
    if not single:
        document["key_ids"] = [version.key_id for version in ring.versions]
    payload = ring.latest.kek if single else ring.to_text().encode("ascii")
    wrapping = _kdf_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    document["ciphertext"] = _b64(AESGCM(wrapping).encrypt(nonce, payload, _aad(document)))
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


def open_export_ring(text: str, passphrase: SecretStr, *, source: str = "the key export") -> KeyRing:
    """Every key version inside an export made by :func:`export_key` (format 1 or 2). Pure (no file, no
    network).

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
    export_version = document.get("version")
    if export_version not in (EXPORT_VERSION, EXPORT_VERSION_RING):
        raise ConfigurationError(
            f"{source} is a version {export_version!r} key export; this envsteward reads versions "
            f"{EXPORT_VERSION} and {EXPORT_VERSION_RING}: import it with the envsteward that exported it",
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
        payload = AESGCM(_kdf_key(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _aad(document))
    except InvalidTag:
        raise IntegrityError(
            f"cannot open {source}: wrong passphrase, or the file was altered",
            system=SYSTEM,
            operation="import key",
        ) from None
    if export_version == EXPORT_VERSION:
        ring = (
            KeyRing(versions=(KeyVersion(1, payload, None),), legacy=True)
            if len(payload) == KEY_BYTES
            else None
        )
    else:
        try:
            ring = parse_key_ring(payload.decode("ascii"), source)
        except (UnicodeDecodeError, ConfigurationError):  # pragma: no cover - authenticated above
            ring = None
    if ring is None or ring.latest.key_id != key_id:  # pragma: no cover - authenticated above
        raise _bad_export(source, "the key inside does not match its key id")
    return ring


def open_export(text: str, passphrase: SecretStr, *, source: str = "the key export") -> tuple[str, bytes]:
    """The newest key id and KEK inside an export (see :func:`open_export_ring`, which raises the same)."""
    ring = open_export_ring(text, passphrase, source=source)
    return ring.latest.key_id, ring.latest.kek


@dataclass(frozen=True)
class ImportedKey:
    key_id: str
    installed: bool
    """False: ``key_file`` already held every version of this key (nothing changed)."""


def import_key(
    key_file: Path, text: str, passphrase: SecretStr, *, source: str = "the key export"
) -> ImportedKey:
    """Install the key of an export as ``key_file`` (mode 0600) when there is none; a no-op when every
    version in the export is already there; a replacement when the export holds every version of the key
    file and more. Records the import (:func:`record_export`). Local files only.

    Raises what :func:`open_export_ring` raises, ConflictError (naming both key ids) when ``key_file``
    holds a different key, and ConfigurationError when the key file is unusable or cannot be written.
    """
    ring = open_export_ring(text, passphrase, source=source)
    text_for_file = ring.latest.kek.hex() if ring.legacy else ring.to_text()
    if not key_file.exists():
        text_in_file = read_or_create_key_file(key_file, lambda: text_for_file, system=SYSTEM)
        present = parse_key_ring(text_in_file, str(key_file))
        if present.same_keys() != ring.same_keys():  # another process created one meanwhile
            raise ConflictError(
                f"{key_file} was created by another process meanwhile with a different key "
                f"({present.latest.key_id}); {source} holds {ring.latest.key_id}",
                system=SYSTEM,
                operation="import key",
            )
        record_export(key_file, ring.latest.key_id, how="import")
        return ImportedKey(key_id=ring.latest.key_id, installed=True)

    def merge(present: KeyRing) -> KeyRing | None:
        if ring.same_keys() <= present.same_keys():
            return None
        if present.same_keys() <= ring.same_keys():
            return replace(ring, legacy=False)
        raise ConflictError(
            f"{key_file} already holds key {present.latest.key_id}; {source} holds {ring.latest.key_id}. "
            f"Importing would make every backup wrapped by {present.latest.key_id} unreadable: move "
            f"{key_file} away first if you really mean to replace it",
            system=SYSTEM,
            operation="import key",
        )

    before = load_key_ring(key_file)
    after = update_key_ring(key_file, merge)
    if ring.by_key_id(after.latest.key_id) is not None:  # only a copy of the newest version counts
        record_export(key_file, after.latest.key_id, how="import")
    return ImportedKey(key_id=after.latest.key_id, installed=after.same_keys() != before.same_keys())


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
