"""One environment's checks run together (the flow's grouped mode): the watchdog, the state's name and
message, the outcome turned back into per-check results, and the ``health`` catalog setting."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from envsteward.catalog import CatalogError, load_catalog
from envsteward.health import checks
from envsteward.health.checks import CheckContext
from envsteward.health.group import (
    MESSAGE_MAX,
    GroupProbeError,
    group_finding,
    results_from_group_outcome,
    run_checks_watched,
)
from envsteward.health.result import CheckResult, CheckStatus
from envsteward.health.runner import PlannedCheck, by_environment
from envsteward.health.specs import HTTPCheck, RedisCheck

DATA = Path(__file__).resolve().parents[2] / "data" / "catalogs"
PASSWORD = "pw-not-in-any-message-5c1b"


def http(name: str, timeout: float = 5.0) -> HTTPCheck:
    return HTTPCheck(kind="http", name=name, url=f"http://svc/{name}", timeout_seconds=timeout)


def result(name: str, status: CheckStatus, detail: str = "", probe_failed: bool = False) -> CheckResult:
    return CheckResult(
        environment="staging",
        check=name,
        kind="http",
        status=status,
        detail=detail,
        probe_failed=probe_failed,
    )


def context() -> CheckContext:
    return CheckContext(environment="staging", resolve_secret=lambda ref: SecretStr(PASSWORD))


class ScriptedProbes:
    """An ``http`` probe whose behaviour depends on the check's name: ``hang*`` blocks until released
    (ignoring its timeout, like a probe stuck in a call without one), ``boom*`` raises, ``slow*`` is
    degraded, anything else is up. Counts how many (of those that do not hang) run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hung_returned = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0

    def __call__(self, spec: HTTPCheck, ctx: CheckContext) -> tuple[CheckStatus, str, float]:
        if spec.name.startswith("hang"):  # abandoned by the watchdog: not counted as running
            self.release.wait(60)
            self.hung_returned.set()
            return CheckStatus.UP, "late", 1.0
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if spec.name.startswith("boom"):
                raise TypeError(f"a bug, and the password {ctx.resolve_secret(None).get_secret_value()}")  # type: ignore[arg-type]
            if spec.name.startswith("busy"):
                time.sleep(0.02)  # long enough for others to start next to it
                return CheckStatus.UP, "HTTP 200", 20.0
            if spec.name.startswith("slow"):
                return CheckStatus.DEGRADED, "latency 1200 ms > 1000 ms", 1200.0
            return CheckStatus.UP, "HTTP 200", 2.0
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedProbes]:
    scripted = ScriptedProbes()
    monkeypatch.setitem(checks._PROBES, "http", scripted)
    yield scripted
    scripted.release.set()  # let abandoned threads end


# -- the watchdog -------------------------------------------------------------------------------------------


def test_a_hung_probe_is_down_and_holds_neither_the_others_nor_the_caller(probes: ScriptedProbes) -> None:
    specs = [http("api"), http("hang", timeout=0.2), http("slow"), http("web")]
    results = run_checks_watched(specs, context(), grace_seconds=0.1)
    assert not probes.hung_returned.is_set(), "returned only after the hung probe did"
    assert [(r.check, r.status.value, r.detail) for r in results] == [
        ("api", "up", "HTTP 200"),
        ("hang", "down", "timed out"),
        ("slow", "degraded", "latency 1200 ms > 1000 ms"),
        ("web", "up", "HTTP 200"),
    ]
    assert results[1].transient
    assert not results[1].probe_failed


def test_hung_probes_give_up_their_slots(probes: ScriptedProbes) -> None:
    """More hung probes than slots: each abandoned probe's slot goes to the next check."""
    specs = [http(f"hang-{n}", timeout=0.1) for n in range(3)] + [http(f"ok-{n}") for n in range(3)]
    results = run_checks_watched(specs, context(), max_parallel=2, grace_seconds=0.05)
    assert [r.status.value for r in results] == ["down"] * 3 + ["up"] * 3
    assert not probes.hung_returned.is_set()


