"""Which secret references an environment uses, and where (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from envsteward.inventory.model import ReferenceUsage
from envsteward.secret_refs import SecretRef

if TYPE_CHECKING:
    from envsteward.catalog.core import Catalog
    from envsteward.catalog.models import EnvironmentSpec
    from envsteward.catalog.rendered import RenderedConfig

_CREDENTIAL_FIELDS = ("password", "bearer_token", "routing_key")


def _catalog_fields(spec: EnvironmentSpec) -> Iterator[tuple[str, SecretRef]]:
    """``(catalog field, reference)`` for the environment's credential fields (backups, drill, health
    checks, sources, and the admin password of a PostgreSQL role's rotation)."""
    groups: list[tuple[str, Iterable[Any]]] = [
        ("backups", spec.backups),
        ("health_checks", spec.health_checks),
        ("sources", spec.sources),
    ]
    for section, items in groups:
        for item in items:
            for name in _CREDENTIAL_FIELDS:
                value = getattr(item, name, None)
                if isinstance(value, SecretRef):
                    yield f"{section}.{item.name}.{name}", value
    if spec.drill is not None and spec.drill.password is not None:
        yield "drill.password", spec.drill.password
    for index, rotation in enumerate(spec.secrets.rotation):
        if rotation.postgres is not None and rotation.postgres.admin_password is not None:
            yield f"secrets.rotation[{index}].postgres.admin_password", rotation.postgres.admin_password


def collect_references(spec: EnvironmentSpec, rendered: RenderedConfig) -> list[ReferenceUsage]:
    """Every distinct reference of the environment: those in its desired configuration (in document
    order), then those in its catalog fields; each with every place it is used."""
    used: dict[str, list[str]] = {}
    origins: dict[str, str | None] = {}
    for path, ref in rendered.secret_refs.items():
        used.setdefault(ref.uri(), []).append(path)
        origins.setdefault(ref.uri(), rendered.origin(path))
    for field, ref in _catalog_fields(spec):
        used.setdefault(ref.uri(), []).append(field)
        origins.setdefault(ref.uri(), None)
    return [
        ReferenceUsage(environment=spec.name, reference=uri, used_at=tuple(paths), origin=origins[uri])
        for uri, paths in used.items()
    ]


def named_locations(catalog: Catalog) -> dict[str, set[str]]:
    """Per scheme, every location any reference of the catalog names (every environment, every catalog
    field, the channels): a stored secret whose location is here is not an orphan."""
    named: dict[str, set[str]] = {}
    for name, spec in catalog.environments.items():
        for usage in collect_references(spec, catalog.render(name)):
            ref = usage.ref
            named.setdefault(ref.scheme, set()).add(ref.location)
    for channel in catalog.channels.values():
        value = getattr(channel, "routing_key", None)
        if isinstance(value, SecretRef):
            named.setdefault(value.scheme, set()).add(value.location)
    return named
