"""Snapshots of the target's touched keys, and restoring them exactly (the rollback).

A :class:`TargetSnapshot` is taken right before the first write. For each target source the plan touches it
keeps the subtree as it was (to verify the rollback) and a restorer that knows how to put that source
back, including removing keys the promotion created (a plain ``ConfigSource.write`` cannot delete):

* Vault KV v2: the current version of every secret a write could touch; restoring writes the old
  version's data back as a new version (check-and-set) and deletes secrets that did not exist;
* SSM Parameter Store: the touched parameters' old values; restoring writes them back (same type and KMS
  key) and deletes parameters that did not exist;
* a file: its bytes; restoring rewrites them atomically;
* any other source: the touched leaves' old values are written back; a key it created cannot be removed
  and the rollback says so (it never claims success it did not have).

A snapshot holds live values, secrets included, in memory only: its repr shows source names, it is never
returned from a task that persists its result, logged, or put in a report.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.errors import NotFoundError, PermanentError
from envsteward.promotion.model import PromotionPlan
from envsteward.tree import is_missing, value_at

if TYPE_CHECKING:
    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.catalog.models import SourceSpec
    from envsteward.ports import ConfigSource
    from envsteward.promotion.deps import SnapshotServices


class Restorer(Protocol):
    """Puts one source's touched keys back as they were when the snapshot was taken."""

    def restore(self, source: ConfigSource) -> None:
        """Raises the adapter's errors, or PermanentError when the source cannot be fully restored."""
        ...


@dataclass(repr=False)
class SourceSnapshot:
    name: str
    kind: str
    before: dict[str, Any]
    key_paths: tuple[tuple[str, ...], ...]
    restorer: Restorer

    def __repr__(self) -> str:
        return f"SourceSnapshot(name={self.name!r}, kind={self.kind!r}, keys={len(self.key_paths)})"


@dataclass(repr=False)
class TargetSnapshot:
    """The touched sources of one environment before the promotion (values in memory only)."""

    environment: str
    sources: dict[str, SourceSnapshot] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"TargetSnapshot(environment={self.environment!r}, sources={sorted(self.sources)!r})"


# ---------------------------------------------------------------------------------------------------------
# Restorers
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SecretVersion:
    path: str
    version: int | None
    """None: the secret did not exist."""


class VaultKVRestorer:
    """Vault KV v2: remember the current version of every secret that a write to the key paths may touch."""

    def __init__(
        self, client: VaultClient, mount: str, base: str, key_paths: Sequence[tuple[str, ...]]
    ) -> None:
        self._client = client
        self.mount = mount
        candidates: dict[str, None] = {}
        for keys in key_paths:
            for split in range(len(keys)):
                path = "/".join(part for part in (base, *keys[:split]) if part)
                if path:
                    candidates[path] = None
        self.versions = [_SecretVersion(path, self._current(path)) for path in candidates]

    def _current(self, path: str) -> int | None:
        try:
            meta = self._client.kv_metadata(self.mount, path)
        except NotFoundError:
            return None
        return meta.current_version or None

    def restore(self, source: ConfigSource) -> None:
        """Write back each changed secret's old version (CAS on the current one); delete new secrets.
        Calls Vault (GET/POST data, GET/DELETE metadata)."""
        for item in self.versions:
            now = self._current(item.path)
            if now == item.version:
                continue
            if item.version is None:
                if now is not None:
                    self._client.kv_delete_all(self.mount, item.path)
                continue
            old = self._client.kv_read(self.mount, item.path, version=item.version)
            self._client.kv_write(self.mount, item.path, dict(old.data), cas=now or 0)


