"""JSON lines for the secret-bearing dumps (Vault KV, SSM): encode one record, and split a byte stream back
into records without ever putting a line's content into an error message."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from envsteward.backup.sources.base import RestoreReport, RestoreWriter
from envsteward.errors import IntegrityError

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A line longer than this is refused (a damaged stream must not make the restore buffer without bound)."""


def encode_line(record: dict[str, Any]) -> bytes:
    """One compact JSON object and a newline (UTF-8, key order kept)."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class LineSplitter:
    """Feed bytes, get parsed JSON objects back; errors name the line NUMBER, never its content."""

    def __init__(self, system: str, operation: str) -> None:
        self._buffer = bytearray()
        self._system = system
        self._operation = operation
        self.line_number = 0

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            yield from self._parse(line)
        if len(self._buffer) > MAX_LINE_BYTES:
            raise IntegrityError(
                f"line {self.line_number + 1} is longer than {MAX_LINE_BYTES} bytes: not a valid dump",
                system=self._system,
                operation=self._operation,
            )

    def close(self) -> Iterator[dict[str, Any]]:
        """The last record when the stream did not end with a newline."""
        if self._buffer.strip():
            line = bytes(self._buffer)
            self._buffer.clear()
            yield from self._parse(line)

    def _parse(self, line: bytes) -> Iterator[dict[str, Any]]:
        self.line_number += 1
        if not line.strip():
            return
        try:
            record = json.loads(line)
        except ValueError:
            raise IntegrityError(
                f"line {self.line_number} is not valid JSON", system=self._system, operation=self._operation
            ) from None
        if not isinstance(record, dict):
            raise IntegrityError(
                f"line {self.line_number} is not a JSON object",
                system=self._system,
                operation=self._operation,
            )
        yield record

    def invalid(self, what: str) -> IntegrityError:
        """An IntegrityError about the current line (``what`` must not contain data from the line)."""
        return IntegrityError(
            f"line {self.line_number}: {what}", system=self._system, operation=self._operation
        )


class JsonLinesRestoreWriter(RestoreWriter):
    """Restores a JSON-lines dump: checks the header line, hands every further record to :meth:`_apply`.

    Subclasses set ``dump_format`` (the header's ``format``), ``dump_name`` and ``count_name`` and write
    one record in ``_apply``. Nothing is undone on abort: restore into a scratch prefix and delete it.
    """

    dump_format: str
    dump_name: str
    count_name: str

    def __init__(self, kind: str, target: str, system: str, operation: str) -> None:
        super().__init__(kind, target)
        self._system = system
        self._operation = operation
        self._lines = LineSplitter(system, operation)
        self._header_seen = False
        self._written = 0

    def _write(self, data: bytes) -> None:
        for record in self._lines.feed(data):
            self._take(record)

    def _take(self, record: Mapping[str, Any]) -> None:
        if self._header_seen:
            self._apply(record)
            self._written += 1
        elif record.get("format") == self.dump_format:
            self._header_seen = True
        else:
            raise self._lines.invalid(f"not {self.dump_name} (expected a {self.dump_format!r} header line)")

    def _apply(self, record: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _finish(self) -> RestoreReport:
        for record in self._lines.close():
            self._take(record)
        if not self._header_seen:
            raise IntegrityError(
                "the dump is empty (no header line)", system=self._system, operation=self._operation
            )
        return self._make_report(self._written, facts={self.count_name: self._written})

    def _abort(self) -> None:
        """Nothing to undo: what was written so far stays (restore into a scratch prefix and delete it)."""
