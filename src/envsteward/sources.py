"""Live configuration sources: from a catalog ``SourceSpec`` to the adapter that reads (and heals) it.

The catalog says which subtree of an environment's configuration lives in which store; this module builds
the matching :class:`~envsteward.ports.ConfigSource` and finds a source's subtree in a configuration tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from envsteward.errors import ConfigurationError
from envsteward.tree import MISSING, PathConflictError, parse_path, value_at
from envsteward.tree import mount as mount_at_path

if TYPE_CHECKING:
    from envsteward.catalog.models import SourceSpec
    from envsteward.ports import ConfigSource
    from envsteward.services import Services


def build_config_source(services: Services, spec: SourceSpec) -> ConfigSource:
    """The adapter for ``spec``, clients from ``services``.

    Builds clients only, except for an HTTP source with a bearer token: that token is resolved now, from
    the secret store its reference names. Raises ConfigurationError (unknown kind, missing settings), the
    secret store's errors, or AuthenticationError/TransientError when Vault login fails.

    An empty store reads as an empty subtree (``missing_ok``): everything the catalog expects there then shows
    up as drift, which is louder and more useful than an error, and lets a heal or promotion fill it.
    """
    from envsteward.catalog import models

    if isinstance(spec, models.VaultKVSource):
        from envsteward.adapters.vault import VaultKVSource

        return VaultKVSource(
            spec.name, services.vault_client(), spec.path, writable=spec.writable, missing_ok=True
        )
    if isinstance(spec, models.SSMSource):
        from envsteward.adapters.aws import SSMParameterSource

        return SSMParameterSource(
            spec.name,
            services.aws_clients(),
            spec.prefix,
            writable=spec.writable,
            value_format=spec.value_format,
            missing_ok=True,
        )
    if isinstance(spec, models.SecretsManagerSource):
        from envsteward.adapters.aws import SecretsManagerSource

        return SecretsManagerSource(
            spec.name, services.aws_clients(), spec.prefix, writable=spec.writable, missing_ok=True
        )
    if isinstance(spec, models.FileSource):
        from envsteward.adapters.file_source import FileSource

        path = Path(spec.path)
        if not path.is_absolute():
            path = services.catalog().root / path
        return FileSource(spec.name, path, writable=spec.writable, file_format=spec.format)
    if isinstance(spec, models.HTTPSource):
        from envsteward.adapters.http_source import HTTPJSONSource

        headers: dict[str, str | SecretStr] = {}
        if spec.bearer_token is not None:
            token = services.resolve_secret(spec.bearer_token).get_secret_value()
            headers["Authorization"] = SecretStr(f"Bearer {token}")
        return HTTPJSONSource(spec.name, spec.url, timeout_seconds=spec.timeout_seconds, headers=headers)
    raise ConfigurationError(f"source {spec.name!r}: unknown kind {spec.kind!r}")


def subtree_at(tree: Any, mount_at: str) -> Any:
    """The value at the mount path ``mount_at`` (``app.database``) of ``tree``, or None when it is absent."""
    value = value_at(tree, parse_path(mount_at))
    return None if value is MISSING else value


def mount(tree: dict[str, Any], mount_at: str, subtree: Any) -> None:
    """Place ``subtree`` at the mount path ``mount_at`` of ``tree`` (``""``: merge into the root).

    Raises ConfigurationError when a subtree mounted at the root is not a mapping."""
    try:
        mount_at_path(tree, parse_path(mount_at), subtree)
    except PathConflictError:
        raise ConfigurationError("a source mounted at the root must hold a mapping") from None
