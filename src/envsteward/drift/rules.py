"""Drift rules as the catalog declares them (``policies.drift``): severity, secrecy, ignores, list keys.

These are declarations only; the drift engine (:mod:`envsteward.drift`) interprets them. Paths are globs in
the syntax of :mod:`envsteward.tree.globs` (validated here, so a malformed glob is a catalog error naming
its field); an unknown severity name is rejected by the :class:`~envsteward.ports.Severity` enum.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from envsteward.ports import Severity
from envsteward.tree import validate_glob

PathGlob = Annotated[str, Field(min_length=1), AfterValidator(validate_glob)]
"""A path glob (``services[*].port``, ``**.password``); see :mod:`envsteward.tree.globs`."""


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeverityRule(_Rule):
    """Paths matching ``path`` (a glob over dotted paths, ``*`` one segment, ``**`` any depth) get
    ``severity``.

    When several rules match, the most specific pattern wins (more literal segments, then fewer wildcards;
    among equally specific ones the more severe).
    """

    path: PathGlob
    severity: Severity


class IgnoreRule(_Rule):
    """Hide drift at ``path`` for ``reason`` until ``expires`` (inclusive); then it is reported again, and so
    is the expired rule itself."""

    path: PathGlob
    reason: str = Field(min_length=1)
    expires: date | None = None
    environments: list[str] | None = None
    """None: every environment."""


class ListKeyRule(_Rule):
    """Match the items of the list at ``path`` by the value of their ``key`` field instead of by position."""

    path: PathGlob
    key: str = Field(min_length=1)


class HealPolicy(_Rule):
    enabled: bool = False
    max_severity: Severity = Severity.MEDIUM
    """Items at or below this severity are healed without approval; above it only after approval."""


class DriftRules(_Rule):
    severity: list[SeverityRule] = Field(default_factory=list)
    secret_paths: list[PathGlob] = Field(default_factory=list)
    """Globs of paths whose values are secret (redacted in every report) in addition to secret references."""
    ignore: list[IgnoreRule] = Field(default_factory=list)
    list_keys: list[ListKeyRule] = Field(default_factory=list)
    default_severity: Severity = Severity.MEDIUM
    heal: HealPolicy = Field(default_factory=HealPolicy)
