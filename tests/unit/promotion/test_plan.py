"""plan_promotion: what the target receives, what it never receives, and why. Pure (no servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsteward.catalog import Catalog, load_catalog
from envsteward.catalog.refs import SecretRef
from envsteward.promotion import describe_staleness, plan_promotion
from envsteward.promotion.plan import PromotionRefusedError, derive_reference
from tests.unit.promotion._catalog import live_tree, write_catalog

SECRET = "s3cret-value-never-shown-1f2e"


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return load_catalog(write_catalog(tmp_path / "catalog"))


def dev(**services: Any) -> Any:
    api = {"image": "shop/api:1.1.0", "instances": 1, "log_level": "info", "timeout_seconds": 45, **services}
    return live_tree(
        {
            "database": {
                "host": "db.dev",
                "port": 5432,
                "pool_size": 20,
                "password": SECRET,
                "api_key": SECRET,
            }
        },
        {"api": api, "worker": {"image": "shop/worker:2"}},
        {"new_checkout": True, "countries": ["DE", "FR", "NL"]},
    )


def staging(**services: Any) -> Any:
    api = {"image": "shop/api:1.0.0", "instances": 2, "log_level": "info", "timeout_seconds": 30, **services}
    return live_tree(
        {"database": {"host": "db.stg", "port": 5432, "pool_size": 10, "password": "x", "api_key": "y"}},
        {"api": api, "legacy": "keep"},
        {"new_checkout": False, "countries": ["DE", "FR"]},
    )


def plan(catalog: Catalog, source: Any = None, target: Any = None, **kwargs: Any) -> Any:
    kwargs.setdefault("secret_exists", lambda ref: True)
    return plan_promotion(catalog, "development", "staging", source or dev(), target or staging(), **kwargs)


def test_changes_skip_environment_specific_keys_and_never_delete(catalog: Catalog) -> None:
    result = plan(catalog)
    assert [c.path for c in result.changes] == [
        "app.database.pool_size",
        "feature_flags.countries",
        "feature_flags.new_checkout",
        "services.api.image",
        "services.api.timeout_seconds",
        "services.worker.image",
    ]
    by_path = {c.path: c for c in result.changes}
    assert by_path["services.worker.image"].kind == "create"
    assert by_path["services.worker.image"].key_path == ("worker", "image")
    assert by_path["services.api.image"].before == "shop/api:1.0.0"
    assert by_path["feature_flags.countries"].after == ["DE", "FR", "NL"]
    skipped = {s.path: s.reason for s in result.skipped}
    assert "environment-specific (services.*.instances)" in skipped["services.api.instances"]
    assert "environment-specific" in skipped["app.database.host"]
    assert "never delete" in skipped["services.legacy"]
    assert not result.blocked


def test_secrets_are_promoted_by_reference_only(catalog: Catalog) -> None:
    result = plan(catalog)
    assert all("api_key" not in c.path and "password" not in c.path for c in result.changes)
    (check,) = result.secret_checks
    assert check.path == "app.database.api_key"
    assert check.reference == "vault://secret/shop/staging/database#api_key"
    assert check.exists
    assert SECRET not in result.model_dump_json()


def test_a_missing_target_secret_blocks_the_plan(catalog: Catalog) -> None:
    asked: list[SecretRef] = []
    result = plan(catalog, secret_exists=lambda ref: asked.append(ref) or False)
    assert asked == [SecretRef("vault", "secret/shop/staging/database", "api_key")]
    assert result.blocked
    assert "does not exist in staging's secret store" in result.blockers[0]


def test_select_limits_the_changes_to_matching_keys_and_their_subtrees(catalog: Catalog) -> None:
    result = plan(catalog, select=["services.*.image", "feature_flags"])
    assert [c.path for c in result.changes] == [
        "feature_flags.countries",
        "feature_flags.new_checkout",
        "services.api.image",
        "services.worker.image",
    ]
    assert any("not selected" in s.reason for s in result.skipped)


def test_policy_violation_reports_rule_path_and_origin(catalog: Catalog) -> None:
    source = staging(log_level="debug")
    target = live_tree(
        {"database": {"host": "db.prd", "port": 5432, "pool_size": 10, "password": "p", "api_key": "k"}},
        {"api": {"image": "shop/api:1.0.0", "instances": 4, "log_level": "info", "timeout_seconds": 30}},
        {"new_checkout": False, "countries": ["DE", "FR"]},
    )
    result = plan_promotion(catalog, "staging", "production", source, target, secret_exists=lambda ref: True)
    (violation,) = result.violations
    assert (violation.rule_id, violation.path) == ("no-debug-logs", "services.api.log_level")
    assert violation.origin == "promoted from staging live (into ssm-services)"
    assert result.blocked
    assert result.approvals_needed == 2


def _production(**api: Any) -> Any:
    return live_tree(
        {"database": {"host": "db.prd", "port": 5432, "pool_size": 10, "password": "p", "api_key": "k"}},
        {
            "api": {"image": "shop/api:1.0.0", "instances": 4, "log_level": "info", "timeout_seconds": 30},
            "worker": {"image": "shop/worker:1", "log_level": "debug"},  # production's own drift
            **api,
        },
        {"new_checkout": False, "countries": ["DE", "FR"]},
    )


def test_a_violation_the_promotion_does_not_touch_is_a_warning_with_its_drift(catalog: Catalog) -> None:
    source = staging(image="shop/api:1.1.0")
    result = plan_promotion(
        catalog, "staging", "production", source, _production(), secret_exists=lambda ref: True
    )
    assert not result.blocked, result.blockers
    assert "services.api.image" in [c.path for c in result.changes]
    (warning,) = result.warnings
    assert "no-debug-logs" in warning
    assert "services.worker.log_level" in warning
    assert "not touched by this promotion" in warning
    assert "drift: production's live value differs from its catalog" in warning
    (violation,) = result.violations
    assert (violation.path, violation.blocking) == ("services.worker.log_level", False)
    assert violation.drift is not None
    assert violation.drift.startswith("drift:")
    assert result.summary()["warnings"] == [warning]


def test_a_violation_the_promotion_leaves_in_a_key_it_writes_blocks(catalog: Catalog) -> None:
    # production's worker logs at debug; the promotion writes that key (trace) and leaves it violating
    source = staging(image="shop/api:1.1.0")
    source.data["services"]["worker"] = {"image": "shop/worker:1", "log_level": "trace"}
    result = plan_promotion(
        catalog, "staging", "production", source, _production(), secret_exists=lambda ref: True
    )
    assert result.blocked
    assert any("services.worker.log_level" in text for text in result.blockers)
    assert not result.warnings
    assert all(v.blocking for v in result.violations)


def test_only_the_next_environment_is_allowed(catalog: Catalog) -> None:
    with pytest.raises(PromotionRefusedError, match=r"promotes only to 'staging'.*development -> staging"):
        plan_promotion(catalog, "development", "production", dev(), staging(), secret_exists=lambda ref: True)
    with pytest.raises(PromotionRefusedError, match="last environment"):
        plan_promotion(catalog, "production", "staging", dev(), staging(), secret_exists=lambda ref: True)
    with pytest.raises(PromotionRefusedError, match="--select glob"):
        plan(catalog, select=["services.[bad"])


def test_the_hash_covers_target_state_and_changes(catalog: Catalog) -> None:
    first = plan(catalog)
    assert first.plan_hash == plan(catalog).plan_hash
    target_changed = plan(catalog, target=staging(image="shop/api:hotfix"))
    assert target_changed.plan_hash != first.plan_hash
    assert describe_staleness(first, target_changed) == [
        "services.api.image: the target's current value changed since approval"
    ]
    source_changed = plan(catalog, source=dev(image="shop/api:1.2.0"))
    assert "services.api.image: the source's value changed since approval" in describe_staleness(
        first, source_changed
    )


def test_an_unreadable_source_blocks(catalog: Catalog) -> None:
    from envsteward.scan.model import SourceState

    target = staging()
    states = (
        SourceState(
            name="vault-app", kind="file", mount_at="app", writable=True, ok=False, error="vault: sealed"
        ),
        *target.sources[1:],
    )
    result = plan(catalog, target=type(target)(data=target.data, sources=states))
    assert any("cannot read staging source 'vault-app'" in text for text in result.blockers)


def test_derived_references_rename_the_environment_segment() -> None:
    ref = SecretRef("vault", "secret/app/development/db", "password")
    assert derive_reference(ref, "development", "staging") == SecretRef(
        "vault", "secret/app/staging/db", "password"
    )
    assert derive_reference(SecretRef("env", "TOKEN"), "development", "staging") is None
