"""WAL file names, where they live in the object store, and what a segment's first page says about it.

Pure: no I/O. PostgreSQL hands ``archive_command`` / ``restore_command`` four kinds of file:

* a segment, 24 hex digits ``TTTTTTTTXXXXXXXXYYYYYYYY`` (timeline, log, segment within the log);
* a timeline history file ``TTTTTTTT.history``;
* a backup history file ``<segment>.<8 hex>.backup``;
* a partial segment ``<segment>.partial`` (written at a promotion, or by ``pg_receivewal``).

Anything else is refused (it would also be a path-traversal hole in an object key).

Object layout, next to the base backups of the same target (``<env>/<target>.pitr/<stamp>-<hex>/...``)::

    <env>/<target>.pitr/wal/<name>          one backup-format object per WAL file
    <env>/<target>.pitr/archive.json        the archive's identity: PostgreSQL's system identifier

The ``.pitr`` suffix keeps base backups out of the logical dumps' retention group (``backup prune``
groups by target name and keeps what the catalog does not name); PITR retention is
:mod:`envsteward.pitr.retention`'s.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final, Literal

from envsteward.backup.manifest import check_backup_id
from envsteward.errors import ConfigurationError, IntegrityError

WalKind = Literal["segment", "history", "backup", "partial"]

PITR_SUFFIX: Final = ".pitr"
WAL_FOLDER: Final = "wal"
IDENTITY_OBJECT: Final = "archive.json"
DEFAULT_SEGMENT_SIZE: Final = 16 << 20

_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")
_BACKUP = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")
_PARTIAL = re.compile(r"^[0-9A-F]{24}\.partial$")

# XLogLongPageHeaderData (PostgreSQL 15, little-endian hosts): magic u16, info u16, tli u32,
# pageaddr u64, rem_len u32, 4 bytes padding, sysid u64, seg_size u32, blcksz u32.
_LONG_HEADER = struct.Struct("<HHIQI4xQII")
_XLP_LONG_HEADER: Final = 0x0002


def wal_kind(name: str) -> WalKind:
    """The kind of WAL file ``name`` is. Raises ConfigurationError for any other name."""
    if _SEGMENT.match(name):
        return "segment"
    if _HISTORY.match(name):
        return "history"
    if _BACKUP.match(name):
        return "backup"
    if _PARTIAL.match(name):
        return "partial"
    raise ConfigurationError(
        f"{name!r} is not a WAL file name (a 24-hex-digit segment, TTTTTTTT.history, "
        "<segment>.XXXXXXXX.backup or <segment>.partial)"
    )


@dataclass(frozen=True, order=True)
class SegmentName:
    """A segment's position: timeline, then log and segment number (``segno``), ordered as PostgreSQL does."""

    timeline: int
    log: int
    seg: int

    @classmethod
    def parse(cls, name: str) -> SegmentName:
        """From a segment name, or the segment part of a ``.partial`` / ``.backup`` name.

        Raises ConfigurationError for a history file or a name that is not a WAL file."""
        if wal_kind(name) == "history":
            raise ConfigurationError(f"{name} is a timeline history file, not a segment")
        stem = name[:24]
        return cls(int(stem[:8], 16), int(stem[8:16], 16), int(stem[16:24], 16))

    def segno(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
        """The segment number across logs (``log * segments per log + seg``)."""
        return self.log * (0x100000000 // segment_size) + self.seg

    def name(self) -> str:
        return f"{self.timeline:08X}{self.log:08X}{self.seg:08X}"


def archive_prefix(environment: str, target: str) -> str:
    """``<env>/<target>.pitr/``. Raises ConfigurationError for names unusable in an object key."""
    return check_backup_id(f"{environment}/{target}{PITR_SUFFIX}") + "/"


def wal_object_key(prefix: str, name: str) -> str:
    """The object key of WAL file ``name`` under an archive ``prefix``. Raises ConfigurationError."""
    wal_kind(name)
    return f"{prefix}{WAL_FOLDER}/{name}"


def wal_name_of_key(prefix: str, key: str) -> str | None:
    """The WAL file name of an object key under ``prefix``, or None when the key is not a WAL object."""
    head = f"{prefix}{WAL_FOLDER}/"
    if not key.startswith(head):
        return None
    name = key[len(head) :]
    try:
        wal_kind(name)
    except ConfigurationError:
        return None
    return name


@dataclass(frozen=True)
class SegmentHeader:
    """What the first page of a WAL segment says (its long page header)."""

    system_identifier: int
    segment_size: int
    page_address: int
    timeline: int


def read_segment_header(data: bytes, name: str) -> SegmentHeader:
    """Parse and check the long page header at the start of segment ``name``'s bytes.

    Raises IntegrityError naming the segment when the bytes are not a WAL segment, their length is not the
    segment size the header declares, or the page address is not the one ``name`` stands for (a segment
    stored under another segment's name)."""
    if len(data) < _LONG_HEADER.size:
        raise IntegrityError(f"WAL segment {name}: {len(data)} bytes, too short to be a WAL segment")
    _magic, info, tli, pageaddr, _rem, sysid, seg_size, _blcksz = _LONG_HEADER.unpack_from(data)
    if not info & _XLP_LONG_HEADER or seg_size == 0 or seg_size & (seg_size - 1):
        raise IntegrityError(
            f"WAL segment {name}: its first page has no valid long header (not a WAL segment)"
        )
    if len(data) != seg_size:
        raise IntegrityError(
            f"WAL segment {name}: {len(data)} bytes, its header says segments are {seg_size}"
        )
    expected = SegmentName.parse(name).segno(seg_size) * seg_size
    if pageaddr != expected:
        raise IntegrityError(
            f"WAL segment {name}: its first page is at WAL address {pageaddr:#x}, not {expected:#x}: the "
            "file holds another segment"
        )
    return SegmentHeader(system_identifier=sysid, segment_size=seg_size, page_address=pageaddr, timeline=tli)


def lsn_to_int(lsn: str) -> int:
    """``0/2000028`` -> 33554472. Raises ConfigurationError for anything else."""
    high, sep, low = lsn.partition("/")
    if sep and re.fullmatch(r"[0-9A-Fa-f]{1,8}", high) and re.fullmatch(r"[0-9A-Fa-f]{1,8}", low):
        return (int(high, 16) << 32) | int(low, 16)
    raise ConfigurationError(f"{lsn!r} is not a PostgreSQL LSN (like 0/2000028)")


def segment_of(lsn: int, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> SegmentName:
    """The segment that holds WAL address ``lsn`` on ``timeline``."""
    segno = lsn // segment_size
    per_log = 0x100000000 // segment_size
    return SegmentName(timeline, segno // per_log, segno % per_log)
