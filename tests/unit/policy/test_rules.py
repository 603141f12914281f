"""Tier rule declarations: validation, shipped defaults, and catalog overrides."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from envsteward.catalog import load_catalog
from envsteward.policy import TierRule, TierRuleOverrides, default_tier_rules, effective_rules
from envsteward.ports import Severity
from tests.unit.catalog.conftest import EXAMPLE, CatalogFactory, make_catalog  # noqa: F401 - a fixture

REQUIRED_PRODUCTION_RULES = {
    "encryption-at-rest",
    "tls-required",
    "admin-mfa",
    "session-timeout",
    "debug-off",
    "log-level",
    "backups-configured",
    "backups-encrypted",
    "backups-cross-region",
    "min-instances",
    "autoscaling-bounds",
    "autoscaling-cpu-above-scale-down",
    "autoscaling-cpu-below-scale-up",
}


def rule(**fields: Any) -> TierRule:
    return TierRule.model_validate({"id": "r", "path": "a", **fields})


def test_defaults_load_with_unique_ids_per_tier() -> None:
    defaults = default_tier_rules()
    assert set(defaults) == {"development", "staging", "production"}
    for rules in defaults.values():
        ids = [item.id for item in rules]
        assert len(ids) == len(set(ids))
    assert {item.id for item in defaults["production"]} >= REQUIRED_PRODUCTION_RULES


def test_session_timeout_default_is_at_most_30_minutes() -> None:
    session = next(item for item in default_tier_rules()["production"] if item.id == "session-timeout")
    assert (session.path, session.max, session.required) == ("security.session.timeout_minutes", 30, True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "a rule needs a condition"),
        ({"equals": 1, "max": 2}, "a rule has one condition"),
        ({"min": 5, "max": 2}, r"min \(5\) is greater than max \(2\)"),
        ({"matches": "("}, "invalid regular expression"),
        ({"path": "a..b", "required": True}, "empty segment"),
        ({"compare": {"op": "<<", "other": "b"}}, "Input should be"),
        ({"compare": {"op": "<", "other": "b.*"}}, "wildcards"),
        ({"one_of": []}, "at least 1 item"),
        ({"id": "has space", "required": True}, "invalid rule id"),
        ({"required": True, "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_rules(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(**fields)


def test_conditions() -> None:
    assert rule(required=True).condition is None
    assert rule(min=1, max=2).condition == "range"
    assert rule(equals=False).equals is False
    assert rule(equals=3).equals == 3
    assert rule(equals="3").equals == "3"
    assert rule(required=True).severity is Severity.HIGH


def test_effective_rules_disable_replace_add_and_drop_defaults() -> None:
    defaults = [rule(id="a", required=True), rule(id="b", required=True), rule(id="c", required=True)]
    overrides = TierRuleOverrides(
        disable=["b"], rules=[rule(id="new", required=True), rule(id="c", equals=1)]
    )
    result = effective_rules(defaults, overrides)
    assert [item.id for item in result] == ["a", "c", "new"]
    assert result[1].equals == 1
    assert effective_rules(defaults, None) == defaults
    assert [
        item.id
        for item in effective_rules(
            defaults, TierRuleOverrides(defaults=False, rules=[rule(id="x", equals=1)])
        )
    ] == ["x"]


def test_overrides_reject_contradictions() -> None:
    with pytest.raises(ValidationError, match="both disabled and"):
        TierRuleOverrides(disable=["a"], rules=[rule(id="a", required=True)])
    with pytest.raises(ValidationError, match="rule ids used twice"):
        TierRuleOverrides(rules=[rule(id="a", required=True), rule(id="a", equals=1)])


def test_catalog_tier_rules_apply_overrides_per_tier() -> None:
    catalog = load_catalog(EXAMPLE)
    production = [item.id for item in catalog.tier_rules("production")]
    assert production[: len(default_tier_rules()["production"])] == [
        item.id for item in default_tier_rules()["production"]
    ]
    assert production[-2:] == ["tls-min-version", "email-provider"]
    assert [item.id for item in catalog.tier_rules("staging")] == [
        item.id for item in default_tier_rules()["staging"]
    ]
    assert [item.id for item in catalog.tier_rules("development")][-1] == "local-hosts"


def test_catalog_can_replace_and_disable_defaults(make_catalog: CatalogFactory) -> None:  # noqa: F811
    root = make_catalog(
        **{
            "policies.yaml": """
            tier_rules:
              production:
                disable: [debug-off]
                rules:
                  - id: min-instances
                    path: services.*.instances
                    min: 1
              development:
                defaults: false
            """
        }
    )
    catalog = load_catalog(root)
    rules = {item.id: item for item in catalog.tier_rules("prod")}
    assert "debug-off" not in rules
    assert rules["min-instances"].min == 1
    assert not rules["min-instances"].required
    assert catalog.tier_rules("dev") == []
