"""Desired-configuration layers and their deep merge.

A layer is one YAML file holding (part of) the configuration tree. An environment's configuration is the
catalog's base layers followed by the environment's overlays, merged in that order:

* two mappings merge key by key, recursively;
* any other overlay value (a scalar, a list, or a mapping replacing a non-mapping) **replaces** the
  earlier value as a whole; lists are never merged item by item;
* an overlay ``null`` **deletes** the key (and everything under it); ``null`` never survives as a value
  of a mapping key, so a key is either set to a real value or absent.

Every node keeps the ``file:line`` of the layer that set it. A string starting with ``secret+`` is parsed
into a :class:`SecretRef`; a malformed one is a problem with its file and line.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envsteward.catalog.problems import ProblemSink
from envsteward.catalog.refs import SecretRef, SecretRefError, is_secret_ref
from envsteward.catalog.rendered import CATALOG_NAMESPACE, RenderedConfig
from envsteward.catalog.yamlio import YamlFile
from envsteward.tree import PathTuple, format_path, iter_nodes


@dataclass
class Layer:
    """One parsed layer file: its tree (secret references parsed, nulls kept as deletions) and origins."""

    rel: str
    data: dict[str, Any]
    origins: dict[PathTuple, str] = field(default_factory=dict)


def build_layer(doc: YamlFile, sink: ProblemSink) -> Layer | None:
    """Turn a parsed layer file into a :class:`Layer`; report problems (with lines) to ``sink``."""
    if doc.data is None:
        return Layer(doc.rel, {})
    if not isinstance(doc.data, dict):
        sink.add(
            doc.display, 1, None, "a configuration layer must be a mapping (key: value) at the top level"
        )
        return None
    if CATALOG_NAMESPACE in doc.data:
        sink.add(
            doc.display,
            doc.line_of((CATALOG_NAMESPACE,)),
            CATALOG_NAMESPACE,
            f"the top-level key {CATALOG_NAMESPACE!r} is reserved for facts from the catalog (tier rules)",
        )
    data = _parse_refs(doc.data, (), doc, sink)
    origins = {path: doc.origin(path) for path, _ in iter_nodes(data)}
    return Layer(doc.rel, data, origins)


def _parse_refs(value: Any, path: PathTuple, doc: YamlFile, sink: ProblemSink) -> Any:
    if isinstance(value, dict):
        return {key: _parse_refs(item, (*path, key), doc, sink) for key, item in value.items()}
    if isinstance(value, list):
        return [_parse_refs(item, (*path, index), doc, sink) for index, item in enumerate(value)]
    if is_secret_ref(value):
        try:
            return SecretRef.parse(value)
        except SecretRefError as exc:
            sink.add(doc.display, doc.line_of(path), format_path(path), str(exc))
            return value
    return value


def _without_nulls(value: Any) -> Any:
    """Mapping values that are null mean "absent"; list items are kept as they are."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return copy.deepcopy(value)


def _drop_origins(origins: dict[PathTuple, str], prefix: PathTuple) -> None:
    size = len(prefix)
    for path in [path for path in origins if path[:size] == prefix]:
        del origins[path]


def _copy_origins(
    target: dict[PathTuple, str], source: dict[PathTuple, str], prefix: PathTuple, value: Any
) -> None:
    target[prefix] = source[prefix]
    for path, _ in iter_nodes(value, prefix):
        if path in source:
            target[path] = source[path]


def _merge(
    target: dict[str, Any],
    origins: dict[PathTuple, str],
    layer: dict[str, Any],
    layer_origins: dict[PathTuple, str],
    prefix: PathTuple,
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if value is None:
            target.pop(key, None)
            _drop_origins(origins, path)
            continue
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, origins, value, layer_origins, path)
            continue
        _drop_origins(origins, path)
        target[key] = _without_nulls(value)
        _copy_origins(origins, layer_origins, path, target[key])


def merge_layers(layers: Iterable[Layer]) -> tuple[dict[str, Any], dict[PathTuple, str]]:
    """Deep-merge ``layers`` in order; returns the tree and ``path -> "file:line"`` for every node."""
    data: dict[str, Any] = {}
    origins: dict[PathTuple, str] = {}
    for layer in layers:
        _merge(data, origins, layer.data, layer.origins, ())
    return data, origins


def render_layers(
    environment: str,
    layers: Iterable[Layer],
    *,
    tier: str | None = None,
    facts: dict[str, Any] | None = None,
    fact_origins: dict[str, str] | None = None,
    secret_paths: tuple[str, ...] = (),
) -> RenderedConfig:
    """Merge ``layers`` into a :class:`RenderedConfig` (no external calls; secrets stay references)."""
    data, origins = merge_layers(layers)
    refs = {format_path(path): value for path, value in iter_nodes(data) if isinstance(value, SecretRef)}
    return RenderedConfig(
        environment=environment,
        data=data,
        origins={format_path(path): origin for path, origin in origins.items()},
        secret_refs=refs,
        tier=tier,
        facts=facts or {},
        fact_origins=fact_origins or {},
        secret_paths=secret_paths,
    )
