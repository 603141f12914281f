"""Tier rules: declarative checks every environment of a tier must pass.

A rule has an ``id``, a ``description``, a ``severity``, a ``path`` glob over the rendered configuration
(``*`` one segment, ``**`` any depth: ``services.*.instances`` applies to every service) and a condition:

* ``equals`` / ``not_equals``: a scalar (booleans only equal booleans, ``1`` is not ``true``);
* ``one_of`` / ``not_one_of``: a list of scalars;
* ``min`` / ``max``: numeric bounds, inclusive (both may be given: a range);
* ``matches``: a regular expression searched in the string value (anchor it with ``^…$``);
* ``compare``: ``{op: "<=", other: max}``, the value compared with the value at ``other``, a path relative
  to the matched node's parent (``services.*.autoscaling.min`` with ``other: max`` compares with
  ``services.<same service>.autoscaling.max``);
* ``required: true``: the path must exist. It may stand alone or be combined with one value condition.
  For a path whose last segment is a key and whose parent has no ``**`` (``services.*.instances``), every
  node matching the parent must have that key; otherwise at least one node must match.

``ignore_case: true`` makes string comparisons (equals, one_of, matches...) case-insensitive.

Without ``required``, a rule whose path matches nothing passes. A value that is a secret reference cannot
be checked by a value condition and is reported (fail safe).

Rules see the environment's backup targets under ``_catalog.backups.<name>`` (fields ``kind``,
``encrypted``, ``key_provider``, ``key_id``, ``region``, ``replica_region``, ``schedule``) and
``_catalog.environment`` / ``_catalog.tier``.

Defaults per tier ship in ``envsteward/catalog/defaults/tier_rules.yaml``; a catalog overrides them in
``policies.yaml`` under ``tier_rules.<tier>``: ``defaults: false`` drops them all, ``disable: [id, ...]``
drops some, and each entry of ``rules`` replaces the default rule with the same id or adds a new rule.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from envsteward.errors import ConfigurationError
from envsteward.ports import Severity
from envsteward.tree import Glob, compile_glob, parse_path

Scalar = bool | int | float | str
CompareOp = Literal["<", "<=", "==", "!=", ">=", ">"]
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
VALUE_CONDITIONS = ("equals", "not_equals", "one_of", "not_one_of", "min", "max", "matches", "compare")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_rule_id(value: str) -> str:
    if not _RULE_ID.match(value):
        raise ValueError(f"invalid rule id {value!r}: use letters, digits, '-', '_' and '.'")
    return value


def _check_glob(value: str) -> str:
    return compile_glob(value).text


def _check_relative_path(value: str) -> str:
    parse_path(value)
    if not value.strip():
        raise ValueError("'other' must name a path relative to the matched node's parent")
    return value.strip()


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


RuleId = Annotated[str, AfterValidator(_check_rule_id)]


class Comparison(_Frozen):
    """Compare the matched value with the value at ``other`` (relative to the matched node's parent)."""

    op: CompareOp
    other: Annotated[str, AfterValidator(_check_relative_path)]


class TierRule(_Frozen):
    """One declarative rule; see the module docstring for the conditions."""

    id: RuleId
    description: str = ""
    severity: Severity = Severity.HIGH
    path: Annotated[str, AfterValidator(_check_glob)]
    required: bool = False
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    one_of: list[Scalar] | None = Field(default=None, min_length=1)
    not_one_of: list[Scalar] | None = Field(default=None, min_length=1)
    min: int | float | None = None
    max: int | float | None = None
    matches: Annotated[str, AfterValidator(_check_regex)] | None = None
    compare: Comparison | None = None
    ignore_case: bool = False

    @model_validator(mode="after")
    def _one_condition(self) -> TierRule:
        given = [name for name in VALUE_CONDITIONS if getattr(self, name) is not None]
        kinds = {"range" if name in ("min", "max") else name for name in given}
        if len(kinds) > 1:
            raise ValueError(
                "a rule has one condition (optionally with required: true), "
                f"this one has {', '.join(given)}: split it into several rules"
            )
        if not kinds and not self.required:
            raise ValueError(
                "a rule needs a condition: equals, not_equals, one_of, not_one_of, min, max, matches, "
                "compare or required: true"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    @property
    def glob(self) -> Glob:
        return compile_glob(self.path)

    @property
    def condition(self) -> str | None:
        """The name of the value condition (``range`` for min+max), or None for a ``required``-only rule."""
        given = [name for name in VALUE_CONDITIONS if getattr(self, name) is not None]
        if not given:
            return None
        return "range" if len(given) == 2 else given[0]


class TierRuleOverrides(_Frozen):
    """A catalog's changes to one tier's default rules (``policies.yaml`` ``tier_rules.<tier>``)."""

    defaults: bool = True
    """False: start from no default rule at all."""
    disable: list[str] = Field(default_factory=list)
    """Ids of default rules to drop."""
    rules: list[TierRule] = Field(default_factory=list)
    """Rules to add; a rule with the id of a default rule replaces it."""

    @model_validator(mode="after")
    def _consistent(self) -> TierRuleOverrides:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"rule ids used twice: {', '.join(duplicates)}")
        both = sorted(set(ids) & set(self.disable))
        if both:
            raise ValueError(f"rules both disabled and (re)defined: {', '.join(both)}")
        return self


def effective_rules(defaults: Sequence[TierRule], overrides: TierRuleOverrides | None) -> list[TierRule]:
    """Defaults with the overrides applied: disabled dropped, same-id rules replaced in place, new ones
    appended in their declared order."""
    if overrides is None:
        return list(defaults)
    base = list(defaults) if overrides.defaults else []
    replacements = {rule.id: rule for rule in overrides.rules}
    disabled = set(overrides.disable)
    result = [replacements.pop(rule.id, rule) for rule in base if rule.id not in disabled]
    result.extend(rule for rule in overrides.rules if rule.id in replacements)
    return result


DEFAULT_RULES_RESOURCE = "defaults/tier_rules.yaml"


@functools.cache
def default_tier_rules() -> Mapping[str, tuple[TierRule, ...]]:
    """The tier rules envsteward ships, per tier (``envsteward/catalog/defaults/tier_rules.yaml``).

    Raises ConfigurationError when the shipped file is broken (a packaging bug, never a user mistake).
    """
    from ruamel.yaml import YAML

    text = resources.files("envsteward.catalog").joinpath(DEFAULT_RULES_RESOURCE).read_text(encoding="utf-8")
    raw: Any = YAML(typ="safe").load(text)
    try:
        parsed = _DefaultRules.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"the shipped default tier rules are invalid: {exc}") from None
    return {
        "development": tuple(parsed.development),
        "staging": tuple(parsed.staging),
        "production": tuple(parsed.production),
    }


class _DefaultRules(_Frozen):
    development: list[TierRule] = Field(default_factory=list)
    staging: list[TierRule] = Field(default_factory=list)
    production: list[TierRule] = Field(default_factory=list)