class SSMRestorer:
    """SSM: the touched parameters' old values; new parameters are deleted."""

    def __init__(
        self,
        clients: AWSClients,
        prefix: str,
        before: Mapping[str, Any],
        key_paths: Sequence[tuple[str, ...]],
    ) -> None:
        self._clients = clients
        self.prefix = "/" + prefix.strip("/")
        self.before = before
        self.key_paths = tuple(key_paths)

    def restore(self, source: ConfigSource) -> None:
        """PutParameter the old values, DeleteParameter the new ones. Calls SSM."""
        from envsteward.adapters.aws import aws_errors

        current = source.read()
        for keys in self.key_paths:
            old = value_at(self.before, keys)
            now = value_at(current, keys)
            if is_missing(old):
                if not is_missing(now):
                    name = f"{self.prefix}/{'/'.join(keys)}"
                    with aws_errors("ssm", "delete_parameter", name):
                        self._clients.ssm().delete_parameter(Name=name)
            elif is_missing(now) or now != old or type(now) is not type(old):
                source.write(keys, old)


class FileRestorer:
    """A file source: its bytes, rewritten atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.content = path.read_bytes() if path.exists() else None

    def restore(self, source: ConfigSource) -> None:
        """Rewrite the file as it was (remove it when it did not exist). Local file system only."""
        if self.content is None:
            self.path.unlink(missing_ok=True)
            return
        mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else 0o600
        write_file_atomically(self.path, self.content, mode)


def write_file_atomically(path: Path, content: bytes, mode: int) -> None:
    """Replace ``path`` with ``content`` (temporary file in the same folder, fsync, rename) and give it
    ``mode``. Local file system only; raises OSError."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.restore")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


class LeafRestorer:
    """Any other writable source: write the old leaf values back; created keys cannot be removed."""

    def __init__(self, before: Mapping[str, Any], key_paths: Sequence[tuple[str, ...]]) -> None:
        self.before = before
        self.key_paths = tuple(key_paths)

    def restore(self, source: ConfigSource) -> None:
        """Write old values back. Raises PermanentError naming the keys it could not remove."""
        created = []
        for keys in self.key_paths:
            old = value_at(self.before, keys)
            if is_missing(old):
                created.append("/".join(keys))
            else:
                source.write(keys, old)
        if created:
            raise PermanentError(
                f"source {source.name!r} cannot delete keys; remove by hand: {', '.join(created)}",
                system="promotion",
                operation="rollback",
            )


def plain(value: Any) -> Any:
    """A plain dict/list deep copy (sources may hand back read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# Taking a snapshot
# ---------------------------------------------------------------------------------------------------------


def _restorer(
    services: SnapshotServices,
    spec: SourceSpec,
    source: ConfigSource,
    before: Mapping[str, Any],
    key_paths: Sequence[tuple[str, ...]],
) -> Restorer:
    from envsteward.catalog import models

    if isinstance(spec, models.VaultKVSource):
        return VaultKVRestorer(services.vault_client(), spec.kv_mount, spec.kv_path, key_paths)
    if isinstance(spec, models.SSMSource):
        return SSMRestorer(services.aws_clients(), spec.prefix, before, key_paths)
    path = getattr(source, "path", None)
    if isinstance(spec, models.FileSource) and isinstance(path, Path):
        return FileRestorer(path)
    return LeafRestorer(before, key_paths)


def take_snapshot(
    services: SnapshotServices, plan: PromotionPlan, sources: Mapping[str, ConfigSource]
) -> TargetSnapshot:
    """Snapshot every target source the plan writes to: read it, and record what its restorer needs.

    ``sources``: the target's ConfigSources by name (from ``services.config_source``). Calls each source's
    system (reads only). Raises the adapters' errors; a snapshot that cannot be taken means no write.
    """
    catalog = services.catalog()
    specs = {spec.name: spec for spec in catalog.environment(plan.target).sources}
    snapshot = TargetSnapshot(environment=plan.target)
    touched: dict[str, list[tuple[str, ...]]] = {}
    for change in plan.changes:
        touched.setdefault(change.target_source, []).append(change.key_path)
    for name, key_paths in touched.items():
        source = sources[name]
        before = plain(source.read())
        snapshot.sources[name] = SourceSnapshot(
            name=name,
            kind=specs[name].kind,
            before=before,
            key_paths=tuple(key_paths),
            restorer=_restorer(services, specs[name], source, before, key_paths),
        )
    return snapshot
