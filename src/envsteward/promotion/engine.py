"""Applying a promotion plan: write, verify, and roll back to the snapshot on any failure.

* :func:`apply_plan` writes every change through its target ConfigSource (each write retried on transient
  errors). It is idempotent: a key that already holds the planned value is reported ``no-op`` and not
  written, so a retried or repeated apply writes nothing twice.
* :func:`verify_plan` re-reads the touched sources and checks every change landed, type-exactly.
* :func:`rollback` puts the snapshot back; :func:`verify_rollback` re-reads and checks each touched source
  is exactly as it was before the first write.

Messages name paths and sources, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from envsteward.drift import compare
from envsteward.errors import EnvstewardError, PermanentError
from envsteward.promotion.model import ApplyReport, PromotionPlan, WriteOutcome, WriteStatus
from envsteward.promotion.snapshot import SourceSnapshot, TargetSnapshot, plain
from envsteward.scan.live import Deadline, call_with_retries, describe_failure
from envsteward.tree import is_missing, value_at

if TYPE_CHECKING:
    from envsteward.ports import ConfigSource

WRITE_RETRIES = 3
WRITE_BACKOFF_SECONDS = 0.5


class ApplyError(PermanentError):
    """A write failed (after its retries); ``report`` says which changes were written before it."""

    def __init__(self, message: str, report: ApplyReport) -> None:
        super().__init__(message, system="promotion", operation="apply")
        self.report = report


class VerificationError(PermanentError):
    """The target does not hold what it should (after an apply, or after a rollback)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message, system="promotion", operation="verify")
        self.problems = problems


def same_value(left: Any, right: Any) -> bool:
    """Type-exact equality (``1`` is not ``1.0``, ``true`` is not ``1``), as the drift engine sees it."""
    return not compare(left, right).items


def apply_plan(
    plan: PromotionPlan,
    sources: Mapping[str, ConfigSource],
    *,
    retries: int = WRITE_RETRIES,
    backoff_seconds: float = WRITE_BACKOFF_SECONDS,
    sleep: Callable[[float], None] | None = None,
    deadline: Deadline | None = None,
) -> ApplyReport:
    """Write every change of ``plan`` through ``sources`` (target sources by name), in plan order.

    Each source is read once first; a change whose key already holds the value is a no-op. A write that
    fails with a transient error is retried ``retries`` times with backoff. No write is made once
    ``deadline`` has passed (the task's timeout cannot stop the thread). Calls the sources' systems.

    Raises ApplyError (with the report so far) at the first write that still fails.
    """
    outcomes: list[WriteOutcome] = []
    current: dict[str, Any] = {}
    extra: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    extra["deadline"] = deadline = deadline or Deadline.never()
    for index, change in enumerate(plan.changes):
        source = sources[change.target_source]
        try:
            if change.target_source not in current:
                current[change.target_source] = plain(
                    call_with_retries(source.read, retries=retries, backoff_seconds=backoff_seconds, **extra)
                )
            now = value_at(current[change.target_source], change.key_path)
            if not is_missing(now) and same_value(change.after, now):
                outcomes.append(WriteOutcome(path=change.path, status=WriteStatus.NO_OP))
                continue

            def write(
                source: ConfigSource = source,
                keys: tuple[str, ...] = change.key_path,
                value: Any = change.after,
                path: str = change.path,
            ) -> None:
                deadline.check(f"writing {path}")
                source.write(keys, value)

            call_with_retries(write, retries=retries, backoff_seconds=backoff_seconds, **extra)
            outcomes.append(WriteOutcome(path=change.path, status=WriteStatus.WRITTEN))
        except Exception as exc:  # noqa: BLE001 - reported with a safe message (describe_failure)
            reason = describe_failure(exc)
            outcomes.append(WriteOutcome(path=change.path, status=WriteStatus.FAILED, error=reason))
            outcomes.extend(
                WriteOutcome(path=rest.path, status=WriteStatus.NOT_ATTEMPTED)
                for rest in plan.changes[index + 1 :]
            )
            raise ApplyError(
                f"writing {change.path} to {plan.target} source {change.target_source!r} failed: {reason}",
                ApplyReport(outcomes=tuple(outcomes)),
            ) from (exc if isinstance(exc, EnvstewardError) else None)
    return ApplyReport(outcomes=tuple(outcomes))


def verify_plan(plan: PromotionPlan, sources: Mapping[str, ConfigSource]) -> list[str]:
    """Re-read every touched source; one line per change that did not land (empty: all did). Calls the
    sources' systems; a failed read is a problem too."""
    problems: list[str] = []
    trees: dict[str, Any] = {}
    for change in plan.changes:
        if change.target_source not in trees:
            try:
                trees[change.target_source] = plain(sources[change.target_source].read())
            except Exception as exc:  # noqa: BLE001 - reported with a safe message (describe_failure)
                trees[change.target_source] = None
                problems.append(f"cannot re-read {change.target_source!r}: {describe_failure(exc)}")
        tree = trees[change.target_source]
        if tree is None:
            continue
        now = value_at(tree, change.key_path)
        if is_missing(now):
            problems.append(f"{change.path}: missing after the write")
        elif not same_value(change.after, now):
            problems.append(f"{change.path}: holds another value than the one written")
    return problems


def rollback(
    snapshot: TargetSnapshot, sources: Mapping[str, ConfigSource], *, deadline: Deadline | None = None
) -> list[str]:
    """Restore every snapshotted source (all are attempted); one line per source that failed (empty: all
    restored). No source is restored once ``deadline`` has passed (it is reported as a problem). Calls the
    sources' systems."""
    problems: list[str] = []
    deadline = deadline or Deadline.never()
    for name, item in snapshot.sources.items():

        def restore(item: SourceSnapshot = item, name: str = name) -> None:
            deadline.check(f"restoring {name!r}")
            item.restorer.restore(sources[name])

        try:
            call_with_retries(restore, deadline=deadline)
        except Exception as exc:  # noqa: BLE001 - reported with a safe message (describe_failure)
            problems.append(f"restoring {name!r} failed: {describe_failure(exc)}")
    return problems


def verify_rollback(snapshot: TargetSnapshot, sources: Mapping[str, ConfigSource]) -> list[str]:
    """Re-read every snapshotted source and compare it with the snapshot; one line per differing path
    (paths only, never values). Calls the sources' systems."""
    problems: list[str] = []
    for name, item in snapshot.sources.items():
        try:
            now = plain(sources[name].read())
        except Exception as exc:  # noqa: BLE001 - reported with a safe message (describe_failure)
            problems.append(f"cannot re-read {name!r}: {describe_failure(exc)}")
            continue
        for difference in compare(item.before, now).items:
            problems.append(
                f"{name}: {difference.path or '(root)'} is {difference.kind.value} after the rollback"
            )
    return problems
