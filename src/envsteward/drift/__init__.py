"""The drift engine: desired vs live, and environment parity. No Prefect here.

* :func:`compare` — desired vs live configuration of one environment, a :class:`DriftReport`;
* :func:`parity` — two neighbouring environments on the promotion path;
* :mod:`envsteward.tree` — the path and glob syntax the rules use;
* :mod:`envsteward.drift.documents` — loading YAML/JSON documents with their ``file:line`` origins.
"""

from envsteward.drift.engine import Fingerprint, compare, heal_decision, item_fingerprint, parity, type_name
from envsteward.drift.model import DriftItem, DriftKind, DriftReport, DriftSummary, ExpiredIgnore
from envsteward.drift.redaction import REDACTED, is_secret_key
from envsteward.drift.rules import DriftRules, HealPolicy, IgnoreRule, ListKeyRule, SeverityRule

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
