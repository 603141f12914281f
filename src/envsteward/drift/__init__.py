"""The drift engine: desired vs live, and environment parity. No Prefect here.

* :func:`compare` (:mod:`~envsteward.drift.engine`) — desired vs live configuration of one environment, a
  :class:`DriftReport`; the walk (:mod:`~envsteward.drift.walk`), rules compiled to one glob set
  (:mod:`~envsteward.drift.compiled_rules`), type-exact values (:mod:`~envsteward.drift.values`) and
  redacted items (:mod:`~envsteward.drift.items`) behind it;
* :func:`parity` (:mod:`~envsteward.drift.parity`) — two neighbouring environments on the promotion path;
* :mod:`envsteward.drift.rules` — the rules model the catalog declares (a leaf: the catalog imports it);
* :mod:`envsteward.tree` — the path and glob syntax the rules use;
* :mod:`envsteward.drift.documents` — loading YAML/JSON documents with their ``file:line`` origins.
"""

from envsteward.drift.engine import compare
from envsteward.drift.items import Fingerprint, heal_decision, item_fingerprint
from envsteward.drift.model import DriftItem, DriftKind, DriftReport, DriftSummary, ExpiredIgnore
from envsteward.drift.parity import parity
from envsteward.drift.redaction import REDACTED, is_secret_key
from envsteward.drift.rules import DriftRules, HealPolicy, IgnoreRule, ListKeyRule, SeverityRule
from envsteward.drift.values import type_name

__all__ = [
    "REDACTED",
    "DriftItem",
    "DriftKind",
    "DriftReport",
    "DriftRules",
    "DriftSummary",
    "ExpiredIgnore",
    "Fingerprint",
    "HealPolicy",
    "IgnoreRule",
    "ListKeyRule",
    "SeverityRule",
    "compare",
    "heal_decision",
    "is_secret_key",
    "item_fingerprint",
    "parity",
    "type_name",
]
