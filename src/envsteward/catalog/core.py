"""The loaded, validated catalog: what envsteward manages and how."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from envsteward.catalog.models import ChannelSpec, EnvironmentSpec
from envsteward.catalog.problems import CatalogError, CatalogProblem
from envsteward.catalog.rendered import RenderedConfig
from envsteward.drift.rules import DriftRules
from envsteward.health.specs import HealthRunSettings

if TYPE_CHECKING:
    from envsteward.policy.rules import TierRule, TierRuleOverrides


class Catalog:
    """A valid catalog. Build it with :func:`envsteward.catalog.load_catalog`; it is read-only."""

    def __init__(
        self,
        *,
        root: Path,
        platform: str,
        description: str,
        environments: Mapping[str, EnvironmentSpec],
        promotion_path: tuple[str, ...],
        channels: Mapping[str, ChannelSpec],
        drift_rules: DriftRules,
        rendered: Mapping[str, RenderedConfig],
        tier_overrides: Mapping[str, TierRuleOverrides],
        health: HealthRunSettings | None = None,
    ) -> None:
        self._root = root
        self._platform = platform
        self._description = description
        self._environments = MappingProxyType({name: environments[name] for name in promotion_path})
        self._promotion_path = promotion_path
        self._channels = MappingProxyType(dict(channels))
        self._drift_rules = drift_rules
        self._rendered = dict(rendered)
        self._tier_overrides = MappingProxyType(dict(tier_overrides))
        self._health = health or HealthRunSettings()

    @property
    def root(self) -> Path:
        """The catalog folder (absolute)."""
        return self._root

    @property
    def platform(self) -> str:
        return self._platform

    @property
    def description(self) -> str:
        return self._description

    @property
    def promotion_path(self) -> tuple[str, ...]:
        """Environment names in promotion order, e.g. ``("development", "staging", "production")``."""
        return self._promotion_path

    @property
    def environments(self) -> Mapping[str, EnvironmentSpec]:
        """Every environment, in promotion-path order."""
        return self._environments

    @property
    def channels(self) -> Mapping[str, ChannelSpec]:
        return self._channels

    @property
    def drift_rules(self) -> DriftRules:
        return self._drift_rules

    @property
    def health(self) -> HealthRunSettings:
        """The catalog's ``catalog.yaml`` ``health`` settings (how the health-check flow runs)."""
        return self._health

    @property
    def tier_overrides(self) -> Mapping[str, TierRuleOverrides]:
        """The catalog's ``policies.yaml`` ``tier_rules`` per tier (absent tiers use the defaults)."""
        return self._tier_overrides

    def environment(self, name: str) -> EnvironmentSpec:
        """The environment called ``name``. Raises CatalogError naming the known environments."""
        try:
            return self._environments[name]
        except KeyError:
            message = f"unknown environment {name!r}; known: {', '.join(self._promotion_path)}"
            raise CatalogError(
                [CatalogProblem(f"{self._root.name}/environments.yaml", None, None, message)], summary=message
            ) from None

    def render(self, env_name: str) -> RenderedConfig:
        """The desired configuration of ``env_name`` (a fresh copy; secrets stay references).

        Raises CatalogError for an unknown environment. No external calls.
        """
        self.environment(env_name)
        return copy.deepcopy(self._rendered[env_name])

    def tier_rules(self, env_name: str) -> list[TierRule]:
        """The tier rules for ``env_name``: the defaults of its tier with the catalog's overrides applied.

        Raises CatalogError for an unknown environment.
        """
        from envsteward.policy.rules import default_tier_rules, effective_rules

        tier = self.environment(env_name).tier
        return effective_rules(default_tier_rules()[tier], self._tier_overrides.get(tier))

    def next_environment(self, env_name: str) -> str | None:
        """The environment ``env_name`` promotes to, or None for the last one. Raises CatalogError."""
        self.environment(env_name)
        index = self._promotion_path.index(env_name)
        return self._promotion_path[index + 1] if index + 1 < len(self._promotion_path) else None

    def previous_environment(self, env_name: str) -> str | None:
        """The environment that promotes to ``env_name``, or None for the first one. Raises CatalogError."""
        self.environment(env_name)
        index = self._promotion_path.index(env_name)
        return self._promotion_path[index - 1] if index > 0 else None

    def __repr__(self) -> str:
        return (
            f"Catalog(root={str(self._root)!r}, platform={self._platform!r}, path={self._promotion_path!r})"
        )
