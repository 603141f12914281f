"""Read ``pg_basebackup``'s tar stream push-style: hash every file, optionally extract it, and check the
result against PostgreSQL's own ``backup_manifest`` (what ``pg_verifybackup`` checks, minus WAL parsing).

The same reader runs twice in a base backup's life: while the backup streams into the object store
(nothing is extracted; a backup whose files do not match PostgreSQL's manifest never gets an envsteward
manifest) and while a restore unpacks it into a fresh data directory (every file is hashed on the way
and compared before the directory is declared restored).

Checks at :meth:`TarReader.close`:

* tar headers' checksums, sizes and the end-of-archive marker (a truncated stream fails);
* ``backup_manifest``'s own ``Manifest-Checksum`` (SHA-256 over the text before it);
* every file the manifest lists is present with its size and (``--manifest-checksums=SHA256``) digest;
* nothing else is present except ``backup_manifest`` itself and WAL files in ``pg_wal/`` (``-X fetch``;
  the manifest does not list them, PostgreSQL checks them by parsing: their SHA-256 are returned so the
  caller records them in the MAC'd envsteward manifest and checks them on restore).

Paths are checked before anything is written: absolute paths, ``..``, links and special files are refused
(a base backup with tablespaces is not supported: ``pg_basebackup -D -`` refuses it too).

External calls: none (writes files under ``extract_to`` when given).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from envsteward.errors import ConfigurationError, IntegrityError

BLOCK = 512
CAPTURED = frozenset({"backup_label", "backup_manifest", "tablespace_map"})
MAX_CAPTURE = 256 << 20
_WAL_FILE = re.compile(r"^pg_wal/[0-9A-F]{24}$")


@dataclass
class TarSummary:
    """What a base backup's tar stream held (JSON-able via :meth:`as_json`)."""

    files: int = 0
    bytes: int = 0
    label: dict[str, str] = field(default_factory=dict)
    """``backup_label`` as key/value (``START WAL LOCATION``, ``START TIME``, ``START TIMELINE``...)."""
    wal_ranges: list[dict[str, Any]] = field(default_factory=list)
    wal_files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of each WAL file in ``pg_wal/`` (not listed in ``backup_manifest``)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "label": dict(self.label),
            "wal_ranges": list(self.wal_ranges),
            "wal_files": dict(self.wal_files),
        }


def _octal(field_bytes: bytes, what: str) -> int:
    if field_bytes and field_bytes[0] & 0x80:  # base-256 (GNU) for large values
        value = field_bytes[0] & 0x7F
        for byte in field_bytes[1:]:
            value = (value << 8) | byte
        return value
    text = field_bytes.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise IntegrityError(f"base backup tar: bad {what} field {text[:16]!r}") from None


def _safe_name(name: str) -> str:
    name = name.rstrip("/")
    if name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if not name or name.startswith("/") or "\0" in name or any(part in ("", ".", "..") for part in parts):
        raise IntegrityError(f"base backup tar: unsafe member path {name!r}")
    return name


