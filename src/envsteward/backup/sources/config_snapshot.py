"""An environment's rendered configuration (the catalog's ``RenderedConfig``) as one JSON document.

Document (UTF-8, keys sorted, so the same configuration always gives the same bytes)::

    {"format": "envsteward-config/1", "environment": "production", "tier": "production",
     "data": {... "password": "secret+vault://secret/app/db#password" ...},
     "secret_refs": {"database.password": "vault://secret/app/db#password"},
     "secret_paths": [...], "origins": {"database.password": "config/prod.yaml:12", ...}}

Secret references stay references: in ``data`` they are written the way the catalog's YAML writes them
(``secret+<uri>``), so the snapshot can be fed back into a catalog layer, and ``secret_refs`` lists each
one's URI by dotted path. Nothing here resolves a secret. This snapshot records the DESIRED configuration
as the catalog rendered it at backup time (what a DR rebuild would apply), not the live sources' values.

External calls: none (the catalog is rendered by the callable passed in).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from envsteward.backup.sources.base import DumpStream, RestoreReport, RestoreTarget, RestoreWriter, utcnow
from envsteward.catalog.refs import SECRET_PREFIX, SecretRef
from envsteward.catalog.rendered import RenderedConfig
from envsteward.errors import ConflictError, IntegrityError, NotFoundError, PermanentError

KIND = "config"
FORMAT = "envsteward-config/1"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def _to_json(value: Any, path: str) -> Any:
    """A JSON-able copy of ``value``; SecretRef -> ``secret+<uri>``. Raises PermanentError naming the path."""
    if isinstance(value, SecretRef):
        return SECRET_PREFIX + value.uri()
    if isinstance(value, Mapping):
        return {
            str(key): _to_json(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_to_json(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PermanentError(
                f"{path or '<root>'} is not a finite number; JSON cannot hold it",
                system=KIND,
                operation="snapshot",
            )
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise PermanentError(
        f"{path or '<root>'} holds a {type(value).__name__}, which a JSON snapshot cannot represent",
        system=KIND,
        operation="snapshot",
    )


def snapshot_document(rendered: RenderedConfig) -> dict[str, Any]:
    """The snapshot document of ``rendered`` (see the module docstring). Pure."""
    return {
        "format": FORMAT,
        "environment": rendered.environment,
        "tier": rendered.tier,
        "data": _to_json(rendered.data, ""),
        "secret_refs": {path: ref.uri() for path, ref in sorted(rendered.secret_refs.items())},
        "secret_paths": list(rendered.secret_paths),
        "origins": dict(sorted(rendered.origins.items())),
    }


def encode_document(document: Mapping[str, Any]) -> bytes:
    return (
        json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode()


def parse_snapshot(data: bytes) -> dict[str, Any]:
    """Parse and check a snapshot document. Raises IntegrityError (no content in the message)."""
    try:
        document = json.loads(data)
    except ValueError:
        raise IntegrityError(
            "the configuration snapshot is not valid JSON", system=KIND, operation="restore"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise IntegrityError(
            f"not a configuration snapshot (expected format {FORMAT!r})", system=KIND, operation="restore"
        )
    if not isinstance(document.get("data"), dict) or not isinstance(document.get("environment"), str):
        raise IntegrityError(
            "the configuration snapshot lacks 'environment' or 'data'", system=KIND, operation="restore"
        )
    return document


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_leaves(item) for item in value.values())
    if isinstance(value, list):
        return sum(_count_leaves(item) for item in value)
    return 1


class ConfigSnapshotSource:
    """The rendered configuration of ``environment``; ``render`` returns it (e.g. ``lambda:
    services.catalog().render(env)``), or pass a ``RenderedConfig`` directly."""

    kind = KIND

    def __init__(
        self, name: str, environment: str, render: Callable[[], RenderedConfig] | RenderedConfig
    ) -> None:
        self.name = name
        self.environment = environment
        self._render = render

    def __repr__(self) -> str:
        return f"ConfigSnapshotSource(name={self.name!r}, environment={self.environment!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "environment": self.environment}

    def dump(self) -> ConfigSnapshotStream:
        """Entering renders the configuration (the render callable's errors, e.g. CatalogError;
        PermanentError for a value JSON cannot hold)."""
        return ConfigSnapshotStream(self)


class ConfigSnapshotStream(DumpStream):
    def __init__(self, source: ConfigSnapshotSource) -> None:
        super().__init__(KIND, source.name)
        self._source = source
        self._payload = b""

    def _open(self) -> None:
        source = self._source
        self._consistent_at = utcnow()
        rendered = source._render if isinstance(source._render, RenderedConfig) else source._render()
        if rendered.environment != source.environment:
            raise PermanentError(
                f"rendered configuration is for {rendered.environment!r}, not {source.environment!r}",
                system=KIND,
                operation=f"snapshot {source.environment}",
            )
        document = snapshot_document(rendered)
        self._payload = encode_document(document)
        self.facts.update(
            {
                "environment": source.environment,
                "leaves": _count_leaves(document["data"]),
                "secret_refs": len(document["secret_refs"]),
                "document_sha256": hashlib.sha256(self._payload).hexdigest(),
            }
        )

    def _chunks(self) -> Iterator[bytes]:
        yield self._payload

    def _close(self) -> None:
        self._payload = b""


class ConfigSnapshotRestoreTarget(RestoreTarget):
    """Parse a configuration snapshot; keep it in :attr:`document` and, with ``path``, write it there
    atomically (mode 0600). ``overwrite=False`` refuses an existing file (ConflictError)."""

    kind = KIND

    def __init__(self, path: str | os.PathLike[str] | None = None, *, overwrite: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.overwrite = overwrite
        self.document: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ConfigSnapshotRestoreTarget(path={str(self.path) if self.path else None!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path) if self.path else "<memory>"}

    def begin(self) -> ConfigSnapshotRestoreWriter:
        return ConfigSnapshotRestoreWriter(self)


class ConfigSnapshotRestoreWriter(RestoreWriter):
    def __init__(self, target: ConfigSnapshotRestoreTarget) -> None:
        super().__init__(KIND, str(target.path) if target.path else "<memory>")
        self._target = target
        self._buffer = bytearray()
        if target.path is not None:
            if target.path.exists() and not target.overwrite:
                raise ConflictError(
                    "the target file exists; remove it or restore with overwrite=True",
                    system=KIND,
                    operation=f"restore {target.path}",
                )
            if not target.path.parent.is_dir():
                raise NotFoundError(
                    f"directory {target.path.parent} does not exist",
                    system=KIND,
                    operation=f"restore {target.path}",
                )

    def _write(self, data: bytes) -> None:
        if len(self._buffer) + len(data) > MAX_DOCUMENT_BYTES:
            raise IntegrityError(
                f"the configuration snapshot is larger than {MAX_DOCUMENT_BYTES} bytes: not a valid snapshot",
                system=KIND,
                operation=f"restore {self.target}",
            )
        self._buffer += data

    def _finish(self) -> RestoreReport:
        document = parse_snapshot(bytes(self._buffer))
        target = self._target
        if target.path is not None:
            _write_atomically(target.path, bytes(self._buffer))
        target.document = document
        facts = {"environment": document["environment"], "leaves": _count_leaves(document["data"])}
        return self._make_report(1, facts=facts)

    def _abort(self) -> None:
        self._buffer.clear()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restore", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        _unlink_quietly(temp)
        raise PermanentError(
            exc.strerror or type(exc).__name__, system=KIND, operation=f"restore {path}"
        ) from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return
