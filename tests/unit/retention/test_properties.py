"""Randomised properties of retention (seeded ``random``, no hypothesis): whatever the input, the decision
is a partition with reasons, ordered newest first, and the safety floor holds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from envsteward.retention import (
    Backup,
    Duration,
    RetentionDecision,
    RetentionPolicy,
    apply_retention,
    newest_first,
    restic_forget,
)

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
OFFSETS = [
    timedelta(0),
    timedelta(hours=-5),
    timedelta(hours=2),
    timedelta(hours=5, minutes=30),
    timedelta(hours=-9),
]
COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
WITHIN_FIELDS = (
    "within",
    "within_hourly",
    "within_daily",
    "within_weekly",
    "within_monthly",
    "within_yearly",
)


def _random_backups(rng: random.Random) -> list[Backup]:
    backups: list[Backup] = []
    moment = NOW + timedelta(hours=rng.choice([-1, 0, 0, 0, 30]))  # sometimes future-dated backups
    for index in range(rng.randint(0, 40)):
        if rng.random() > 0.15:  # otherwise: the same instant as the previous backup
            moment -= timedelta(minutes=rng.choice([7, 45, 60, 90, 600, 1440, 1500, 10080, 44000, 200000]))
        offset = timezone(rng.choice(OFFSETS))
        backups.append(
            Backup(id=f"b{index}", time=moment.astimezone(offset), verified_by_drill=rng.random() < 0.1)
        )
    rng.shuffle(backups)
    return backups


def _random_policy(rng: random.Random) -> RetentionPolicy:
    fields: dict[str, object] = {}
    for name in COUNT_FIELDS:
        if rng.random() < 0.35:
            fields[name] = rng.choice([-1, 1, 2, 3, 5, 10])
    for name in WITHIN_FIELDS:
        if rng.random() < 0.15:
            fields[name] = Duration(
                years=rng.choice([0, 0, 1]),
                months=rng.choice([0, 0, 1, 2]),
                days=rng.choice([0, 1, 3, 7]),
                hours=rng.choice([0, 0, 6]),
            )
    return RetentionPolicy.model_validate(fields)


def _check_partition_and_order(backups: list[Backup], decision: RetentionDecision) -> None:
    kept = [backup.id for backup in decision.keep]
    removed = [backup.id for backup in decision.remove]
    assert sorted(kept + removed) == sorted(backup.id for backup in backups)
    assert not set(kept) & set(removed)
    assert set(decision.reasons) == set(kept)
    assert all(decision.reasons[backup_id] for backup_id in kept)
    order = [backup.id for backup in newest_first(backups)]
    assert kept == [backup_id for backup_id in order if backup_id in set(kept)]
    assert removed == [backup_id for backup_id in order if backup_id in set(removed)]


@pytest.mark.parametrize("seed", range(400))
def test_random_inputs_give_a_consistent_decision(seed: int) -> None:
    rng = random.Random(seed)
    backups = _random_backups(rng)
    policy = _random_policy(rng)

    restic = restic_forget(backups, policy, now=NOW)
    floored = apply_retention(backups, policy, now=NOW)
    _check_partition_and_order(backups, restic)
    _check_partition_and_order(backups, floored)

    ordered = newest_first(backups)
    if not ordered:
        assert floored.keep == []
        assert floored.remove == []
        return
    kept = {backup.id for backup in floored.keep}
    assert ordered[0].id in kept
    verified = [backup for backup in ordered if backup.verified_by_drill]
    if verified:
        assert verified[0].id in kept
    if policy.is_empty:
        assert floored.remove == []
        return
    restic_kept = {backup.id for backup in restic.keep}
    assert ordered[0].id in restic_kept  # any non-empty policy keeps the newest by itself
    rescued = kept - restic_kept
    assert rescued <= {ordered[0].id, *(backup.id for backup in verified[:1])}
    for backup_id in restic_kept:
        assert floored.reasons[backup_id][: len(restic.reasons[backup_id])] == restic.reasons[backup_id]
    counts = [getattr(policy, name) for name in COUNT_FIELDS]
    if all(getattr(policy, name) is None for name in WITHIN_FIELDS) and -1 not in counts:
        assert len(restic.keep) <= sum(counts)  # every keep uses up at least one slot


@pytest.mark.parametrize("seed", range(150))
def test_a_larger_count_never_removes_more(seed: int) -> None:
    rng = random.Random(10_000 + seed)
    backups = _random_backups(rng)
    policy = _random_policy(rng)
    name = rng.choice(COUNT_FIELDS)
    current = getattr(policy, name)
    if current == -1:
        return
    larger = policy.model_copy(update={name: current + rng.randint(1, 3)})
    before = {backup.id for backup in restic_forget(backups, policy, now=NOW).keep}
    after = {backup.id for backup in restic_forget(backups, larger, now=NOW).keep}
    assert before <= after


@pytest.mark.parametrize("seed", range(100))
def test_input_order_only_matters_for_equal_times(seed: int) -> None:
    rng = random.Random(20_000 + seed)
    base = NOW - timedelta(days=400)
    backups = [
        Backup(id=f"b{index}", time=base + timedelta(minutes=rng.randrange(0, 600_000)))
        for index in range(rng.randint(1, 30))
    ]
    if len({backup.time for backup in backups}) != len(backups):
        return
    policy = _random_policy(rng)
    shuffled = backups[:]
    rng.shuffle(shuffled)
    assert apply_retention(backups, policy, now=NOW) == apply_retention(shuffled, policy, now=NOW)
