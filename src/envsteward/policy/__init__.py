"""Tier policy rules: declarative checks per tier, evaluated on a rendered or planned configuration."""

from envsteward.policy.engine import Violation, evaluate_tier_rules
from envsteward.policy.rules import (
    Comparison,
    TierRule,
    TierRuleOverrides,
    default_tier_rules,
    effective_rules,
)

__all__ = [
    "Comparison",
    "TierRule",
    "TierRuleOverrides",
    "Violation",
    "default_tier_rules",
    "effective_rules",
    "evaluate_tier_rules",
]
