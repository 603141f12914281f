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

import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from envsteward.catalog.core import Catalog
from envsteward.catalog.cross_checks import (
    EnvEntry,
    check_drift_rule_environments,
    check_duplicate_environments,
    check_environment,
    check_mounts,
    items,
)
from envsteward.catalog.field_errors import report_validation_error
from envsteward.catalog.layers import Layer, build_layer, render_layers
from envsteward.catalog.models import (
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
from envsteward.catalog.promotion_path import check_promotion_path
from envsteward.catalog.rendered import CATALOG_NAMESPACE, RenderedConfig
from envsteward.catalog.yamlio import YamlFile, YamlLimits, read_yaml
from envsteward.drift.rules import DriftRules
from envsteward.policy.rules import TierRuleOverrides, default_tier_rules
from envsteward.tree import PathTuple, format_path

CATALOG_FILE = "catalog.yaml"
ENVIRONMENTS_FILE = "environments.yaml"
POLICIES_FILE = "policies.yaml"

_CHANNEL: TypeAdapter[Any] = TypeAdapter(ChannelSpec)
_ENVIRONMENT: TypeAdapter[Any] = TypeAdapter(EnvironmentSpec)
_M = typing.TypeVar("_M", bound=BaseModel)
_BACKUP_FACTS = ("kind", "encrypted", "key_provider", "key_id", "region", "replica_region", "schedule")


def load_catalog(path: Path | str, *, limits: YamlLimits | None = None) -> Catalog:
    """Load and validate the catalog in folder ``path`` (or the folder of a ``catalog.yaml`` file).

    ``limits``: the budget of each file (size, nodes after alias expansion, nesting depth); default: the
    defaults of :class:`YamlLimits` with ``ENVSTEWARD_CATALOG_MAX_*`` environment variables applied.
    Reads local files (and the environment) only. Raises CatalogError listing every problem found, each with
    file, line, field (one naming the variable when a limit variable is not a positive integer).
    """
    if limits is None:
        try:
            limits = YamlLimits.from_environment()
        except ValueError as exc:
            raise CatalogError([], summary=str(exc)) from None
    return _Loader(Path(path), limits=limits).load()


@dataclass
class _Loader:
    given: Path
    limits: YamlLimits = field(default_factory=YamlLimits)
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
        check_duplicate_environments(self.sink, env_doc, entries)
        path = check_promotion_path(self.sink, env_doc, entries) if env_doc is not None else None
        for entry in entries:
            if env_doc is not None:
                check_environment(
                    self.sink, env_doc, entry, self.channel_names if self.channels_known else None
                )
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
            health=header.health,
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
        return read_yaml(file, rel, self.display(rel), self.sink, config_tree=config_tree, limits=self.limits)

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
            report_validation_error(self.sink, doc, prefix, exc, root_type)
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

    def load_environments(self, doc: YamlFile | None) -> list[EnvEntry]:
        self.validate_document(doc, EnvironmentsDocument)
        raw_environments = _field(doc, "environments", None)
        if doc is None or not isinstance(raw_environments, list):
            return []
        return [
            EnvEntry(
                index, raw, self.validate(doc, ("environments", index), raw, _ENVIRONMENT, EnvironmentSpec)
            )
            for index, raw in enumerate(raw_environments)
        ]

    def load_policies(
        self, doc: YamlFile | None, entries: Sequence[EnvEntry]
    ) -> tuple[DriftRules | None, dict[str, Any]]:
        self.validate_document(doc, PoliciesDocument)
        if doc is None or not isinstance(doc.data, dict):
            return None, {}
        drift = None
        if doc.data.get("drift") is not None:
            drift = self.validate(doc, ("drift",), doc.data["drift"], DriftRules, DriftRules)
        if drift is not None:
            check_drift_rule_environments(
                self.sink, doc, drift, {entry.name for entry in entries if entry.name}
            )
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
            for index, rule_id in enumerate(items(raw_disable)):
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
        entries: Sequence[EnvEntry],
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
            check_mounts(self.sink, env_doc, prefix, spec, config)
        return rendered

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
