"""Live configuration sources: from a catalog ``SourceSpec`` to the adapter that reads (and heals) it.

The catalog says which subtree of an environment's configuration lives in which store; this module builds
the matching :class:`~envsteward.ports.ConfigSource` and assembles an environment's live tree from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envsteward.errors import ConfigurationError

if TYPE_CHECKING:
    from envsteward.catalog.models import SourceSpec
    from envsteward.ports import ConfigSource
    from envsteward.services import Services


def build_config_source(services: Services, spec: SourceSpec) -> ConfigSource:
    """The adapter for ``spec``; clients come from ``services``. Raises ConfigurationError for an unknown kind.

    An empty store reads as an empty subtree (``missing_ok``): everything the catalog expects there then shows
    up as drift, which is louder and more useful than an error, and lets a heal or promotion fill it.
    """
    kind = spec.kind
    if kind == "vault_kv":
        from envsteward.adapters.vault import VaultKVSource

        return VaultKVSource(spec.name, services.vault_client(), spec.path, writable=spec.writable, missing_ok=True)
    if kind == "ssm":
        from envsteward.adapters.aws import SSMParameterSource

        return SSMParameterSource(
            spec.name,
            services.aws_clients(),
            spec.prefix,
            writable=spec.writable,
            value_format=spec.value_format,
            missing_ok=True,
        )
    if kind == "secrets_manager":
        from envsteward.adapters.aws import SecretsManagerSource

        return SecretsManagerSource(
            spec.name, services.aws_clients(), spec.prefix, writable=spec.writable, missing_ok=True
        )
    if kind == "file":
        from envsteward.adapters.file_source import FileSource

        path = spec.path if spec.path.is_absolute() else services.catalog().root / spec.path
        return FileSource(spec.name, path, writable=spec.writable)
    if kind == "http":
        from envsteward.adapters.http_source import HTTPJSONSource

        return HTTPJSONSource(spec.name, spec.url, timeout_seconds=spec.timeout_seconds)
    raise ConfigurationError(f"source {spec.name!r}: unknown kind {kind!r}")


def mount(tree: dict[str, Any], mount_at: str, subtree: Any) -> None:
    """Place ``subtree`` at the dotted path ``mount_at`` of ``tree`` ("" = merge into the root)."""
    if not mount_at:
        if not isinstance(subtree, dict):
            raise ConfigurationError("a source mounted at the root must hold a mapping")
        tree.update(subtree)
        return
    *parents, leaf = mount_at.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = subtree


def subtree_at(tree: Any, mount_at: str) -> Any:
    """The value at dotted path ``mount_at`` of ``tree``, or None when it is absent."""
    node = tree
    for part in [p for p in mount_at.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