class TarReader:
    """Feed the tar stream with :meth:`feed`, then call :meth:`close` for the checked summary."""

    def __init__(self, extract_to: Path | None = None, *, sync_each_file: bool = True) -> None:
        """``sync_each_file`` False: extracted files are not fsynced one by one (the caller makes the whole
        tree durable at once, e.g. :func:`envsteward.pitr.base.sync_tree`)."""
        self.extract_to = extract_to
        self.sync_each_file = sync_each_file
        self.summary = TarSummary()
        self._buffer = bytearray()
        self._offset = 0
        self._ended = False
        self._seen: dict[str, tuple[int, str]] = {}
        self._captured: dict[str, bytearray] = {}
        # current member
        self._remaining = 0
        self._padding = 0
        self._member: str | None = None
        self._kind = ""
        self._digest: Any = None
        self._size = 0
        self._handle: IO[bytes] | None = None
        self._pax: dict[str, str] = {}
        self._next_pax: dict[str, str] = {}

    # -- feeding --------------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Process the next bytes of the stream. Raises IntegrityError; OSError writing an extracted file is
        raised as ConfigurationError naming it."""
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        if self._remaining or self._padding:
            return self._body()
        if len(self._buffer) < BLOCK:
            return False
        block = bytes(self._buffer[:BLOCK])
        del self._buffer[:BLOCK]
        self._offset += BLOCK
        if self._ended:
            if block.strip(b"\0"):
                raise IntegrityError(
                    f"base backup tar: data after the end-of-archive marker at {self._offset}"
                )
            return True
        if not block.strip(b"\0"):
            self._ended = True
            return True
        self._header(block)
        return True

    def _header(self, block: bytes) -> None:
        stored = _octal(block[148:156], "checksum")
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != computed:
            raise IntegrityError(
                f"base backup tar: header checksum mismatch at byte offset {self._offset - BLOCK}"
            )
        kind = chr(block[156]) if block[156] else "0"
        size = _octal(block[124:136], "size")
        name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if block[257:262] == b"ustar":
            prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            if prefix:
                name = f"{prefix}/{name}"
        pax, self._next_pax = self._next_pax, {}
        name = pax.get("path", name)
        size = int(pax.get("size", size))
        self._kind = kind
        self._remaining = size
        self._padding = (-size) % BLOCK
        self._size = size
        self._member = None
        if kind in ("x", "g", "L"):
            self._captured["\0meta"] = bytearray()
            self._member = "\0meta"
            if size == 0:
                self._finish_member()
            return
        if pax.get("\0long"):
            name = pax["\0long"]
        if kind == "5":
            self._mkdir(_safe_name(name))
            return
        if kind not in ("0", "7"):
            raise IntegrityError(
                f"base backup tar: member {name!r} is a link or special file (type {kind!r}); base backups "
                "with tablespaces or links are not supported"
            )
        member = _safe_name(name)
        if member in self._seen:
            raise IntegrityError(f"base backup tar: {member} appears twice")
        self._member = member
        self._digest = hashlib.sha256()
        if member in CAPTURED:
            self._captured[member] = bytearray()
        if self.extract_to is not None:
            self._handle = self._open(member)
        if size == 0:
            self._finish_member()

    def _body(self) -> bool:
        if self._remaining:
            if not self._buffer:
                return False
            take = min(self._remaining, len(self._buffer))
            piece = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._offset += take
            self._remaining -= take
            self._consume(piece)
            if not self._remaining:
                self._finish_member()
            return True
        take = min(self._padding, len(self._buffer))
        if not take:
            return False
        del self._buffer[:take]
        self._offset += take
        self._padding -= take
        return True

    def _consume(self, piece: bytes) -> None:
        member = self._member
        if member is None:
            return
        if member in self._captured:
            captured = self._captured[member]
            if len(captured) + len(piece) > MAX_CAPTURE:
                raise IntegrityError(f"base backup tar: {member} is larger than {MAX_CAPTURE} bytes")
            captured += piece
        if member == "\0meta":
            return
        self._digest.update(piece)
        if self._handle is not None:
            try:
                self._handle.write(piece)
            except OSError as exc:
                raise ConfigurationError(f"cannot write {self._path(member)}: {exc.strerror}") from None

    def _finish_member(self) -> None:
        member = self._member
        if member == "\0meta":
            raw = bytes(self._captured.pop("\0meta"))
            if self._kind == "x":
                self._next_pax = _parse_pax(raw)
            elif self._kind == "L":
                self._next_pax = {"\0long": raw.split(b"\0", 1)[0].decode("utf-8", "replace")}
            self._member = None
            return
        if member is None:
            return
        if self._handle is not None:
            try:
                self._handle.flush()
                if self.sync_each_file:
                    os.fsync(self._handle.fileno())
            finally:
                self._handle.close()
                self._handle = None
        digest = self._digest.hexdigest()
        self._seen[member] = (self._size, digest)
        self.summary.files += 1
        self.summary.bytes += self._size
        if _WAL_FILE.match(member):
            self.summary.wal_files[member.split("/", 1)[1]] = digest
        self._member = None

    # -- extraction -----------------------------------------------------------------------------------------

    def _path(self, member: str) -> Path:
        assert self.extract_to is not None
        return self.extract_to.joinpath(*member.split("/"))

    def _mkdir(self, member: str) -> None:
        if self.extract_to is None:
            return
        path = self._path(member)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from None

    def _open(self, member: str) -> IO[bytes]:
        path = self._path(member)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {path}: {exc.strerror}") from None
        return os.fdopen(fd, "wb")

    def abort(self) -> None:
        """Close a file left open by a failure (the caller removes the directory)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    # -- the end --------------------------------------------------------------------------------------------

    def close(self, expected_wal: dict[str, str] | None = None) -> TarSummary:
        """Check the stream ended properly and matches ``backup_manifest``; return the summary.

        ``expected_wal``: the WAL files' SHA-256 recorded at backup time (checked on restore). Raises
        IntegrityError naming the first problem."""
        self.abort()
        if self._remaining or self._padding or self._buffer or not self._ended:
            raise IntegrityError(
                f"base backup tar: the stream ends at byte {self._offset} before the end-of-archive marker "
                "(truncated)"
            )
        label = self._captured.get("backup_label")
        if label is None:
            raise IntegrityError("base backup tar: no backup_label (not a pg_basebackup stream)")
        self.summary.label = _parse_label(bytes(label))
        raw = self._captured.get("backup_manifest")
        if raw is None:
            raise IntegrityError(
                "base backup tar: no backup_manifest (pg_basebackup --no-manifest is not supported)"
            )
        manifest = _check_manifest_checksum(bytes(raw))
        self.summary.wal_ranges = list(manifest.get("WAL-Ranges") or [])
        listed: set[str] = set()
        for entry in manifest.get("Files") or []:
            path = entry.get("Path") or entry.get("Encoded-Path", "")
            listed.add(path)
            seen = self._seen.get(path)
            if seen is None:
                raise IntegrityError(
                    f"base backup: {path} is listed in backup_manifest but missing from the backup"
                )
            size, digest = seen
            if size != int(entry.get("Size", -1)):
                raise IntegrityError(
                    f"base backup: {path} is {size} bytes, backup_manifest says {entry.get('Size')}"
                )
            algorithm = str(entry.get("Checksum-Algorithm", "NONE")).upper()
            if algorithm == "SHA256" and digest != str(entry.get("Checksum", "")).lower():
                raise IntegrityError(f"base backup: {path}: SHA-256 differs from backup_manifest")
        for path in self._seen:
            if path not in listed and path != "backup_manifest" and not _WAL_FILE.match(path):
                raise IntegrityError(f"base backup: {path} is in the backup but not in backup_manifest")
        if expected_wal is not None and expected_wal != self.summary.wal_files:
            raise IntegrityError(
                "base backup: the WAL files in pg_wal/ differ from those recorded when the backup was taken"
            )
        return self.summary


def _parse_pax(raw: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        space = raw.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(raw[pos:space])
        except ValueError:
            raise IntegrityError("base backup tar: malformed pax header") from None
        record = raw[space + 1 : pos + length - 1].decode("utf-8", "replace")
        key, _, value = record.partition("=")
        records[key] = value
        pos += length
    return records


def _parse_label(raw: bytes) -> dict[str, str]:
    label: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            label[key.strip()] = value.strip()
    return label


def _check_manifest_checksum(raw: bytes) -> dict[str, Any]:
    marker = raw.rfind(b'"Manifest-Checksum"')
    if marker < 0:
        raise IntegrityError("base backup: backup_manifest has no Manifest-Checksum")
    try:
        document = json.loads(raw)
    except ValueError:
        raise IntegrityError("base backup: backup_manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise IntegrityError("base backup: backup_manifest is not a JSON object")
    if hashlib.sha256(raw[:marker]).hexdigest() != str(document.get("Manifest-Checksum", "")).lower():
        raise IntegrityError("base backup: backup_manifest's Manifest-Checksum does not match its content")
    return document
