"""Loading catalogs: the example, the public API, and each kind of mistake with its file and line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from envsteward.catalog import (
    ApprovalPolicy,
    Catalog,
    CatalogError,
    CatalogProblem,
    EnvironmentSpec,
    FileSource,
    PagerDutyChannel,
    RenderedConfig,
    SecretRef,
    load_catalog,
)
from envsteward.drift.rules import DriftRules
from envsteward.health.specs import PostgresCheck
from envsteward.ports import Severity

from .conftest import DATA, EXAMPLE, CatalogFactory


def problems_of(root: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    return [str(problem) for problem in caught.value.problems]


# -- the example catalog ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Catalog:
    return load_catalog(EXAMPLE)


def test_example_catalog_loads_with_its_promotion_path(example: Catalog) -> None:
    assert example.root == EXAMPLE
    assert example.platform == "shopfront"
    assert example.promotion_path == ("development", "staging", "production")
    assert list(example.environments) == ["development", "staging", "production"]
    assert [spec.tier for spec in example.environments.values()] == ["development", "staging", "production"]
    assert example.next_environment("development") == "staging"
    assert example.next_environment("staging") == "production"
    assert example.next_environment("production") is None
    assert example.previous_environment("staging") == "development"
    assert example.previous_environment("development") is None


def test_example_environment_specs(example: Catalog) -> None:
    production = example.environment("production")
    assert isinstance(production, EnvironmentSpec)
    assert [source.kind for source in production.sources] == [
        "vault_kv",
        "ssm",
        "ssm",
        "file",
        "secrets_manager",
    ]
    assert {check.kind for check in production.health_checks} == {"http", "postgres", "redis", "vault", "s3"}
    assert production.notify == ["ops-slack", "ops-email", "oncall"]
    assert production.approval == ApprovalPolicy(
        approvers=["alice", "bob", "carol"], approvals_needed=2, timeout_hours=24
    )
    assert all(target.encrypted and target.replica_region == "eu-central-1" for target in production.backups)
    flags = production.sources[3]
    assert isinstance(flags, FileSource)
    assert flags.path == EXAMPLE / "live" / "production" / "feature-flags.json"
    assert flags.path.is_file()
    postgres = next(check for check in production.health_checks if isinstance(check, PostgresCheck))
    assert postgres.dsn == "postgresql://postgres@127.0.0.1:5432/postgres"


def test_approvals_default_by_tier(example: Catalog) -> None:
    assert example.environment("development").approval.approvals_needed == 0
    assert example.environment("staging").approval.approvals_needed == 1
    assert example.environment("staging").approval.timeout_hours == 8


def test_example_channels_and_drift_rules(example: Catalog) -> None:
    assert list(example.channels) == ["ops-slack", "ops-email", "oncall"]
    oncall = example.channels["oncall"]
    assert isinstance(oncall, PagerDutyChannel)
    assert oncall.routing_key == SecretRef("env", "PAGERDUTY_ROUTING_KEY")
    assert oncall.min_severity is Severity.CRITICAL
    assert isinstance(example.drift_rules, DriftRules)
    assert example.drift_rules.heal.enabled
    assert example.drift_rules.ignore[0].environments == ["production"]


def test_example_render_keeps_origins_and_secret_references(example: Catalog) -> None:
    rendered = example.render("production")
    assert isinstance(rendered, RenderedConfig)
    assert rendered.environment == "production"
    assert rendered.get("services.api.instances") == 4
    assert rendered.origin("services.api.instances") == "config/production.yaml:4"
    assert rendered.origin("services.worker.instances") == "config/base.yaml:21"
    assert rendered.get("feature_flags.allowed_countries") == ["DE", "FR", "NL"]
    assert rendered.origin("feature_flags.allowed_countries[1]") == "config/base.yaml:71"
    password = rendered.get("app.database.password")
    assert password == SecretRef("vault", "secret/envsteward/production/database", "password")
    assert rendered.secret_refs["integrations.payments.api_key"] == SecretRef(
        "aws-sm", "production/envsteward/payments", "api_key"
    )
    assert rendered.origin("app.database.password") == "config/production.yaml:12"


def test_render_returns_a_fresh_copy(example: Catalog) -> None:
    first = example.render("staging")
    first.data["services"]["api"]["instances"] = 99
    assert example.render("staging").get("services.api.instances") == 2


def test_development_overlay_deletes_autoscaling_with_null(example: Catalog) -> None:
    development = example.render("development")
    assert "autoscaling" not in development.get("services.api")
    assert not any(path.startswith("services.api.autoscaling") for path in development.origins)
    assert development.get("services.api.debug") is True


def test_unknown_environment_names_the_known_ones(example: Catalog) -> None:
    with pytest.raises(
        CatalogError, match=r"unknown environment 'qa'; known: development, staging, production"
    ):
        example.environment("qa")
    for call in (example.render, example.tier_rules, example.next_environment):
        with pytest.raises(CatalogError):
            call("qa")


def test_feature_flag_files_match_the_desired_flags(example: Catalog) -> None:
    import json

    for name in example.promotion_path:
        desired = example.render(name).get("feature_flags")
        flags = example.environment(name).sources[3]
        assert isinstance(flags, FileSource)
        assert json.loads(flags.path.read_text(encoding="utf-8")) == desired


def test_load_accepts_the_catalog_yaml_file_and_a_string() -> None:
    assert load_catalog(str(EXAMPLE / "catalog.yaml")).root == EXAMPLE


# -- secret references are never values -------------------------------------------------------------------


def test_secret_references_are_never_resolved_or_rendered_as_values(
    make_catalog: CatalogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_value = "s3cr3t-VALUE-must-not-leak"
    monkeypatch.setenv("DEV_DB_PASSWORD", secret_value)
    catalog = load_catalog(make_catalog())
    rendered = catalog.render("dev")
    assert rendered.get("db.password") == SecretRef("env", "DEV_DB_PASSWORD")
    assert rendered.to_plain()["db"]["password"] == "secret+env://DEV_DB_PASSWORD"
    assert rendered.is_secret("db.password")
    everything = repr(rendered) + repr(rendered.to_plain()) + repr(catalog.environments) + repr(catalog)
    assert secret_value not in everything


def test_duplicate_key_messages_do_not_repeat_values(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{"config/dev.yaml": "db:\n  password: hunter2-literal\n  password: other-literal\n"}
    )
    problems = problems_of(root)
    assert problems == [
        "catalog/config/dev.yaml:3: duplicate key 'password': each key may appear only once in a mapping"
    ]
    assert "hunter2" not in str(problems)


def test_dsn_with_a_password_is_rejected_without_echoing_it(make_catalog: CatalogFactory) -> None:
    text = (DATA / "minimal" / "environments.yaml").read_text(encoding="utf-8")
    root = make_catalog(
        **{"environments.yaml": text.replace("postgres@127.0.0.1", "postgres:hunter2@127.0.0.1")}
    )
    problems = problems_of(root)
    assert problems == [
        "catalog/environments.yaml:16: environments[1].backups[0].dsn: the dsn may not contain a password: "
        "put a secret reference in 'password'"
    ]
    assert "hunter2" not in str(problems)


# -- five mistakes at once --------------------------------------------------------------------------------


def test_five_mistakes_get_five_messages_with_file_and_line() -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(DATA / "bad" / "five_mistakes")
    where = [(problem.file, problem.line, problem.field) for problem in caught.value.problems]
    assert where == [
        ("five_mistakes/catalog.yaml", 7, "channels[0].colour"),
        ("five_mistakes/config/prod.yaml", 2, "db.password"),
        ("five_mistakes/environments.yaml", 6, "environments[0].notify[1]"),
        ("five_mistakes/environments.yaml", 8, "environments[1].tier"),
        ("five_mistakes/policies.yaml", 5, None),
    ]
    messages = [problem.message for problem in caught.value.problems]
    assert messages[0].startswith("unknown field 'colour'; allowed fields: name, min_severity, kind, channel")
    assert messages[1].startswith("malformed secret reference 'vault://secret/mini/prod/db'")
    assert messages[2] == "unknown channel 'opps'; known: ops, pager"
    assert messages[3] == "Input should be 'development', 'staging' or 'production'"
    assert messages[4] == "duplicate key 'default_severity': each key may appear only once in a mapping"


def test_problem_text_format() -> None:
    problem = CatalogProblem("catalog/environments.yaml", 12, "environments[1].tier", "Input should be x")
    assert str(problem) == "catalog/environments.yaml:12: environments[1].tier: Input should be x"
    assert str(CatalogProblem("catalog/catalog.yaml", None, None, "file not found")) == (
        "catalog/catalog.yaml: file not found"
    )


# -- each kind of mistake ---------------------------------------------------------------------------------


def test_yaml_syntax_error(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/prod.yaml": "db:\n  password: [unclosed\nservices: {}\n"})
    assert problems_of(root) == [
        "catalog/config/prod.yaml:3: YAML syntax error: while parsing a flow sequence: "
        "expected ',' or ']', but got ':'"
    ]


def test_tabs_are_a_syntax_error_with_a_line(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/prod.yaml": "db:\n\tpassword: x\n"})
    [problem] = problems_of(root)
    assert problem.startswith("catalog/config/prod.yaml:2: YAML syntax error")


def test_unknown_field_lists_the_allowed_ones(make_catalog: CatalogFactory) -> None:
    text = (DATA / "minimal" / "environments.yaml").read_text(encoding="utf-8")
    root = make_catalog(
        **{"environments.yaml": text.replace("    notify: [ops]\n", "    notfiy: [ops]\n", 1)}
    )
    [problem] = problems_of(root)
    assert problem.startswith("catalog/environments.yaml:6: environments[0].notfiy: unknown field 'notfiy'; ")
    assert "allowed fields: name, tier, description, promotes_to, overlays, sources" in problem


def test_unknown_field_inside_a_discriminated_union(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{
            "environments.yaml": """
            environments:
              - name: dev
                tier: development
                health_checks:
                  - name: api
                    kind: http
                    url: http://127.0.0.1:8080/
                    expect: 200
            """
        }
    )
    [problem] = problems_of(root)
    assert problem.startswith(
        "catalog/environments.yaml:8: environments[0].health_checks[0].expect: unknown field 'expect'; "
        "allowed fields: name, timeout_seconds, consecutive, kind, url, expect_status, max_latency_ms"
    )


def test_missing_required_field_points_at_its_parent(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{
            "environments.yaml": """
            environments:
              - name: dev
                sources:
                  - name: kv
                    kind: vault_kv
            """
        }
    )
    assert problems_of(root) == [
        "catalog/environments.yaml:2: environments[0].tier: missing required field 'tier'",
        "catalog/environments.yaml:4: environments[0].sources[0].path: missing required field 'path'",
    ]


def test_missing_kind_names_the_choices(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{
            "environments.yaml": """
            environments:
              - name: dev
                tier: development
                backups:
                  - name: snap
            """
        }
    )
    assert problems_of(root) == [
        "catalog/environments.yaml:5: environments[0].backups[0].kind: missing required field 'kind' "
        "(one of 'postgres', 'sqlite', 'vault_kv', 'ssm', 'config')"
    ]


def test_non_string_keys_are_rejected(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/prod.yaml": "db:\n  null: x\n  2: y\n"})
    assert problems_of(root) == [
        "catalog/config/prod.yaml:2: db: key None is not a string (NoneType): quote it",
        "catalog/config/prod.yaml:3: db: key 2 is not a string (int): quote it",
    ]


def test_missing_catalog_folder() -> None:
    with pytest.raises(CatalogError, match="catalog folder /nonexistent/catalog does not exist"):
        load_catalog(Path("/nonexistent/catalog"))


def test_an_empty_catalog_yaml(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"catalog.yaml": ""})
    assert problems_of(root) == [
        "catalog/catalog.yaml:1: the file must hold a mapping (key: value) at the top level",
    ]


def test_promotion_cycle_of_two(make_catalog: CatalogFactory) -> None:
    text = (DATA / "minimal" / "environments.yaml").read_text(encoding="utf-8")
    root = make_catalog(
        **{
            "environments.yaml": text.replace(
                "    tier: production\n", "    tier: production\n    promotes_to: dev\n"
            )
        }
    )
    assert problems_of(root) == [
        "catalog/environments.yaml:9: environments[1].promotes_to: the promotion path has a cycle: "
        "dev -> prod -> dev; the last environment on the path must not set promotes_to"
    ]


def test_promotion_to_itself_is_a_cycle(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{"environments.yaml": "environments:\n  - name: dev\n    tier: development\n    promotes_to: dev\n"}
    )
    assert problems_of(root) == [
        "catalog/environments.yaml:4: environments[0].promotes_to: the promotion path has a cycle: "
        "dev -> dev; the last environment on the path must not set promotes_to"
    ]


def test_a_single_environment_is_a_valid_path(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"environments.yaml": "environments:\n  - name: dev\n    tier: development\n"})
    catalog = load_catalog(root)
    assert catalog.promotion_path == ("dev",)
    assert catalog.next_environment("dev") is None


def test_invalid_environment_still_gets_its_references_checked(make_catalog: CatalogFactory) -> None:
    root = make_catalog(
        **{
            "environments.yaml": """
            environments:
              - name: dev
                tier: dev
                notify: [nobody]
                overlays: [config/nothere.yaml]
            """
        }
    )
    assert problems_of(root) == [
        "catalog/environments.yaml:3: environments[0].tier: "
        "Input should be 'development', 'staging' or 'production'",
        "catalog/environments.yaml:4: environments[0].notify[0]: unknown channel 'nobody'; known: ops, pager",
        "catalog/environments.yaml:5: environments[0].overlays[0]: "
        "layer file 'config/nothere.yaml' not found in the catalog folder",
    ]


def test_catalog_error_message_lists_every_problem(make_catalog: CatalogFactory) -> None:
    root = make_catalog(**{"config/prod.yaml": "a: secret+nope\nb: secret+vault://x\n"})
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    text = str(caught.value)
    assert text.startswith("the catalog has 2 problems:\n")
    assert "catalog/config/prod.yaml:1: a: malformed secret reference" in text
    assert "catalog/config/prod.yaml:2: b: malformed secret reference" in text


def test_importing_the_catalog_first_or_the_policy_first_both_work() -> None:
    for first in (
        "envsteward.catalog",
        "envsteward.policy",
        "envsteward.catalog.loader",
        "envsteward.policy.engine",
    ):
        result = subprocess.run(
            [sys.executable, "-c", f"import {first}; import envsteward.catalog, envsteward.policy"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ},
        )
        assert result.returncode == 0, result.stderr
