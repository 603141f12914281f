"""The drill's pure decisions: backup choice, RPO, targets and verdict, naming, request parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from envsteward.drill import (
    BackupCandidate,
    DrillStatus,
    DrillTargets,
    check_targets,
    choose_backup,
    measure_rpo,
    parse_region,
    parse_request,
    scratch_name,
    verdict,
)
from envsteward.drill.decisions import new_drill_id
from envsteward.errors import ConfigurationError

T0 = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
CANDIDATES = [
    BackupCandidate("prod/db/20240530T020000Z-aaaa", T0 - timedelta(days=2)),
    BackupCandidate("prod/db/20240601T020000Z-cccc", T0),
    BackupCandidate("prod/db/20240531T020000Z-bbbb", T0 - timedelta(days=1)),
]


def test_latest_is_the_newest_consistent_point() -> None:
    choice = choose_backup(CANDIDATES, "latest", where="the dr store")
    assert choice.backup_id == "prod/db/20240601T020000Z-cccc"
    assert choice.consistent_at == T0
    assert choice.reason == "newest backup in the dr store"


def test_latest_of_nothing_chooses_nothing_and_says_where() -> None:
    choice = choose_backup([], "latest", where="the dr store")
    assert choice.backup_id is None
    assert "no complete backup" in choice.reason
    assert "the dr store" in choice.reason


def test_an_id_is_chosen_only_when_the_store_has_it() -> None:
    assert choose_backup(CANDIDATES, CANDIDATES[0].backup_id).backup_id == CANDIDATES[0].backup_id
    missing = choose_backup(CANDIDATES, "prod/db/20240101T000000Z-dead", where="the dr store")
    assert missing.backup_id is None
    assert missing.reason == "backup prod/db/20240101T000000Z-dead has no complete copy in the dr store"


def test_random_picks_only_kept_backups_reproducibly() -> None:
    kept = {CANDIDATES[0].backup_id, CANDIDATES[2].backup_id}
    picks = {
        choose_backup(CANDIDATES, "random", kept_ids=kept, rng=random.Random(s)).backup_id for s in range(40)
    }
    assert picks == kept
    first = choose_backup(CANDIDATES, "random", kept_ids=kept, rng=random.Random(7))
    again = choose_backup(CANDIDATES, "random", kept_ids=kept, rng=random.Random(7))
    assert first == again
    assert "2 backup(s) retention keeps" in first.reason


def test_random_without_a_retention_decision_chooses_nothing() -> None:
    assert choose_backup(CANDIDATES, "random").backup_id is None
    assert choose_backup(CANDIDATES, "random", kept_ids=set()).backup_id is None
    assert choose_backup(CANDIDATES, "random", kept_ids={"prod/db/other"}).backup_id is None


def test_rpo_is_the_newest_backups_age_and_the_restore_point_age_is_reported() -> None:
    start = T0 + timedelta(minutes=3)
    measure = measure_rpo(start, chosen=T0 - timedelta(days=1), newest_point=T0)
    assert measure.rpo_seconds == 180
    assert measure.restore_point_age_seconds == 86400 + 180
    assert measure.note == ""


def test_a_backup_from_the_future_counts_as_age_zero_with_a_note() -> None:
    measure = measure_rpo(T0, chosen=T0 + timedelta(seconds=5), newest_point=T0 + timedelta(seconds=5))
    assert measure.rpo_seconds == 0
    assert "clock skew" in measure.note


@pytest.mark.parametrize(
    ("rto", "rpo", "failed", "status", "reason"),
    [
        (600.0, 120.0, False, DrillStatus.PASSED, "within both targets"),
        (900.0, 300.0, False, DrillStatus.PASSED, "within both targets"),  # equal meets
        (901.0, 120.0, False, DrillStatus.TARGET_MISSED, "RTO 15.0 min > target 15.0 min"),
        (600.0, 600.0, False, DrillStatus.TARGET_MISSED, "RPO 10.0 min > target 5.0 min"),
        (600.0, 120.0, True, DrillStatus.FAILED, "a drill step failed"),
        (None, 120.0, False, DrillStatus.FAILED, "RTO could not be measured"),
        (None, None, False, DrillStatus.FAILED, "RTO and RPO could not be measured"),
    ],
)
def test_verdict(
    rto: float | None, rpo: float | None, failed: bool, status: DrillStatus, reason: str
) -> None:
    checks = check_targets(rto, rpo, DrillTargets())
    got, why = verdict(failed, checks)
    assert got is status
    assert reason in why


def test_targets_default_to_15_and_5_minutes() -> None:
    rto, rpo = check_targets(1.0, 1.0, DrillTargets())
    assert (rto.target_seconds, rpo.target_seconds) == (900.0, 300.0)


def test_scratch_names_are_safe_identifiers() -> None:
    assert scratch_name("production", "3fa2c1d0") == "envsteward_drill_production_3fa2c1d0"
    assert scratch_name("Stage-2.eu", "AB12") == "envsteward_drill_stage_2_eu_ab12"
    long = scratch_name("x" * 80, "deadbeef")
    assert len(long) <= 63
    assert long.endswith("_deadbeef")
    assert long.startswith("envsteward_drill_xxx")


def test_drill_ids_carry_the_start_time_and_token() -> None:
    assert new_drill_id(T0, "0a1b2c3d") == ("drill-20240601T020000Z-0a1b2c3d", "0a1b2c3d")
    generated, short = new_drill_id(T0)
    assert generated.endswith(short)
    assert len(short) == 8


def test_requests_and_regions_are_validated() -> None:
    assert parse_request("LATEST") == "latest"
    assert parse_request("random") == "random"
    assert parse_request("prod/db/20240601T020000Z-cccc") == "prod/db/20240601T020000Z-cccc"
    with pytest.raises(ConfigurationError, match="give a backup id"):
        parse_request("../etc/passwd")
    assert parse_region("dr", dr_region="eu-central-1", primary_region="eu-west-1") == "dr"
    assert parse_region("eu-central-1", dr_region="eu-central-1", primary_region="eu-west-1") == "dr"
    assert parse_region("eu-west-1", dr_region="eu-central-1", primary_region="eu-west-1") == "primary"
    with pytest.raises(ConfigurationError, match="expected one of dr, primary, eu-central-1"):
        parse_region("us-east-1", dr_region="eu-central-1", primary_region="eu-west-1")
