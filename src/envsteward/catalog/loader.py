"""Load a catalog folder, reporting every mistake at once with its file, line and field.

Layout of a catalog folder (see ``examples/catalog/README.md``):

* ``catalog.yaml`` (required): ``platform``, ``description``, ``base`` (layer files), ``channels``
* ``environments.yaml`` (required): ``environments`` (a list of :class:`EnvironmentSpec`)
* ``policies.yaml`` (optional): ``drift`` (:class:`DriftRules`), ``tier_rules`` (overrides per tier)
* the layer files named by ``base`` and each environment's ``overlays``

Problems name ``<catalog folder name>/<file>``; origins of configuration values name ``<file>`` relative
to the catalog folder.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from envsteward.catalog.core import Catalog
from envsteward.catalog.layers import Layer, build_layer, render_layers
from envsteward.catalog.models import (
    MOUNT_PATTERN,
    SOURCE_KINDS,
    TIER_RANK,
    CatalogDocument,
    ChannelSpec,
    EnvironmentsDocument,
    EnvironmentSpec,
    FileSource,
    PoliciesDocument,
    check_relative_file,
)
from envsteward.catalog.problems import CatalogError, ProblemSink
from envsteward.catalog.rendered import CATALOG_NAMESPACE, RenderedConfig
from envsteward.catalog.yamlio import YamlFile, read_yaml
from envsteward.drift.rules import DriftRules
from envsteward.tree import MISSING, PathTuple, format_path, parse_path, value_at

CATALOG_FILE = "catalog.yaml"
ENVIRONMENTS_FILE = "environments.yaml"
POLICIES_FILE = "policies.yaml"

_CHANNEL: TypeAdapter[Any] = TypeAdapter(ChannelSpec)
_ENVIRONMENT: TypeAdapter[Any] = TypeAdapter(EnvironmentSpec)
_M = typing.TypeVar("_M", bound=BaseModel)
_BACKUP_FACTS = ("kind", "encrypted", "key_provider", "key_id", "region", "replica_region", "schedule")


def load_catalog(path: Path | str) -> Catalog:
    """Load and validate the catalog in folder ``path`` (or the folder of a ``catalog.yaml`` file).

    Reads local files only. Raises CatalogError listing every problem found, each with file, line, field.
    """
    return _Loader(Path(path)).load()


@dataclass
class _EnvEntry:
    index: int
    raw: Any
    spec: EnvironmentSpec | None

    @property
    def name(self) -> str | None:
        name = self.raw.get("name") if isinstance(self.raw, dict) else None
        return name if isinstance(name, str) else None


@dataclass
class _Loader:
    given: Path
    sink: ProblemSink = field(default_factory=ProblemSink)
    layers: dict[str, Layer | None] = field(default_factory=dict)
    channel_names: set[str] = field(default_factory=set)
    channels_known: bool = False

    def __post_init__(self) -> None:
        resolved = self.given.resolve()
        if resolved.is_file() and resolved.name == CATALOG_FILE:
            resolved = resolved.parent
        self.root = resolved
        self.root_name = resolved.name or str(resolved)

    def display(self, rel: str) -> str:
        return f"{self.root_name}/{rel}"

    # -- entry point ---------------------------------------------------------------------------------------

    def load(self) -> Catalog:
        if not self.root.is_dir():
            message = (
                f"catalog folder {self.given} does not exist (set ENVSTEWARD_CATALOG or pass the folder)"
            )
            raise CatalogError([], summary=message)
        catalog_doc = self.read(CATALOG_FILE, required=True)
        env_doc = self.read(ENVIRONMENTS_FILE, required=True)
        policies_doc = self.read(POLICIES_FILE, required=False)

        header = self.validate_document(catalog_doc, CatalogDocument)
        channels = self.load_channels(catalog_doc)
        entries = self.load_environments(env_doc)
        drift_rules, overrides = self.load_policies(policies_doc, entries)

        env_names = {entry.name for entry in entries if entry.name}
        self.check_duplicate_environments(env_doc, entries)
        path = self.check_promotion_path(env_doc, entries) if env_doc is not None else None
        for entry in entries:
            if env_doc is not None:
                self.check_environment(env_doc, entry)
        base_layers = self.load_base_layers(catalog_doc)
        rendered = self.render_all(env_doc, entries, base_layers, drift_rules)

        if self.sink or header is None or path is None or not env_names:
            raise CatalogError(self.sink.problems)
        environments = {entry.spec.name: self.resolve_files(entry.spec) for entry in entries if entry.spec}
        return Catalog(
            root=self.root,
            platform=header.platform,
            description=header.description,
            environments=environments,
            promotion_path=path,
            channels=channels,
            drift_rules=drift_rules or DriftRules(),
            rendered=rendered,
            tier_overrides=overrides,
        )

    # -- reading and validating ----------------------------------------------------------------------------

    def read(self, rel: str, *, required: bool, config_tree: bool = False) -> YamlFile | None:
        file = self.root / rel
        if not required and not file.exists():
            return None
        if required and not file.exists():
            self.sink.add(
                self.display(rel),
                None,
                None,
                "file not found: a catalog folder holds catalog.yaml and environments.yaml "
                "(see examples/catalog/README.md)",
            )
            return None
        return read_yaml(file, rel, self.display(rel), self.sink, config_tree=config_tree)

    def validate_document(self, doc: YamlFile | None, model: type[_M]) -> _M | None:
        if doc is None:
            return None
        if not isinstance(doc.data, dict):
            self.sink.add(doc.display, 1, None, "the file must hold a mapping (key: value) at the top level")
            return None
        return typing.cast("_M | None", self.validate(doc, (), doc.data, model, model))

    def validate(self, doc: YamlFile, prefix: PathTuple, value: Any, adapter: Any, root_type: Any) -> Any:
        """Validate ``value`` (found at ``prefix`` in ``doc``); report each error with its line."""
        validator = adapter if isinstance(adapter, TypeAdapter) else TypeAdapter(adapter)
        try:
            return validator.validate_python(value)
        except ValidationError as exc:
            grouped: dict[tuple[int, str], list[str]] = {}
            for error in exc.errors(include_url=False):
                line, field_name, message = _describe(doc, prefix, error, root_type)
                messages = grouped.setdefault((line, field_name), [])
                if message not in messages:
                    messages.append(message)
            for (line, field_name), messages in grouped.items():
                text = messages[0] if len(messages) == 1 else "invalid value: " + "; or ".join(messages)
                self.sink.add(doc.display, line, field_name, text)
            return None

    def load_channels(self, doc: YamlFile | None) -> dict[str, ChannelSpec]:
        channels: dict[str, ChannelSpec] = {}
        raw_channels = _field(doc, "channels", [])
        if doc is None or not isinstance(raw_channels, list):
            return channels
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_channels):
            path = ("channels", index)
            name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(name, str):
                if name in seen:
                    self.sink.add(
                        doc.display,
                        doc.line_of((*path, "name")),
                        format_path((*path, "name")),
                        f"duplicate channel name {name!r} (first defined at line {seen[name]})",
                    )
                    continue
                seen[name] = doc.line_of(path)
            spec = self.validate(doc, path, raw, _CHANNEL, ChannelSpec)
            if spec is not None:
                channels[spec.name] = spec
        self.channel_names = set(seen)
        self.channels_known = True
        return channels

    def load_environments(self, doc: YamlFile | None) -> list[_EnvEntry]:
        self.validate_document(doc, EnvironmentsDocument)
        raw_environments = _field(doc, "environments", None)
        if doc is None or not isinstance(raw_environments, list):
            return []
        return [
            _EnvEntry(
                index, raw, self.validate(doc, ("environments", index), raw, _ENVIRONMENT, EnvironmentSpec)
            )
            for index, raw in enumerate(raw_environments)
        ]

    def load_policies(
        self, doc: YamlFile | None, entries: Sequence[_EnvEntry]
    ) -> tuple[DriftRules | None, dict[str, Any]]:
        from envsteward.policy.rules import TierRuleOverrides, default_tier_rules

        self.validate_document(doc, PoliciesDocument)
        if doc is None or not isinstance(doc.data, dict):
            return None, {}
        drift = None
        if doc.data.get("drift") is not None:
            drift = self.validate(doc, ("drift",), doc.data["drift"], DriftRules, DriftRules)
        if drift is not None:
            self.check_drift_rules(doc, drift, {entry.name for entry in entries if entry.name})
        overrides: dict[str, Any] = {}
        tier_rules = doc.data.get("tier_rules")
        for tier, raw in tier_rules.items() if isinstance(tier_rules, dict) else ():
            prefix = ("tier_rules", tier)
            if tier not in TIER_RANK:
                self.sink.add(
                    doc.display,
                    doc.line_of(prefix),
                    format_path(prefix),
                    f"unknown tier {tier!r}: expected development, staging or production",
                )
                continue
            known = [rule.id for rule in default_tier_rules()[tier]]
            raw_disable = raw.get("disable") if isinstance(raw, dict) else None
            for index, rule_id in enumerate(_items(raw_disable)):
                if isinstance(rule_id, str) and rule_id not in known:
                    where = (*prefix, "disable", index)
                    self.sink.add(
                        doc.display,
                        doc.line_of(where),
                        format_path(where),
                        f"unknown default rule {rule_id!r} for tier {tier}; its default rules are: "
                        f"{', '.join(known) or '(none)'}",
                    )
            parsed = self.validate(doc, prefix, raw, TierRuleOverrides, TierRuleOverrides)
            if parsed is not None:
                overrides[tier] = parsed
        return drift, overrides

    def check_drift_rules(self, doc: YamlFile, drift: DriftRules, env_names: set[str | None]) -> None:
        for i, rule in enumerate(drift.ignore):
            for j, env in enumerate(rule.environments or []):
                if env not in env_names:
                    where = ("drift", "ignore", i, "environments", j)
                    self.sink.add(
                        doc.display,
                        doc.line_of(where),
                        format_path(where),
                        f"unknown environment {env!r}; known: {', '.join(sorted(n for n in env_names if n))}",
                    )

    # -- cross-checks --------------------------------------------------------------------------------------

    def check_duplicate_environments(self, doc: YamlFile | None, entries: Sequence[_EnvEntry]) -> None:
        if doc is None:
            return
        seen: dict[str, int] = {}
        for entry in entries:
            if entry.name is None:
                continue
            where = ("environments", entry.index, "name")
            if entry.name in seen:
                self.sink.add(
                    doc.display,
                    doc.line_of(where),
                    format_path(where),
                    f"duplicate environment name {entry.name!r} (first defined at line {seen[entry.name]})",
                )
            else:
                seen[entry.name] = doc.line_of(where)

    def check_promotion_path(self, doc: YamlFile, entries: Sequence[_EnvEntry]) -> tuple[str, ...] | None:
        """The environments in promotion order, or None (with problems reported) when the path is broken."""
        nodes: dict[str, _EnvEntry] = {}
        for entry in entries:
            if entry.name is not None and entry.name not in nodes:
                nodes[entry.name] = entry
        if not nodes:
            return None
        targets: dict[str, str | None] = {}
        broken = False
        for name, entry in nodes.items():
            target = entry.raw.get("promotes_to")
            where = ("environments", entry.index, "promotes_to")
            if target is not None and not isinstance(target, str):
                broken = True  # a type error, reported by validation
                continue
            if target is not None and target not in nodes:
                self.sink.add(
                    doc.display,
                    doc.line_of(where),
                    format_path(where),
                    f"unknown environment {target!r}; known: {', '.join(nodes)}",
                )
                broken = True
                continue
            targets[name] = target
        if broken:
            return None
        return self._walk_promotion_path(doc, nodes, targets)

    def _walk_promotion_path(
        self, doc: YamlFile, nodes: Mapping[str, _EnvEntry], targets: Mapping[str, str | None]
    ) -> tuple[str, ...] | None:
        def where(name: str) -> tuple[int, str]:
            path = ("environments", nodes[name].index, "promotes_to")
            return doc.line_of(path), format_path(path)

        ok = True
        incoming: dict[str, list[str]] = {}
        for name, target in targets.items():
            if target is not None:
                incoming.setdefault(target, []).append(name)
        for target, sources in incoming.items():
            for extra in sources[1:]:
                line, field_name = where(extra)
                self.sink.add(
                    doc.display,
                    line,
                    field_name,
                    f"{sources[0]!r} already promotes to {target!r}: the promotion path is a single line, "
                    "each environment has at most one predecessor",
                )
                ok = False
        reported: set[frozenset[str]] = set()
        for start in targets:
            walk: list[str] = []
            current: str | None = start
            while current is not None and current not in walk:
                walk.append(current)
                current = targets[current]
            if current is None:
                continue
            cycle = walk[walk.index(current) :]
            if frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            closing = max(cycle, key=lambda name: nodes[name].index)
            line, field_name = where(closing)
            loop = " -> ".join([*cycle, cycle[0]])
            self.sink.add(
                doc.display,
                line,
                field_name,
                f"the promotion path has a cycle: {loop}; "
                "the last environment on the path must not set promotes_to",
            )
            ok = False
        if not ok:
            return None
        starts = [name for name in targets if name not in incoming]
        chains: list[list[str]] = []
        for start in starts:
            chain: list[str] = []
            current = start
            while current is not None:
                chain.append(current)
                current = targets[current]
            chains.append(chain)
        if len(chains) > 1:
            first_end = chains[0][-1]
            described = " and ".join(repr(" -> ".join(chain)) for chain in chains)
            line = doc.line_of(("environments", nodes[first_end].index))
            self.sink.add(
                doc.display,
                line,
                format_path(("environments", nodes[first_end].index)),
                f"the promotion path has a gap: {described} are not connected; "
                f"set promotes_to on {first_end!r} (to {chains[1][0]!r}) "
                "so that every environment is on one path",
            )
            return None
        path = tuple(chains[0])
        for name, target in itertools.pairwise(path):
            here, there = nodes[name].spec, nodes[target].spec
            if here is not None and there is not None and TIER_RANK[here.tier] > TIER_RANK[there.tier]:
                line, field_name = where(name)
                self.sink.add(
                    doc.display,
                    line,
                    field_name,
                    f"{name!r} ({here.tier}) promotes to {target!r} ({there.tier}): changes must flow "
                    "from lower to higher tiers (development -> staging -> production)",
                )
                ok = False
        return path if ok else None

    def check_environment(self, doc: YamlFile, entry: _EnvEntry) -> None:
        """Names and references inside one environment, checked on the raw data so that an environment
        with other mistakes still gets these reported too."""
        raw = entry.raw
        if not isinstance(raw, dict):
            return
        prefix: PathTuple = ("environments", entry.index)
        env_name = entry.name or f"#{entry.index}"

        def problem(path: PathTuple, message: str) -> None:
            full = (*prefix, *path)
            self.sink.add(doc.display, doc.line_of(full), format_path(full), message)

        for key, kind in (
            ("sources", "source"),
            ("health_checks", "health check"),
            ("backups", "backup target"),
        ):
            first: dict[str, int] = {}
            for index, item in enumerate(_items(raw.get(key))):
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str):
                    continue
                if name in first:
                    line = doc.line_of((*prefix, key, first[name]))
                    problem(
                        (key, index, "name"),
                        f"duplicate {kind} name {name!r} in environment {env_name!r} (first at line {line})",
                    )
                else:
                    first[name] = index
        if self.channels_known:
            for index, channel in enumerate(_items(raw.get("notify"))):
                if isinstance(channel, str) and channel not in self.channel_names:
                    known = (
                        ", ".join(sorted(self.channel_names)) or "(none: declare channels in catalog.yaml)"
                    )
                    problem(("notify", index), f"unknown channel {channel!r}; known: {known}")
        mounts: list[tuple[str, tuple[str, ...]]] = []
        for index, source in enumerate(_items(raw.get("sources"))):
            if not isinstance(source, dict):
                continue
            mount_at = source.get("mount_at", "")
            if (
                not isinstance(mount_at, str)
                or not MOUNT_PATTERN.match(mount_at)
                or source.get("kind") not in SOURCE_KINDS
            ):
                continue  # reported by validation
            name = str(source.get("name", f"#{index}"))
            mount = tuple(part for part in mount_at.split(".") if part)
            for other_name, other in mounts:
                if mount[: len(other)] == other or other[: len(mount)] == mount:
                    problem(
                        ("sources", index, "mount_at"),
                        f"source {name!r} (mounted at {mount_at or '<root>'!r}) overlaps source "
                        f"{other_name!r} (mounted at {'.'.join(other) or '<root>'!r}): each part of the "
                        "configuration lives in exactly one source",
                    )
                    break
            mounts.append((name, mount))

    # -- layers and rendering ------------------------------------------------------------------------------

    def layer(self, rel: str) -> Layer | None:
        if rel not in self.layers:
            doc = self.read(rel, required=False, config_tree=True)
            self.layers[rel] = None if doc is None else build_layer(doc, self.sink)
        return self.layers[rel]

    def load_layer_list(self, doc: YamlFile, prefix: PathTuple, files: Any) -> list[Layer] | None:
        """The layers named by the raw list ``files``; None (problems reported) when one is unusable."""
        if files is None:
            return []
        if not isinstance(files, list):
            return None  # reported by validation
        layers: list[Layer] = []
        complete = True
        for index, rel in enumerate(files):
            if not _usable_layer_path(rel):
                complete = False  # reported by validation
                continue
            if not (self.root / rel).is_file():
                where = (*prefix, index)
                self.sink.add(
                    doc.display,
                    doc.line_of(where),
                    format_path(where),
                    f"layer file {rel!r} not found in the catalog folder",
                )
                complete = False
                continue
            layer = self.layer(rel)
            if layer is None:
                complete = False
            else:
                layers.append(layer)
        return layers if complete else None

    def load_base_layers(self, doc: YamlFile | None) -> list[Layer] | None:
        if doc is None or not isinstance(doc.data, dict):
            return None
        return self.load_layer_list(doc, ("base",), doc.data.get("base"))

    def render_all(
        self,
        env_doc: YamlFile | None,
        entries: Sequence[_EnvEntry],
        base: list[Layer] | None,
        drift: DriftRules | None,
    ) -> dict[str, RenderedConfig]:
        rendered: dict[str, RenderedConfig] = {}
        if env_doc is None:
            return rendered
        secret_paths = tuple(drift.secret_paths) if drift else ()
        for entry in entries:
            prefix = ("environments", entry.index)
            raw_overlays = entry.raw.get("overlays") if isinstance(entry.raw, dict) else None
            overlays = self.load_layer_list(env_doc, (*prefix, "overlays"), raw_overlays)
            spec = entry.spec
            if spec is None or overlays is None or base is None:
                continue
            facts, fact_origins = _facts(env_doc, prefix, spec)
            config = render_layers(
                spec.name,
                [*base, *overlays],
                tier=spec.tier,
                facts=facts,
                fact_origins=fact_origins,
                secret_paths=secret_paths,
            )
            rendered[spec.name] = config
            self.check_mounts(env_doc, prefix, spec, config)
        return rendered

    def check_mounts(
        self, doc: YamlFile, prefix: PathTuple, spec: EnvironmentSpec, config: RenderedConfig
    ) -> None:
        for index, source in enumerate(spec.sources):
            value = value_at(config.data, parse_path(source.mount_at))
            where = (*prefix, "sources", index, "mount_at")
            if value is MISSING:
                message = (
                    f"source {source.name!r} holds {source.mount_at!r}, but the desired configuration of "
                    f"{spec.name!r} has nothing there: declare it in a layer (an empty mapping is fine)"
                )
            elif not isinstance(value, dict):
                message = (
                    f"source {source.name!r} holds {source.mount_at!r}, but in the desired configuration of "
                    f"{spec.name!r} that is {'a list' if isinstance(value, list) else 'a single value'}, "
                    "not a mapping"
                )
            else:
                continue
            self.sink.add(doc.display, doc.line_of(where), format_path(where), message)

    def resolve_files(self, spec: EnvironmentSpec) -> EnvironmentSpec:
        """File sources with relative paths get absolute paths (resolved against the catalog folder)."""
        sources = [
            source.model_copy(update={"path": (self.root / source.path).resolve()})
            if isinstance(source, FileSource) and not source.path.is_absolute()
            else source
            for source in spec.sources
        ]
        return spec.model_copy(update={"sources": sources})


def _field(doc: YamlFile | None, name: str, default: Any) -> Any:
    """A top-level field of a parsed file, read before (and whether or not) the file validates."""
    if doc is None or not isinstance(doc.data, dict):
        return None
    return doc.data.get(name, default)


def _usable_layer_path(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check_relative_file(value)
    except ValueError:
        return False
    return True


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _facts(doc: YamlFile, prefix: PathTuple, spec: EnvironmentSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """What tier rules see under ``_catalog`` for ``spec``, with the origins in environments.yaml."""
    backups: dict[str, Any] = {}
    origins: dict[str, str] = {
        CATALOG_NAMESPACE: doc.origin(prefix),
        f"{CATALOG_NAMESPACE}.environment": doc.origin((*prefix, "name")),
        f"{CATALOG_NAMESPACE}.tier": doc.origin((*prefix, "tier")),
        f"{CATALOG_NAMESPACE}.backups": doc.origin((*prefix, "backups")),
    }
    for index, target in enumerate(spec.backups):
        item = (*prefix, "backups", index)
        backups[target.name] = {name: getattr(target, name) for name in _BACKUP_FACTS}
        origins[f"{CATALOG_NAMESPACE}.backups.{target.name}"] = doc.origin(item)
        for name in _BACKUP_FACTS:
            origins[f"{CATALOG_NAMESPACE}.backups.{target.name}.{name}"] = doc.origin((*item, name))
    facts = {"environment": spec.name, "tier": spec.tier, "backups": backups}
    return facts, origins


# -- pydantic errors -> file, line, field, message -------------------------------------------------------


def _describe(doc: YamlFile, prefix: PathTuple, error: ErrorDetails, root_type: Any) -> tuple[int, str, str]:
    loc = tuple(error["loc"])
    node: Any = value_at(doc.data, prefix)
    matched: list[str | int] = list(prefix)
    field_parts: list[str | int] = list(prefix)
    missing_field: str | None = None
    for index, part in enumerate(loc):
        in_mapping = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            if index == len(loc) - 1 and isinstance(part, str) and isinstance(node, dict):
                missing_field = part
                field_parts.append(part)
            continue  # a union tag or validator name in the loc: not part of the document
        matched.append(part)
        field_parts.append(part)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(root_type, loc[:-1])
        message = f"unknown field {loc[-1]!r}"
        if allowed:
            message += f"; allowed fields: {', '.join(allowed)}"
    elif kind == "missing":
        message = f"missing required field {missing_field or loc[-1]!r}"
    elif kind == "union_tag_invalid":
        tags = ctx.get("expected_tags", "")
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        message = f"unknown {discriminator} {ctx.get('tag')!r}: expected one of {tags}"
        matched.append(discriminator)
        field_parts.append(discriminator)
    elif kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        options = _discriminator_tags(root_type, loc)
        message = f"missing required field {discriminator!r}" + (f" (one of {options})" if options else "")
        field_parts.append(discriminator)
    line = doc.line_of(tuple(matched))
    return line, format_path(field_parts), message


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if _is_union(tp) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _is_union(tp: Any) -> bool:
    import types

    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag_of(model: Any) -> str | None:
    if isinstance(model, type) and issubclass(model, BaseModel) and "kind" in model.model_fields:
        values = typing.get_args(model.model_fields["kind"].annotation)
        return str(values[0]) if values else None
    return None


def _walk_type(root_type: Any, loc: Sequence[str | int]) -> Any:
    tp = root_type
    for part in loc:
        tp = _unwrap(tp)
        if _is_union(tp):
            members = {_tag_of(member): member for member in typing.get_args(tp)}
            if part in members:
                tp = members[part]
                continue
            return None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return None
            tp = info.annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _allowed_fields(root_type: Any, loc: Sequence[str | int]) -> list[str]:
    tp = _walk_type(root_type, loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _discriminator_tags(root_type: Any, loc: Sequence[str | int]) -> str:
    tp = _walk_type(root_type, loc)
    if tp is not None and _is_union(tp):
        tags = [tag for tag in (_tag_of(member) for member in typing.get_args(tp)) if tag]
        return ", ".join(repr(tag) for tag in tags)
    return ""
