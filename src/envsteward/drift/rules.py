"""Drift rules as the catalog declares them (``policies.drift``): severity, secrecy, ignores, list keys.

These are declarations only; the drift engine (:mod:`envsteward.drift`) interprets them.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from envsteward.ports import Severity


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeverityRule(_Rule):
    """Paths matching ``path`` (a glob over dotted paths, ``*`` one segment, ``**`` any depth) get ``severity``.

    When several rules match, the most specific pattern wins (more literal segments, then fewer wildcards).
    """

    path: str = Field(min_length=1)
    severity: Severity


class IgnoreRule(_Rule):
    """Hide drift at ``path`` for ``reason`` until ``expires`` (inclusive); then it is reported again, and so is
    the expired rule itself."""

    path: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date | None = None
    environments: list[str] | None = None
    """None: every environment."""


class ListKeyRule(_Rule):
    """Match the items of the list at ``path`` by the value of their ``key`` field instead of by position."""

    path: str = Field(min_length=1)
    key: str = Field(min_length=1)


class HealPolicy(_Rule):
    enabled: bool = False
    max_severity: Severity = Severity.MEDIUM
    """Items at or below this severity are healed without approval; above it only after approval."""


class DriftRules(_Rule):
    severity: list[SeverityRule] = Field(default_factory=list)
    secret_paths: list[str] = Field(default_factory=list)
    """Globs of paths whose values are secret (redacted in every report) in addition to secret references."""
    ignore: list[IgnoreRule] = Field(default_factory=list)
    list_keys: list[ListKeyRule] = Field(default_factory=list)
    default_severity: Severity = Severity.MEDIUM
    heal: HealPolicy = Field(default_factory=HealPolicy)
