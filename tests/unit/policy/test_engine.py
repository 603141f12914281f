"""evaluate_tier_rules: every operator, globs, path comparisons, required paths, facts and redaction."""

from __future__ import annotations

from typing import Any

import pytest

from envsteward.catalog import RenderedConfig, SecretRef, load_catalog
from envsteward.policy import TierRule, Violation, default_tier_rules, evaluate_tier_rules
from envsteward.ports import Severity
from envsteward.tree import format_path, iter_nodes
from tests.unit.catalog.conftest import DATA, EXAMPLE

CONFIG: dict[str, Any] = {
    "services": {
        "api": {
            "instances": 3,
            "debug": False,
            "log_level": "INFO",
            "image": "ghcr.io/x/api:1.2.3",
            "autoscaling": {
                "min": 3,
                "max": 10,
                "cpu_target": 60,
                "scale_down_threshold": 30,
                "scale_up_threshold": 80,
            },
        },
        "worker": {
            "instances": 1,
            "debug": True,
            "log_level": "debug",
            "image": "ghcr.io/x/worker:latest",
            "autoscaling": {
                "min": 5,
                "max": 2,
                "cpu_target": 90,
                "scale_down_threshold": 30,
                "scale_up_threshold": 80,
            },
        },
    },
    "security": {"tls": {"required": 1}, "session": {"timeout_minutes": 30}},
    "hosts": [{"name": "a", "port": 80}, {"name": "b", "port": "eighty"}],
    "db": {"password": SecretRef("vault", "secret/app/db", "password"), "api_token": "literal-token-value"},
}


def rendered(data: dict[str, Any] | None = None, **extra: Any) -> RenderedConfig:
    data = CONFIG if data is None else data
    origins = {
        format_path(path): f"cfg.yaml:{line}" for line, (path, _) in enumerate(iter_nodes(data), start=1)
    }
    refs = {format_path(path): value for path, value in iter_nodes(data) if isinstance(value, SecretRef)}
    return RenderedConfig(environment="prod", data=data, origins=origins, secret_refs=refs, **extra)


def check(config: RenderedConfig | None = None, **fields: Any) -> list[tuple[str, str]]:
    rule = TierRule.model_validate({"id": "r", **fields})
    return [
        (violation.path, violation.message) for violation in evaluate_tier_rules([rule], config or rendered())
    ]


def paths(config: RenderedConfig | None = None, **fields: Any) -> list[str]:
    return [path for path, _ in check(config, **fields)]


# -- operators ---------------------------------------------------------------------------------------------


def test_equals_is_type_aware() -> None:
    assert check(path="services.*.debug", equals=False) == [
        ("services.worker.debug", "must be false, is true")
    ]
    # 1 is not true: YAML booleans only equal booleans
    assert check(path="security.tls.required", equals=True) == [
        ("security.tls.required", "must be true, is 1")
    ]
    assert paths(path="services.*.instances", equals=3.0) == ["services.worker.instances"]
    assert paths(path="services.*.instances", equals="3") == [
        "services.api.instances",
        "services.worker.instances",
    ]


def test_not_equals() -> None:
    assert check(path="services.*.log_level", not_equals="debug") == [
        ("services.worker.log_level", "must not be 'debug'")
    ]


def test_one_of_and_ignore_case() -> None:
    assert paths(path="services.*.log_level", one_of=["info", "warning"]) == [
        "services.api.log_level",
        "services.worker.log_level",
    ]
    assert check(path="services.*.log_level", one_of=["info", "warning"], ignore_case=True) == [
        ("services.worker.log_level", "must be one of ['info', 'warning'], is 'debug'")
    ]


def test_not_one_of() -> None:
    assert check(path="**.log_level", not_one_of=["DEBUG", "TRACE"], ignore_case=True) == [
        ("services.worker.log_level", "must not be one of ['DEBUG', 'TRACE'], is 'debug'")
    ]


def test_min_max_and_range() -> None:
    assert check(path="services.*.instances", min=3) == [
        ("services.worker.instances", "must be at least 3, is 1")
    ]
    assert check(path="services.*.instances", max=2) == [
        ("services.api.instances", "must be at most 2, is 3")
    ]
    assert paths(path="services.*.instances", min=2, max=2) == [
        "services.api.instances",
        "services.worker.instances",
    ]
    assert check(path="hosts[*].port", min=1) == [
        ("hosts[1].port", "must be a number at least 1, is 'eighty'")
    ]
    assert check(path="services.*.debug", max=1) == [
        ("services.api.debug", "must be a number at most 1, is false"),
        ("services.worker.debug", "must be a number at most 1, is true"),
    ]


