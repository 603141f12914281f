"""The public API around compare/parity: SecretRef leaves, the report's helpers, rule errors, immutability."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
from pydantic import ValidationError

from envsteward.catalog.refs import SecretRef
from envsteward.drift import DriftKind, DriftReport, DriftRules, compare, parity
from envsteward.drift.rules import IgnoreRule
from envsteward.errors import ConfigurationError
from envsteward.ports import Severity
from tests.unit.drift._support import hmac_fingerprint

SEEDED = "s3cr3t-Seeded-Value-42"


def _dump(report: DriftReport) -> str:
    return report.model_dump_json() + json.dumps(report.to_dict()) + repr(report) + str(report.items)


def test_secret_ref_objects_are_presence_checked_and_never_leak() -> None:
    ref = SecretRef.parse("vault://secret/app/db#password")
    desired = {"db": {"password": ref, "host": "db"}}
    # present, no fingerprints: nothing to report
    assert compare(desired, {"db": {"password": SEEDED, "host": "db"}}).items == ()
    # missing: removed, at least high, shows the reference (a location, not a value)
    report = compare(desired, {"db": {"host": "db"}})
    (item,) = report.items
    assert (item.path, item.kind, item.severity) == ("db.password", DriftKind.REMOVED, Severity.HIGH)
    assert item.desired == "secret+vault://secret/app/db#password"
    assert item.secret
    assert not item.healable
    # value differs by fingerprint
    report = compare(
        desired,
        {"db": {"password": SEEDED, "host": "db"}},
        secret_fingerprints={"db.password": hmac_fingerprint("the-right-one")},
        fingerprint=hmac_fingerprint,
    )
    (item,) = report.items
    assert item.kind == DriftKind.CHANGED
    assert item.live == hmac_fingerprint(SEEDED)
    dumped = _dump(report)
    assert SEEDED not in dumped
    assert hashlib.sha256(SEEDED.encode()).hexdigest() not in dumped
    # same value by fingerprint: no drift
    same = compare(
        desired,
        {"db": {"password": SEEDED, "host": "db"}},
        secret_fingerprints={"db.password": hmac_fingerprint(SEEDED)},
        fingerprint=hmac_fingerprint,
    )
    assert same.items == ()


def test_secret_under_a_removed_subtree_is_redacted_and_floored() -> None:
    desired = {
        "svc": {"env": {"DB_PASSWORD": SEEDED, "MODE": "x"}, "token_ref": SecretRef.parse("env://TOKEN")}
    }
    rules = DriftRules.model_validate({"severity": [{"path": "**", "severity": "low"}]})
    (item,) = compare(desired, {}, rules).items
    assert item.severity == Severity.HIGH  # a secret reference lies inside
    assert item.desired == {
        "env": {"DB_PASSWORD": "<redacted>", "MODE": "x"},
        "token_ref": "secret+env://TOKEN",
    }
    assert SEEDED not in _dump(compare(desired, {}, rules))


def test_item_fingerprint_is_stable_and_depends_on_environment() -> None:
    a = compare({"x": 1}, {"x": 2}, environment="staging").items[0]
    b = compare({"x": 1}, {"x": 2}, environment="staging").items[0]
    c = compare({"x": 1}, {"x": 2}, environment="production").items[0]
    d = compare({"x": 1}, {"x": 3}, environment="staging").items[0]
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_item_fingerprint_of_a_secret_is_not_a_plain_hash_of_it() -> None:
    report = compare({"password": SEEDED}, {"password": SEEDED + "x"})
    item = report.items[0]
    assert item.fingerprint not in {
        hashlib.sha256(SEEDED.encode()).hexdigest(),
        hashlib.sha256((SEEDED + "x").encode()).hexdigest(),
    }
    assert SEEDED not in _dump(report)


def test_report_helpers() -> None:
    rules = DriftRules.model_validate(
        {"severity": [{"path": "a", "severity": "critical"}, {"path": "b", "severity": "low"}]}
    )
    report = compare({"a": 1, "b": 1}, {"a": 2, "b": 2}, rules)
    assert report.max_severity == Severity.CRITICAL
    assert report.has_drift_at_or_above(Severity.HIGH)
    assert report.has_drift_at_or_above("critical")
    assert report.has_drift_at_or_above("no-such-severity")  # unknown counts as high: fail safe
    low_only = compare({"b": 1}, {"b": 2}, rules)
    assert not low_only.has_drift_at_or_above("medium")
    assert low_only.has_drift_at_or_above(Severity.LOW)
    empty = compare({"a": 1}, {"a": 1})
    assert empty.max_severity is None
    assert not empty.has_drift_at_or_above("low")
    assert not empty.has_drift
    assert empty.to_dict()["summary"]["total"] == 0


def test_report_and_items_are_frozen() -> None:
    report = compare({"a": 1}, {"a": 2})
    with pytest.raises(ValidationError):
        report.items[0].severity = Severity.LOW  # type: ignore[misc]
    with pytest.raises(ValidationError):
        report.environment = "x"  # type: ignore[misc]


def test_unknown_severity_in_a_rule_is_a_catalog_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        DriftRules.model_validate({"severity": [{"path": "a", "severity": "urgent"}]})
    assert caught.value.errors()[0]["loc"] == ("severity", 0, "severity")


def test_malformed_glob_is_a_catalog_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        DriftRules.model_validate({"ignore": [{"path": "a..b", "reason": "r"}]})
    assert caught.value.errors()[0]["loc"] == ("ignore", 0, "path")
    # rules built without validation are still checked when compiled
    unchecked = DriftRules.model_construct(ignore=[IgnoreRule.model_construct(path="a[", reason="r")])
    with pytest.raises(ConfigurationError, match=r"ignore\[0\]\.path"):
        compare({}, {"a": 1}, unchecked)


def test_today_defaults_to_the_real_date() -> None:
    rules = DriftRules.model_validate({"ignore": [{"path": "a", "reason": "r", "expires": "2000-01-01"}]})
    report = compare({"a": 1}, {"a": 2}, rules)
    assert report.items[0].ignored_by == "a"
    assert report.expired_ignores[0].expires == date(2000, 1, 1)


def test_parity_with_secret_ref_objects_and_environment_specific() -> None:
    left = {
        "db": {"password": SecretRef.parse("vault://secret/stg/db#password")},
        "hosts": ["a"],
        "region": 1,
    }
    right = {"db": {"password": SecretRef.parse("vault://secret/prd/db#password")}, "hosts": ["b", "c"]}
    report = parity("staging", left, "production", right, environment_specific=["hosts"])
    assert [(i.path, i.kind.value) for i in report.items] == [("region", "removed")]
    reused = parity(
        "staging",
        left,
        "production",
        right,
        secret_fingerprints_left={"db.password": hmac_fingerprint(SEEDED)},
        secret_fingerprints_right={"db.password": hmac_fingerprint(SEEDED)},
    )
    assert reused.max_severity == Severity.CRITICAL
    assert SEEDED not in _dump(reused)


def test_compare_does_not_mutate_inputs() -> None:
    desired = {"a": [1, {"b": 2}], "password": SEEDED}
    live = {"a": [1, {"b": 3}], "c": 1}
    before = json.dumps([desired, live])
    compare(desired, live)
    assert json.dumps([desired, live]) == before


def test_secret_paths_argument_marks_exact_leaves_as_secret_references() -> None:
    desired = {"legacy": {"uri": "vault://kv/legacy", "block": {"a": 1}}}
    # a scalar at an exact secret path: presence only, however different the live value is
    assert (
        compare(desired, {"legacy": {"uri": SEEDED, "block": {"a": 1}}}, secret_paths=["legacy.uri"]).items
        == ()
    )
    # a mapping at an exact secret path is compared normally, but redacted and at least high
    report = compare(desired, {"legacy": {"uri": SEEDED, "block": {"a": 2}}}, secret_paths=["legacy.block"])
    paths = {item.path: item for item in report.items}
    assert set(paths) == {"legacy.uri", "legacy.block.a"}
    assert paths["legacy.block.a"].desired == "<redacted>"
    assert paths["legacy.block.a"].severity == Severity.HIGH
    assert paths["legacy.uri"].kind == DriftKind.CHANGED  # not declared secret in this call
