"""Vault KV v2: export the current version of every secret under a location, restore under another prefix.

Stream format (UTF-8 JSON lines)::

    {"format": "envsteward-vault-kv/1", "source": "secret/app/production"}
    {"path": "db", "data": {...}, "version": 7, "custom_metadata": {...}}
    {"path": "cache/redis", "data": {...}, "version": 2, "custom_metadata": {}}

``path`` is relative to the backed-up location (``""`` for a secret stored AT the location itself), so
the dump restores under any prefix (a scratch prefix for drills). The values are secrets: they are only
ever in the stream, which the pipeline encrypts before it leaves the process. Facts, reports, reprs, logs
and exception messages hold counts and paths, never values.

Consistency: Vault has no snapshot. The tree is listed when the dump starts (``consistent_at``: the
conservative, older bound for RPO), then each secret's current version is read; the recorded versions say
exactly what was taken. A secret whose current version is deleted, or that vanished since the listing, is
skipped and counted (``facts["skipped"]``).

External calls: Vault (LIST/GET/POST on the KV v2 mount) through
:class:`envsteward.adapters.vault.VaultClient`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from envsteward.adapters.vault import VaultClient, split_mount_path
from envsteward.backup.sources._jsonlines import JsonLinesRestoreWriter, encode_line
from envsteward.backup.sources.base import (
    DumpStream,
    RestoreTarget,
    rechunk,
    utcnow,
)
from envsteward.errors import EnvstewardError, NotFoundError

KIND = "vault_kv"
FORMAT = "envsteward-vault-kv/1"


def _join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


def check_relative_path(path: str) -> bool:
    """True when ``path`` stays under its prefix: no leading ``/``, no empty, ``.`` or ``..`` segments."""
    if path == "":
        return True
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in path.split("/"))


class VaultKVBackupSource:
    """Every secret (current version) under ``location`` (``<kv-mount>/<path>``, e.g. ``secret/app/prod``)."""

    kind = KIND

    def __init__(self, name: str, client: VaultClient, location: str) -> None:
        """Raises ConfigurationError when ``location`` has no mount."""
        self.name = name
        self.client = client
        self.mount, self.path = split_mount_path(location)
        self.location = _join(self.mount, self.path)

    def __repr__(self) -> str:
        return f"VaultKVBackupSource(name={self.name!r}, location={self.location!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "mount": self.mount, "path": self.path}

    def dump(self) -> VaultKVDumpStream:
        """Entering lists the tree (NotFoundError when nothing is under the location, or the adapter's
        PermissionDeniedError / TransientError...); iterating reads each secret."""
        return VaultKVDumpStream(self)


class VaultKVDumpStream(DumpStream):
    def __init__(self, source: VaultKVBackupSource) -> None:
        super().__init__(KIND, source.name)
        self._source = source
        self._paths: list[str] = []

    def _open(self) -> None:
        source = self._source
        self._consistent_at = utcnow()
        walked = list(source.client.kv_walk(source.mount, source.path))
        root = self._root_exists()  # the location may itself hold a secret, besides (or instead of) a tree
        if not walked and not root:
            raise NotFoundError(
                "no secrets under this location", system="vault", operation=f"backup {source.location}"
            )
        self._paths = ([""] if root else []) + walked

    def _root_exists(self) -> bool:
        source = self._source
        if not source.path:
            return False
        try:
            source.client.kv_metadata(source.mount, source.path)
        except NotFoundError:
            return False
        return True

    def _records(self) -> Iterator[bytes]:
        source = self._source
        yield encode_line({"format": FORMAT, "source": source.location})
        written = skipped = 0
        for relative in self._paths:
            try:
                secret = source.client.kv_read(source.mount, _join(source.path, relative))
            except NotFoundError:
                skipped += 1  # deleted current version, or gone since the listing
                continue
            yield encode_line(
                {
                    "path": relative,
                    "data": dict(secret.data),
                    "version": secret.version,
                    "custom_metadata": dict(secret.custom_metadata or {}),
                }
            )
            written += 1
        self.facts.update({"location": source.location, "secrets": written, "skipped": skipped})
        self.tools.update({"vault": self._vault_version()})

    def _vault_version(self) -> str:
        try:
            return self._source.client.health().version or "unknown"
        except EnvstewardError:
            return "unknown"

    def _chunks(self) -> Iterator[bytes]:
        yield from rechunk(self._records())

    def _close(self) -> None:
        self._paths = []


class VaultKVRestoreTarget(RestoreTarget):
    """Write a Vault KV dump under ``location`` (``<kv-mount>/<prefix>``, e.g. ``secret/drills/0412``).

    ``overwrite=False`` (the default) writes with check-and-set 0, so an existing secret is never replaced
    (ConflictError): restore into an empty scratch prefix. Custom metadata is restored too. Versions are
    not (Vault numbers new writes itself): the report's facts map nothing secret.
    """

    kind = KIND

    def __init__(self, client: VaultClient, location: str, *, overwrite: bool = False) -> None:
        self.client = client
        self.mount, self.path = split_mount_path(location)
        self.location = _join(self.mount, self.path)
        self.overwrite = overwrite

    def __repr__(self) -> str:
        return f"VaultKVRestoreTarget(location={self.location!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "mount": self.mount, "path": self.path}

    def begin(self) -> VaultKVRestoreWriter:
        return VaultKVRestoreWriter(self)


class VaultKVRestoreWriter(JsonLinesRestoreWriter):
    dump_format = FORMAT
    dump_name = "a Vault KV dump"
    count_name = "secrets"

    def __init__(self, target: VaultKVRestoreTarget) -> None:
        super().__init__(KIND, target.location, "vault", f"restore into {target.location}")
        self._target = target

    def _apply(self, record: Mapping[str, Any]) -> None:
        relative, data, metadata = record.get("path"), record.get("data"), record.get("custom_metadata") or {}
        if not isinstance(relative, str) or not check_relative_path(relative):
            raise self._lines.invalid("'path' must be a relative secret path without '.' or '..' segments")
        if not isinstance(data, dict) or not isinstance(metadata, dict):
            raise self._lines.invalid("'data' and 'custom_metadata' must be JSON objects")
        target = self._target
        path = _join(target.path, relative)
        if not path:
            raise self._lines.invalid("a secret at the root of the mount needs a restore prefix")
        target.client.kv_write(target.mount, path, data, cas=None if target.overwrite else 0)
        if metadata:
            target.client.kv_update_metadata(
                target.mount, path, custom_metadata={str(k): str(v) for k, v in metadata.items()}
            )
