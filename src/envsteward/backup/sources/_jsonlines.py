"""JSON lines for the secret-bearing dumps (Vault KV, SSM): encode one record, and split a byte stream back
into records without ever putting a line's content into an error message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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
