"""The desired configuration of one environment, as rendered from the catalog's layers."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from envsteward.catalog.refs import SECRET_PREFIX, SecretRef
from envsteward.tree import MISSING, compile_glob, format_path, iter_leaves, parse_path, value_at

CATALOG_NAMESPACE = "_catalog"
"""Top-level key under which tier rules see facts from the catalog itself (e.g. ``_catalog.backups``)."""


@dataclass(frozen=True)
class RenderedConfig:
    """Base layers and the environment's overlays, deep-merged.

    * ``data``: the merged tree; a secret reference appears as a :class:`SecretRef` object at its leaf,
      never as a secret value (nothing here resolves secrets).
    * ``origins``: dotted path -> ``"relative/file.yaml:LINE"`` of the layer that set it, for every node
      (leaves, and also mappings and lists). List items are written ``services[0].name``.
    * ``secret_refs``: dotted path -> the reference found there.
    * ``facts``: what tier rules see under ``_catalog`` (``environment``, ``tier``, ``backups.<name>.*``);
      ``fact_origins`` gives their ``environments.yaml`` lines.
    * ``secret_paths``: globs whose values count as secret even when written literally (from
      ``policies.drift.secret_paths``); reports must redact them.

    Treat ``data`` as read-only; :meth:`Catalog.render` returns a fresh copy on every call.
    """

    environment: str
    data: dict[str, Any]
    origins: Mapping[str, str]
    secret_refs: Mapping[str, SecretRef]
    tier: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    fact_origins: Mapping[str, str] = field(default_factory=dict)
    secret_paths: tuple[str, ...] = ()

    def origin(self, path: str) -> str | None:
        """``file:line`` where ``path`` (dotted, e.g. ``services.api.instances``) was set, or None."""
        return self.origins.get(path) or self.fact_origins.get(path)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a dotted path (``""`` is the whole tree), or ``default`` when there is none.

        Raises ValueError for a malformed path.
        """
        value = value_at(self.data, parse_path(path))
        return default if value is MISSING else value

    def has(self, path: str) -> bool:
        """True when a node exists at the dotted ``path``."""
        return value_at(self.data, parse_path(path)) is not MISSING

    def leaves(self) -> Iterator[tuple[str, Any]]:
        """``(dotted path, value)`` for every leaf in document order (empty mappings/lists included)."""
        for path, value in iter_leaves(self.data):
            yield format_path(path), value

    def subtree(self, mount_at: str) -> Any:
        """A deep copy of the subtree a source mounted at ``mount_at`` holds (``{}`` when absent)."""
        value = self.get(mount_at, MISSING)
        return {} if value is MISSING else copy.deepcopy(value)

    def is_secret(self, path: str) -> bool:
        """True when the value at ``path`` must be redacted: a secret reference, or a declared secret path."""
        if path in self.secret_refs:
            return True
        parts = parse_path(path)
        return any(compile_glob(pattern).matches(parts) for pattern in self.secret_paths)

    def rule_view(self) -> dict[str, Any]:
        """The tree tier rules evaluate: ``data`` plus the ``_catalog`` facts (not copied: read-only)."""
        view = dict(self.data)
        if self.facts:
            view[CATALOG_NAMESPACE] = self.facts
        return view

    def to_plain(self) -> dict[str, Any]:
        """``data`` as JSON-ready values: a secret reference becomes its ``secret+…`` string (no value)."""
        return _plain(self.data)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return f"{SECRET_PREFIX}{value.uri()}"
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