def test_at_most_max_parallel_probes_at_once(probes: ScriptedProbes) -> None:
    results = run_checks_watched([http(f"c{n}") for n in range(20)], context(), max_parallel=3)
    assert [r.check for r in results] == [f"c{n}" for n in range(20)]
    assert 1 <= probes.most_at_once <= 3


def test_calls_share_the_process_slots_and_get_them_back(probes: ScriptedProbes) -> None:
    """Two environments at once, 2 slots between them: never more than 2 probes; hung ones give theirs up."""
    slots = threading.BoundedSemaphore(2)
    outcomes: dict[str, list[CheckResult]] = {}

    def environment(name: str) -> None:
        specs = [http(f"hang-{name}", timeout=0.1)] + [http(f"busy-{name}-{n}") for n in range(8)]
        outcomes[name] = run_checks_watched(specs, context(), max_parallel=5, grace_seconds=0.05, slots=slots)

    workers = [threading.Thread(target=environment, args=(name,)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [r.status.value for r in outcomes["a"]] == ["down"] + ["up"] * 8
    assert [r.status.value for r in outcomes["b"]] == ["down"] + ["up"] * 8
    assert 1 <= probes.most_at_once <= 2
    for _ in range(2):  # every slot was given back (a BoundedSemaphore refuses a release too many)
        assert slots.acquire(blocking=False)


def test_a_probe_that_raises_is_a_failed_probe_without_its_text(probes: ScriptedProbes) -> None:
    [crashed, fine] = run_checks_watched([http("boom"), http("ok")], context())
    assert (crashed.status, crashed.detail, crashed.probe_failed) == (
        CheckStatus.DOWN,
        "check failed (TypeError)",
        True,
    )
    assert fine.ok
    assert PASSWORD not in crashed.model_dump_json()


def test_no_checks_and_a_bad_bound() -> None:
    assert run_checks_watched([], context()) == []
    with pytest.raises(ValueError, match="max_parallel"):
        run_checks_watched([http("api")], context(), max_parallel=0)


# -- the state's name and message ---------------------------------------------------------------------------


def test_all_up_is_no_finding() -> None:
    assert group_finding([result("api", CheckStatus.UP), result("web", CheckStatus.UP)]) is None
    assert group_finding([]) is None


def test_down_lists_exactly_the_failing_checks_down_first() -> None:
    finding = group_finding(
        [
            result("api", CheckStatus.UP),
            result("web", CheckStatus.DEGRADED, "latency 1200 ms > 1000 ms"),
            result("db", CheckStatus.DOWN, "connection refused"),
            result("cache", CheckStatus.DOWN, "timed out"),
        ]
    )
    assert finding == (
        "Down",
        '2 of 4 down: db "connection refused", cache "timed out"; '
        '1 of 4 degraded: web "latency 1200 ms > 1000 ms"',
    )


def test_degraded_only() -> None:
    assert group_finding([result("web", CheckStatus.DEGRADED, "standby")]) == (
        "Degraded",
        '1 of 1 degraded: web "standby"',
    )


def test_details_are_escaped() -> None:
    finding = group_finding(
        [result("api", CheckStatus.DOWN, 'HTTP 404 "not" \\ found'), result("db", CheckStatus.DOWN)]
    )
    assert finding is not None
    assert finding[1] == '2 of 2 down: api "HTTP 404 \\"not\\" \\\\ found", db "down"'


def test_a_long_list_is_cut_at_a_whole_entry_with_a_count_of_the_rest() -> None:
    many = [result(f"check-{n:03d}", CheckStatus.DOWN, "x" * 150) for n in range(40)]
    name, message = group_finding(many)  # type: ignore[misc]
    assert name == "Down"
    assert len(message) <= MESSAGE_MAX
    assert message.startswith('40 of 40 down: check-000 "xxx')
    listed = message.count("check-")
    assert listed >= 3
    assert message.endswith(f", … and {40 - listed} more"), message
    many_degraded = [result(f"slow-{n:03d}", CheckStatus.DEGRADED, "y" * 150) for n in range(40)]
    assert len(group_finding(many + many_degraded)[1]) <= MESSAGE_MAX  # type: ignore[index]


def test_group_probe_error_names_the_probes_that_could_not_run_and_carries_every_result() -> None:
    results = [
        result("api", CheckStatus.UP),
        result("broken", CheckStatus.DOWN, "check failed (TypeError)", probe_failed=True),
        result("db", CheckStatus.DOWN, "connection refused"),
    ]
    error = GroupProbeError("staging", results)
    assert error.results == results
    assert 'health: staging: 1 of 3 could not run: broken "check failed (TypeError)"' in str(error)
    assert str(error).endswith('; 1 of 3 down: db "connection refused"')
    assert not error.transient


# -- back to one result per check ---------------------------------------------------------------------------


def test_outcomes_become_one_result_per_check() -> None:
    specs = [http("api"), http("db")]
    returned = [result("api", CheckStatus.UP), result("db", CheckStatus.DOWN, "refused")]
    assert results_from_group_outcome("staging", specs, returned) == returned
    assert results_from_group_outcome("staging", specs, GroupProbeError("staging", returned)) == returned

    timed_out = results_from_group_outcome("staging", specs, TimeoutError())
    assert [(r.check, r.status.value, r.detail) for r in timed_out] == [
        ("api", "down", "timed out"),
        ("db", "down", "timed out"),
    ]
    crashed = results_from_group_outcome("staging", specs, RuntimeError("the text may hold anything"))
    assert {r.detail for r in crashed} == {"check failed (RuntimeError)"}
    assert all(r.probe_failed for r in crashed)
    wrong = results_from_group_outcome("staging", specs, returned[:1])  # not one per check: not trusted
    assert [r.status.value for r in wrong] == ["down", "down"]


def test_by_environment_keeps_plan_order() -> None:
    cache = RedisCheck(kind="redis", name="cache", url="redis://x:6379/0")
    planned = [
        PlannedCheck("dev", http("api")),
        PlannedCheck("prod", http("api")),
        PlannedCheck("dev", cache),
    ]
    groups = by_environment(planned)
    assert list(groups) == ["dev", "prod"]
    assert [s.name for s in groups["dev"]] == ["api", "cache"]


# -- the catalog setting ------------------------------------------------------------------------------------


def catalog_with(tmp_path: Path, health: str | None) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(DATA / "minimal", root)
    if health is not None:
        with (root / "catalog.yaml").open("a", encoding="utf-8") as file:
            file.write(health)
    return root


def test_the_setting_defaults_to_100_and_is_read(tmp_path: Path) -> None:
    assert load_catalog(catalog_with(tmp_path, None)).health.per_check_tasks_up_to == 100
    shutil.rmtree(tmp_path / "catalog")
    loaded = load_catalog(catalog_with(tmp_path, "health:\n  per_check_tasks_up_to: 0\n"))
    assert loaded.health.per_check_tasks_up_to == 0


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-1", "greater than or equal to 0"),
        ("100001", "less than or equal to 100000"),
        ("many", "integer"),
        ("true", "integer"),
        ("2.5", "integer"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(tmp_path: Path, value: str, why: str) -> None:
    root = catalog_with(tmp_path, f"health:\n  per_check_tasks_up_to: {value}\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith("catalog/catalog.yaml:11: health.per_check_tasks_up_to: "), problem
    assert why in problem, problem


def test_an_unknown_health_field_is_rejected(tmp_path: Path) -> None:
    root = catalog_with(tmp_path, "health:\n  per_check_task_up_to: 5\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    [problem] = [str(p) for p in caught.value.problems]
    assert "health.per_check_task_up_to: unknown field" in problem, problem
    assert "per_check_tasks_up_to" in problem
