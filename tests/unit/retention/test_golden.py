"""Golden cases for retention: every ``cases/*.json`` file is one input and its expected decision.

A case names the function it checks (``restic_forget``: restic's semantics alone; ``apply_retention``: with
the safety floor), the policy (the RetentionPolicy fields, or ``"default"``), ``now``, the backups (in input
order) and the expected ``keep``/``remove`` ids (newest first) and ``reasons``. The expected values were
worked out by hand from restic's ``ApplyPolicy``; each case's description says what it pins down.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from envsteward.retention import (
    DEFAULT_POLICY,
    RetentionInputError,
    RetentionPolicy,
    apply_retention,
    backups_from_json,
    go_add_date,
    parse_duration,
    parse_rfc3339,
    restic_forget,
)

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.json"))
FUNCTIONS = {"restic_forget": restic_forget, "apply_retention": apply_retention}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_the_case_folder_is_not_empty() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_golden_case(path: Path) -> None:
    case = _load(path)
    assert set(case) == {"description", "function", "now", "policy", "backups", "expected"}, path.name
    policy = DEFAULT_POLICY if case["policy"] == "default" else RetentionPolicy.model_validate(case["policy"])
    backups = backups_from_json(case["backups"], source=path.name)

    decision = FUNCTIONS[case["function"]](backups, policy, now=parse_rfc3339(case["now"]))

    got = decision.as_json()
    assert got == case["expected"], f"{path.name}: {case['description']}"
    # as_json is derived from the model: check the model itself agrees.
    assert [backup.id for backup in decision.keep] == case["expected"]["keep"]
    assert decision.reasons == case["expected"]["reasons"]


def test_default_policy_is_the_documented_one() -> None:
    assert RetentionPolicy(daily=7, weekly=4, monthly=6, yearly=2) == DEFAULT_POLICY
    assert not DEFAULT_POLICY.is_empty


DURATIONS = _load(HERE / "durations.json")


@pytest.mark.parametrize("row", DURATIONS["valid"], ids=[row["input"] for row in DURATIONS["valid"]])
def test_duration_parses(row: dict[str, Any]) -> None:
    duration = parse_duration(row["input"])
    expected = {"years": 0, "months": 0, "days": 0, "hours": 0, **row["parts"]}
    assert duration.model_dump() == expected
    assert str(duration) == row["canonical"]


@pytest.mark.parametrize(
    "row", DURATIONS["invalid"], ids=[repr(row["input"]) for row in DURATIONS["invalid"]]
)
def test_duration_is_refused(row: dict[str, Any]) -> None:
    with pytest.raises(RetentionInputError) as caught:
        parse_duration(row["input"])
    message = str(caught.value)
    assert row["error"] in message
    assert "1y2m3d4h" in message  # every error shows what a valid duration looks like


CALENDAR = _load(HERE / "calendar.json")["cases"]


@pytest.mark.parametrize(
    "row", CALENDAR, ids=[f"{r['from']}{r['years']:+}y{r['months']:+}m{r['days']:+}d" for r in CALENDAR]
)
def test_go_add_date_normalises_like_go(row: dict[str, Any]) -> None:
    start = datetime.fromisoformat(row["from"])
    got = go_add_date(start, row["years"], row["months"], row["days"])
    assert got == datetime.fromisoformat(row["expected"])


def test_go_add_date_out_of_range_is_an_overflow() -> None:
    with pytest.raises(OverflowError):
        go_add_date(datetime(1, 3, 1), -1, 0, 0)
