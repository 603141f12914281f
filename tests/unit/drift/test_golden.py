"""Golden cases for the drift engine: every ``cases/*.json`` is one input and its expected report.

A case holds ``desired``/``live`` (or ``mode: "parity"`` with ``left``/``right``), optional ``rules`` (a
DriftRules document) and ``options``, and ``expected``: the items in order (each listed field must match;
unlisted fields are not checked), optionally ``summary``, ``ignored``, ``expired_ignores``,
``max_severity``, ``environment``, and ``absent``: strings (seeded secrets) that must appear nowhere in the
serialised report, nor any plain hash of them. ``{"$hmac": "text"}`` stands for the test fingerprint.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from envsteward.drift import DriftReport, DriftRules, compare, parity
from tests.unit.drift._support import CASES, hmac_fingerprint, plain_hashes, resolve

CASE_FILES = sorted(CASES.glob("*.json"))


def _run(case: dict[str, Any]) -> DriftReport:
    rules = DriftRules.model_validate(case["rules"]) if "rules" in case else None
    options = resolve(case.get("options", {}))
    fingerprint = hmac_fingerprint if options.pop("fingerprint", False) else None
    if "today" in options:
        options["today"] = date.fromisoformat(options["today"])
    if case.get("mode") == "parity":
        return parity(
            case["left_name"],
            case["left"],
            case["right_name"],
            case["right"],
            environment_specific=case.get("environment_specific", ()),
            secret_fingerprints_left=resolve(case.get("secret_fingerprints_left")),
            secret_fingerprints_right=resolve(case.get("secret_fingerprints_right")),
            rules=rules,
            fingerprint=fingerprint,
        )
    return compare(case["desired"], case["live"], rules, fingerprint=fingerprint, **options)


def test_there_are_golden_cases() -> None:
    assert len(CASE_FILES) >= 15


@pytest.mark.parametrize("case_file", CASE_FILES, ids=lambda p: p.stem)
def test_golden_case(case_file: Path) -> None:
    case = json.loads(case_file.read_text())
    expected = resolve(case["expected"])
    report = _run(case)
    data = report.to_dict()

    got_items = data["items"]
    want_items = expected["items"]
    assert [i["path"] for i in got_items] == [i["path"] for i in want_items], json.dumps(got_items, indent=1)
    for got, want in zip(got_items, want_items, strict=True):
        for field, value in want.items():
            actual = got[field]
            where = f"{case_file.stem}: item {got['path']!r} field {field!r}"
            assert actual == value, f"{where}: expected {value!r}, got {actual!r}"
            assert type(actual) is type(value), f"{where}: expected {value!r}, got {actual!r}"
    for key in ("summary", "ignored", "expired_ignores", "max_severity", "environment"):
        if key in expected:
            assert data[key] == expected[key], f"{case_file.stem}: {key}: {data[key]!r}"

    dumped = report.model_dump_json() + json.dumps(data) + repr(report)
    for secret in case["expected"].get("absent", []):
        assert secret not in dumped, f"{case_file.stem}: seeded secret {secret!r} leaked into the report"
        for digest in plain_hashes(secret):
            assert digest not in dumped, f"{case_file.stem}: a plain hash of {secret!r} is in the report"

    # Same input, same report: ids are stable for alert de-duplication.
    assert _run(case).to_dict() == data
    assert len({item["fingerprint"] for item in got_items}) == len(got_items)