def test_matches_searches_a_regex() -> None:
    assert check(path="services.*.image", matches=r":\d+\.\d+\.\d+$") == [
        ("services.worker.image", "must match ':\\\\d+\\\\.\\\\d+\\\\.\\\\d+$', is 'ghcr.io/x/worker:latest'")
    ]
    assert check(path="hosts[*].port", matches="8") == [
        ("hosts[0].port", "must be a string matching '8', is 80"),
        ("hosts[1].port", "must match '8', is 'eighty'"),
    ]
    assert paths(path="services.*.log_level", matches="^info$", ignore_case=True) == [
        "services.worker.log_level"
    ]


@pytest.mark.parametrize(
    ("op", "violating"),
    [
        ("<=", ["services.worker.autoscaling.min"]),
        ("<", ["services.worker.autoscaling.min"]),
        (">", ["services.api.autoscaling.min"]),
        (">=", []),
        ("==", ["services.api.autoscaling.min", "services.worker.autoscaling.min"]),
        ("!=", []),
    ],
)
def test_compare_with_a_path_relative_to_the_matched_parent(op: str, violating: list[str]) -> None:
    config = rendered()
    if op == ">=":
        config = rendered({"services": {"a": {"autoscaling": {"min": 5, "max": 5}}}})
    elif op == "!=":
        config = rendered({"services": {"a": {"autoscaling": {"min": 1, "max": 5}}}})
    assert paths(config, path="services.*.autoscaling.min", compare={"op": op, "other": "max"}) == violating


def test_compare_message_names_the_other_value() -> None:
    assert check(
        path="services.*.autoscaling.cpu_target", compare={"op": "<", "other": "scale_up_threshold"}
    ) == [
        (
            "services.worker.autoscaling.cpu_target",
            "must be < scale_up_threshold (services.worker.autoscaling.scale_up_threshold = 80), is 90",
        )
    ]


def test_compare_with_a_missing_or_incomparable_other() -> None:
    config = rendered({"a": {"min": 1, "lo": "x"}})
    assert check(config, path="a.min", compare={"op": "<=", "other": "max"}) == [
        ("a.min", "must be <= max, but a.max is missing")
    ]
    assert check(config, path="a.min", compare={"op": "<", "other": "lo"}) == [
        ("a.min", "must be < lo (a.lo = 'x'), but the two cannot be compared: is 1")
    ]


def test_compare_can_reach_into_a_sibling_subtree() -> None:
    config = rendered({"svc": {"pool": 50, "db": {"max_connections": 40}}})
    assert paths(config, path="svc.pool", compare={"op": "<=", "other": "db.max_connections"}) == ["svc.pool"]


# -- required ---------------------------------------------------------------------------------------------


def test_required_literal_path() -> None:
    assert check(path="security.session.timeout_minutes", required=True) == []
    assert check(path="security.admin.mfa_required", required=True) == [
        (
            "security.admin.mfa_required",
            "is required, but nothing matches 'security.admin' in the configuration",
        )
    ]
    assert check(path="security.tls.min_version", required=True) == [
        ("security.tls.min_version", "is required but missing")
    ]


def test_required_applies_to_every_match_of_the_parent() -> None:
    config = rendered({"services": {"a": {"instances": 3}, "b": {"port": 1}, "c": 5}})
    assert check(config, path="services.*.instances", required=True) == [
        ("services.b.instances", "is required but missing"),
        ("services.c.instances", "is required, but services.c is not a mapping"),
    ]
    assert check(rendered({"other": 1}), path="services.*.instances", required=True) == [
        ("services.*.instances", "is required, but nothing matches 'services.*' in the configuration")
    ]


def test_required_with_double_star_means_at_least_one() -> None:
    assert check(path="**.encryption_at_rest", required=True, equals=True) == [
        ("**.encryption_at_rest", "is required, but nothing in the configuration matches this path")
    ]
    assert check(path="**.debug", required=True) == []


def test_required_combines_with_a_value_condition() -> None:
    config = rendered({"services": {"a": {"instances": 2}, "b": {}}})
    assert check(config, path="services.*.instances", required=True, min=3) == [
        ("services.b.instances", "is required but missing"),
        ("services.a.instances", "must be at least 3, is 2"),
    ]


def test_a_path_matching_nothing_passes_without_required() -> None:
    assert check(path="nothing.here", equals=1) == []
    assert check(path="**.nothing", min=1) == []


