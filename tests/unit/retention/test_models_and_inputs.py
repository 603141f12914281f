"""The retention models and the JSON backup list: validation, and errors that say where and what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from envsteward.errors import EnvstewardError, PermanentError
from envsteward.retention import (
    Backup,
    Duration,
    RetentionInputError,
    RetentionPolicy,
    apply_retention,
    backups_from_json,
    parse_rfc3339,
    restic_forget,
)

# --- RFC 3339 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T02:30:00Z", datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
        ("2024-05-01t02:30:00z", datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
        ("2024-05-01 02:30:00+02:00", datetime(2024, 5, 1, 2, 30, tzinfo=timezone(timedelta(hours=2)))),
        ("2024-03-11T23:30:00-05:00", datetime(2024, 3, 11, 23, 30, tzinfo=timezone(timedelta(hours=-5)))),
        ("2024-05-01T02:30:00.5Z", datetime(2024, 5, 1, 2, 30, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T02:30:00.123456789Z", datetime(2024, 5, 1, 2, 30, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T02:30:00-00:00", datetime(2024, 5, 1, 2, 30, tzinfo=UTC)),
    ],
)
def test_rfc3339_parses_and_keeps_the_offset(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()
    assert parsed.hour == expected.hour  # the wall clock is the recorded one, not UTC


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2024-05-01T02:30:00", "UTC offset"),
        ("2024-05-01", "RFC 3339"),
        ("yesterday", "RFC 3339"),
        ("2024-02-30T00:00:00Z", "not a valid date"),
        ("2024-05-01T24:00:00Z", "not a valid date"),
        ("2024-06-30T23:59:60Z", "not a valid date"),
        ("2024-05-01T02:30:00+24:00", "impossible UTC offset"),
        ("2024-05-01T02:30:00+0200", "RFC 3339"),
    ],
)
def test_rfc3339_refuses_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(RetentionInputError, match=fragment) as caught:
        parse_rfc3339(text)
    assert repr(text) in str(caught.value)


# --- the backup list ----------------------------------------------------------------------------------


def test_backups_from_json_reads_every_field() -> None:
    backups = backups_from_json(
        [
            {"id": "a", "time": "2024-03-11T23:30:00-05:00"},
            {"id": "b", "time": "2024-03-12T01:00:00Z", "verified_by_drill": True},
        ]
    )
    assert [backup.id for backup in backups] == ["a", "b"]
    assert backups[0].time.utcoffset() == timedelta(hours=-5)
    assert backups[0].time.day == 11
    assert [backup.verified_by_drill for backup in backups] == [False, True]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"id": "a"}, "expected a JSON list"),
        ("[]", "expected a JSON list"),
        (["a"], "entry 0: expected an object"),
        (
            [{"id": "a", "time": "2024-05-01T00:00:00Z"}, {"time": "2024-05-01T00:00:00Z"}],
            "entry 1: missing 'id'",
        ),
        ([{"id": "a"}], "entry 0: missing 'time'"),
        ([{}], "entry 0: missing 'id' and 'time'"),
        ([{"id": "", "time": "2024-05-01T00:00:00Z"}], "entry 0: 'id' must be a non-empty string"),
        ([{"id": 7, "time": "2024-05-01T00:00:00Z"}], "entry 0: 'id' must be a non-empty string"),
        ([{"id": "a", "time": "2024-05-01"}], "entry 0 (id 'a'): 'time'"),
        ([{"id": "a", "time": 1714521600}], "entry 0 (id 'a'): 'time'"),
        (
            [{"id": "a", "time": "2024-05-01T00:00:00Z"}, {"id": "a", "time": "2024-05-02T00:00:00Z"}],
            "entry 1: duplicate id 'a' (already used by entry 0)",
        ),
        (
            [{"id": "a", "time": "2024-05-01T00:00:00Z", "verified_by_dril": True}],
            "entry 0: unknown key(s) 'verified_by_dril'",
        ),
        (
            [{"id": "a", "time": "2024-05-01T00:00:00Z", "verified_by_drill": "yes"}],
            "'verified_by_drill' must be true or false",
        ),
    ],
)
def test_backups_from_json_names_the_bad_entry(data: Any, fragment: str) -> None:
    with pytest.raises(RetentionInputError) as caught:
        backups_from_json(data, source="backups.json")
    assert str(caught.value).startswith("backups.json: ")
    assert fragment in str(caught.value)


def test_the_input_error_is_a_permanent_envsteward_error_and_a_value_error() -> None:
    error = RetentionInputError("x")
    assert isinstance(error, PermanentError)
    assert isinstance(error, EnvstewardError)
    assert isinstance(error, ValueError)
    assert not error.transient


# --- models -------------------------------------------------------------------------------------------


def test_backup_needs_an_aware_time() -> None:
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        Backup(id="a", time=datetime(2024, 5, 1))


def test_backup_turns_a_zone_into_the_fixed_offset_of_that_instant() -> None:
    summer = Backup(id="a", time=datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")))
    assert summer.time.tzinfo == timezone(timedelta(hours=2))
    assert summer.time.hour == 12


def test_backup_is_frozen_and_strict() -> None:
    backup = Backup(id="a", time=datetime(2024, 5, 1, tzinfo=UTC))
    with pytest.raises(pydantic.ValidationError):
        backup.id = "b"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Backup.model_validate(
            {"id": "a", "time": datetime(2024, 5, 1, tzinfo=UTC), "verified_by_drill": "yes"}
        )
    with pytest.raises(pydantic.ValidationError):
        Backup.model_validate({"id": "a", "time": "2024-05-01T00:00:00Z", "size": 3})


@pytest.mark.parametrize("field", ["last", "hourly", "daily", "weekly", "monthly", "yearly"])
def test_policy_counts_allow_minus_one_but_no_other_negative(field: str) -> None:
    assert getattr(RetentionPolicy.model_validate({field: -1}), field) == -1
    with pytest.raises(pydantic.ValidationError, match=field):
        RetentionPolicy.model_validate({field: -2})
    with pytest.raises(pydantic.ValidationError, match=field):
        RetentionPolicy.model_validate({field: True})
    with pytest.raises(pydantic.ValidationError, match=field):
        RetentionPolicy.model_validate({field: "3"})


def test_policy_durations_parse_serialise_and_zero_means_off() -> None:
    policy = RetentionPolicy.model_validate(
        {"within": "4h3d", "within_daily": "0d", "within_weekly": Duration(days=7)}
    )
    assert policy.within == Duration(days=3, hours=4)
    assert policy.within_daily is None
    assert policy.model_dump()["within"] == "3d4h"
    assert policy.model_dump()["within_weekly"] == "7d"
    assert RetentionPolicy.model_validate(policy.model_dump()) == policy
    with pytest.raises(pydantic.ValidationError, match="unknown unit 'x'"):
        RetentionPolicy.model_validate({"within_yearly": "1x"})
    with pytest.raises(pydantic.ValidationError, match="extra"):
        RetentionPolicy.model_validate({"keep_daily": 7})


@pytest.mark.parametrize(
    ("fields", "empty"),
    [
        ({}, True),
        ({"daily": 0, "within": "0d"}, True),
        ({"daily": 1}, False),
        ({"last": -1}, False),
        ({"within_hourly": "1h"}, False),
    ],
)
def test_policy_is_empty(fields: dict[str, Any], empty: bool) -> None:
    assert RetentionPolicy.model_validate(fields).is_empty is empty


def test_policy_describe() -> None:
    policy = RetentionPolicy(daily=7, weekly=-1, within="1y", within_daily="7d")
    assert (
        policy.describe() == "keep 7 daily, all weekly; daily within 7d; everything within 1y of the newest"
    )
    assert RetentionPolicy().describe() == "empty policy (keeps everything)"


# --- the functions' own input checks ------------------------------------------------------------------


def test_duplicate_ids_are_refused_by_both_functions() -> None:
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    backups = [Backup(id="a", time=moment), Backup(id="a", time=moment - timedelta(days=1))]
    for function in (restic_forget, apply_retention):
        with pytest.raises(RetentionInputError, match="backup 1: duplicate id 'a'"):
            function(backups, RetentionPolicy(daily=1), now=moment)


def test_a_naive_now_is_refused() -> None:
    backups = [Backup(id="a", time=datetime(2024, 5, 1, tzinfo=UTC))]
    with pytest.raises(RetentionInputError, match="UTC offset"):
        apply_retention(backups, RetentionPolicy(within="1d"), now=datetime(2024, 5, 2))


def test_now_defaults_to_the_current_time() -> None:
    future = datetime.now(UTC) + timedelta(days=365)
    backups = [
        Backup(id="future", time=future),
        Backup(id="recent", time=datetime.now(UTC) - timedelta(hours=1)),
        Backup(id="old", time=datetime.now(UTC) - timedelta(days=30)),
    ]
    decision = restic_forget(backups, RetentionPolicy(within="1d"))
    # measured from "recent" (the newest not in the future), not from "future"
    assert [backup.id for backup in decision.keep] == ["future", "recent"]


def test_huge_durations_reach_back_forever() -> None:
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    backups = [Backup(id="a", time=moment), Backup(id="b", time=datetime(1, 1, 2, tzinfo=UTC))]
    decision = restic_forget(backups, RetentionPolicy(within="5000y"), now=moment + timedelta(days=1))
    assert [backup.id for backup in decision.keep] == ["a", "b"]
