"""Alerts built from confirmed changes, and results recovered from failed task outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from envsteward.errors import AuthenticationError, ConfigurationError, TransientError
from envsteward.health.alerts import audit_details, dedup_key, notification_for
from envsteward.health.checks import result_from_error, result_from_outcome
from envsteward.health.result import (
    DETAIL_MAX,
    CheckProbeError,
    CheckResult,
    CheckStatus,
    short_detail,
)
from envsteward.health.specs import HTTPCheck
from envsteward.health.tracker import StatusChange
from envsteward.ports import AlertEvent, Severity

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
SPEC = HTTPCheck(kind="http", name="api", url="http://127.0.0.1:1/")


def change(to: CheckStatus, frm: CheckStatus | None, detail: str = "connection refused") -> StatusChange:
    result = CheckResult(
        environment="production",
        check="api",
        kind="http",
        status=to,
        latency_ms=5.0,
        detail=detail,
        checked_at=NOW,
    )
    return StatusChange(
        environment="production",
        check="api",
        kind="http",
        from_status=frm,
        to_status=to,
        count=3,
        result=result,
    )


def test_outage_notification_triggers() -> None:
    note = notification_for(change(CheckStatus.DOWN, CheckStatus.UP), link="http://ui/run")
    assert note.title == "🔴 production/api is DOWN"
    assert note.severity is Severity.HIGH
    assert note.event is AlertEvent.TRIGGER
    assert note.environment == "production"
    assert note.link == "http://ui/run"
    assert note.dedup_key == dedup_key("production", "api") == "envsteward/health/production/api"
    assert note.fields["status"] == "up → down"
    assert note.fields["detail"] == "connection refused"
    assert "after 3 consecutive result(s)" in note.text


def test_recovery_resolves_with_the_outage_severity() -> None:
    note = notification_for(change(CheckStatus.UP, CheckStatus.DOWN, "HTTP 200"))
    assert note.event is AlertEvent.RESOLVE
    # a channel that only takes HIGH alerts got the outage, so it must get the recovery too
    assert note.severity is Severity.HIGH
    assert note.title == "✅ production/api recovered"


def test_degraded_is_medium_and_first_confirmation_says_unknown() -> None:
    note = notification_for(change(CheckStatus.DEGRADED, None, "latency 1500 ms > 1000 ms"))
    assert note.severity is Severity.MEDIUM
    assert note.event is AlertEvent.TRIGGER
    assert note.fields["status"] == "unknown → degraded"


def test_audit_details_are_plain_json() -> None:
    details = audit_details(change(CheckStatus.DOWN, CheckStatus.UP))
    assert details == {
        "environment": "production",
        "check": "api",
        "kind": "http",
        "from": "up",
        "to": "down",
        "count": 3,
        "detail": "connection refused",
        "checked_at": "2025-01-01T12:00:00+00:00",
    }


def test_outcome_of_a_returned_result_is_itself() -> None:
    result = result_from_error("production", SPEC, TransientError("x"))
    assert result_from_outcome("production", SPEC, result) is result


def test_outcome_of_a_failed_probe_is_the_carried_result() -> None:
    carried = result_from_error("production", SPEC, KeyError("bug"))
    assert result_from_outcome("production", SPEC, CheckProbeError(carried)) is carried


def test_outcome_of_a_crash_is_down_without_vendor_text() -> None:
    result = result_from_outcome("production", SPEC, RuntimeError("password=hunter2 in the vendor message"))
    assert (result.status, result.detail, result.transient, result.probe_failed) == (
        CheckStatus.DOWN,
        "check failed (RuntimeError)",
        False,
        True,
    )
    assert "hunter2" not in result.model_dump_json()


def test_outcome_of_a_task_timeout_is_down() -> None:
    result = result_from_outcome("production", SPEC, TimeoutError())
    assert (result.status, result.detail, result.probe_failed) == (CheckStatus.DOWN, "timed out", False)


def test_envsteward_errors_keep_their_message_and_transience() -> None:
    result = result_from_error(
        "production", SPEC, AuthenticationError("wrong password", system="redis", operation="ping")
    )
    assert (result.detail, result.transient) == ("wrong password", False)
    result = result_from_error(
        "production", SPEC, TransientError("refused", system="postgres", operation="query x")
    )
    assert (result.detail, result.transient) == ("query x: refused", True)


@pytest.mark.parametrize("text", ["a\nb   c", "x" * 500])
def test_details_are_one_short_line(text: str) -> None:
    detail = short_detail(text)
    assert "\n" not in detail
    assert len(detail) <= DETAIL_MAX


def test_check_probe_error_is_permanent_and_names_the_check() -> None:
    carried = result_from_error("production", SPEC, ConfigurationError("no Vault address: set addr"))
    error = CheckProbeError(carried)
    assert not error.transient
    assert str(error) == "health: production/api: no Vault address: set addr"


def result(status: CheckStatus, *, probe_failed: bool = False) -> CheckResult:
    return CheckResult(
        environment="production", check="api", kind="http", status=status, probe_failed=probe_failed
    )


@pytest.mark.parametrize(
    ("status", "probe_failed", "finding"),
    [
        (CheckStatus.UP, False, None),
        (CheckStatus.DEGRADED, False, "Degraded"),
        (CheckStatus.DOWN, False, "Down"),
        (CheckStatus.DOWN, True, None),  # the probe could not run: no finding, a failure
    ],
)
def test_finding_names_the_state_of_a_check_that_ran(
    status: CheckStatus, probe_failed: bool, finding: str | None
) -> None:
    assert result(status, probe_failed=probe_failed).finding == finding


def test_a_down_service_is_a_finding_and_a_bad_definition_or_a_bug_is_a_failed_probe() -> None:
    refused = result_from_error("production", SPEC, TransientError("connection refused"))
    wrong_password = result_from_error("production", SPEC, AuthenticationError("wrong password"))
    assert (refused.finding, wrong_password.finding) == ("Down", "Down")
    assert (refused.probe_failed, wrong_password.probe_failed) == (False, False)
    bad_definition = result_from_error("production", SPEC, ConfigurationError("no AWS clients configured"))
    bug = result_from_error("production", SPEC, AttributeError("'NoneType' object has no attribute 'x'"))
    assert (bad_definition.probe_failed, bug.probe_failed) == (True, True)
    assert (bad_definition.status, bug.status) == (CheckStatus.DOWN, CheckStatus.DOWN)


def test_a_check_without_what_its_probe_needs_is_a_failed_probe() -> None:
    from envsteward.health.checks import CheckContext, run_check
    from envsteward.health.specs import S3Check

    def no_secrets(ref: object) -> Any:
        raise AssertionError("an S3 check resolves no secret")

    context = CheckContext(environment="production", resolve_secret=no_secrets, aws_clients=None)
    checked = run_check(S3Check(kind="s3", name="bucket", bucket="backups"), context)
    assert (checked.status, checked.detail, checked.probe_failed) == (
        CheckStatus.DOWN,
        "no AWS clients configured for S3 checks",
        True,
    )
