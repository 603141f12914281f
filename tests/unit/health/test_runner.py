"""Choosing environments and checks from the catalog."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from envsteward.catalog.models import EnvironmentSpec
from envsteward.errors import ConfigurationError
from envsteward.health.runner import notify_channels, plan_checks, select_environments


def catalog() -> Any:
    def env(name: str, checks: list[dict[str, Any]], notify: list[str]) -> EnvironmentSpec:
        return EnvironmentSpec.model_validate(
            {"name": name, "tier": "development", "health_checks": checks, "notify": notify}
        )

    environments = {
        "development": env("development", [{"kind": "http", "name": "api", "url": "http://dev/"}], []),
        "production": env(
            "production",
            [
                {"kind": "http", "name": "api", "url": "http://prod/"},
                {"kind": "redis", "name": "cache", "url": "redis://prod:6379/0"},
            ],
            ["ops-slack", "pager"],
        ),
    }
    return SimpleNamespace(environments=environments)


def test_all_environments_by_default_in_catalog_order() -> None:
    planned = plan_checks(catalog())
    assert [(p.environment, p.spec.name) for p in planned] == [
        ("development", "api"),
        ("production", "api"),
        ("production", "cache"),
    ]
    assert plan_checks(catalog(), []) == planned


def test_selected_environments_once_each() -> None:
    assert select_environments(catalog(), ["production", "production"]) == ["production"]
    assert [p.spec.kind for p in plan_checks(catalog(), ["production"])] == ["http", "redis"]


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"unknown environment\(s\) 'prod': the catalog defines development, production",
    ):
        plan_checks(catalog(), ["prod"])


def test_notify_channels() -> None:
    assert notify_channels(catalog(), "production") == ["ops-slack", "pager"]
    assert notify_channels(catalog(), "development") == []