# -- secrets ----------------------------------------------------------------------------------------------


def test_secret_reference_values_cannot_be_checked() -> None:
    assert check(path="db.password", not_equals="x") == [
        (
            "db.password",
            "is a secret reference vault://secret/app/db#password; its value cannot be checked by this rule: "
            "set a literal value or override the rule in policies.yaml",
        )
    ]
    assert check(path="db.password", required=True) == []


def test_values_under_secret_keys_and_secret_paths_are_redacted() -> None:
    [(_, message)] = check(path="db.api_token", equals="x")
    assert message == "must be 'x', is <redacted>"
    config = rendered({"cfg": {"motd": "hello-secret-text"}}, secret_paths=("cfg.motd",))
    [(_, message)] = check(config, path="cfg.motd", equals="x")
    assert "hello-secret-text" not in message
    assert "<redacted>" in message


# -- results ----------------------------------------------------------------------------------------------


def test_violations_carry_rule_id_severity_and_origin() -> None:
    rules = [
        TierRule(id="debug", path="**.debug", equals=False, severity=Severity.CRITICAL),
        TierRule(id="size", path="services.*.instances", min=3),
    ]
    violations = evaluate_tier_rules(rules, rendered())
    worker_debug_line = [format_path(p) for p, _ in iter_nodes(CONFIG)].index("services.worker.debug") + 1
    assert violations[0] == Violation(
        "debug",
        "services.worker.debug",
        f"cfg.yaml:{worker_debug_line}",
        "must be false, is true",
        Severity.CRITICAL,
    )
    assert [v.rule_id for v in violations] == ["debug", "size"]
    assert (
        str(violations[0])
        == f"cfg.yaml:{worker_debug_line}: [debug] services.worker.debug: must be false, is true"
    )


def test_missing_paths_get_the_origin_of_their_nearest_parent() -> None:
    [violation] = evaluate_tier_rules(
        [TierRule(id="v", path="security.tls.min_version", required=True)], rendered()
    )
    assert violation.origin == rendered().origin("security.tls")


def test_the_example_catalog_passes_every_tier_rule() -> None:
    catalog = load_catalog(EXAMPLE)
    for name in catalog.promotion_path:
        assert evaluate_tier_rules(catalog.tier_rules(name), catalog.render(name)) == []
    assert catalog.render("development").get("services.api.debug") is True


def test_backups_are_seen_under_the_catalog_namespace() -> None:
    catalog = load_catalog(DATA / "minimal")
    config = catalog.render("prod")
    assert config.facts["backups"]["db"]["replica_region"] == "eu-central-1"
    assert config.origin("_catalog.backups.db.replica_region") == "environments.yaml:17"
    rules = [rule for rule in default_tier_rules()["production"] if rule.id.startswith("backups")]
    assert evaluate_tier_rules(rules, config) == []
    no_replica = RenderedConfig(
        environment="prod",
        data=config.data,
        origins=config.origins,
        secret_refs=config.secret_refs,
        facts={
            "backups": {"db": {**config.facts["backups"]["db"], "replica_region": None, "encrypted": False}}
        },
        fact_origins=config.fact_origins,
    )
    assert [(v.rule_id, v.path, v.origin) for v in evaluate_tier_rules(rules, no_replica)] == [
        ("backups-encrypted", "_catalog.backups.db.encrypted", "environments.yaml:14"),
        ("backups-cross-region", "_catalog.backups.db.replica_region", "environments.yaml:14"),
    ]
    nothing = RenderedConfig(
        environment="prod", data=config.data, origins={}, secret_refs={}, facts={"backups": {}}
    )
    assert [(v.rule_id, v.path) for v in evaluate_tier_rules(rules, nothing)] == [
        ("backups-configured", "_catalog.backups.*")
    ]


def test_planned_configuration_is_evaluated_the_same_way() -> None:
    """The promotion flow evaluates rules on a planned config: same data shape, its own origins."""
    catalog = load_catalog(EXAMPLE)
    current = catalog.render("production")
    planned_data = current.to_plain()
    planned_data["services"]["api"]["debug"] = True
    planned = RenderedConfig(
        environment="production",
        data=planned_data,
        origins={"services.api.debug": "plan:staging"},
        secret_refs={},
        facts=current.facts,
        fact_origins=current.fact_origins,
    )
    violations = evaluate_tier_rules(catalog.tier_rules("production"), planned)
    assert [(v.rule_id, v.path, v.origin) for v in violations] == [
        ("debug-off", "services.api.debug", "plan:staging")
    ]
