"""The example catalog (examples/catalog) promotes development -> staging -> production without --select,
with every environment's live sources holding its desired configuration plus the demo's deliberate drift
(``deployments/demo.py``: production's session timeout and a hand-edited flag, staging's worker
concurrency). Production's own drift is shown as a warning, never a blocker of a promotion that does not
touch it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from envsteward.catalog import Catalog, load_catalog
from envsteward.catalog.refs import SecretRef
from envsteward.promotion import plan_promotion
from envsteward.scan.live import LiveTree
from envsteward.scan.model import SourceState
from envsteward.tree import parse_path, set_at, value_at

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "catalog"
DRIFT = [  # as the demo seeds it
    ("staging", "services.worker.concurrency", 16),
    ("production", "security.session.timeout_minutes", 120),
    ("production", "feature_flags.search_v2.rollout_percent", 100),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)


def _secrets_as_values(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _secrets_as_values(value) for key, value in node.items()}
    if isinstance(node, SecretRef):
        return f"value-of-{node.uri()}"
    return node


def live(catalog: Catalog, env: str) -> LiveTree:
    rendered = catalog.render(env)
    data = _secrets_as_values(copy.deepcopy(rendered.data))
    for drift_env, path, value in DRIFT:
        if drift_env == env:
            set_at(data, parse_path(path), value, make_room=True)
    mounts = {spec.mount_at for spec in catalog.environment(env).sources}
    data = {key: value for key, value in data.items() if key in mounts}
    states = tuple(
        SourceState(name=s.name, kind=s.kind, mount_at=s.mount_at, writable=s.writable, ok=True)
        for s in catalog.environment(env).sources
    )
    return LiveTree(data=data, sources=states)


def test_development_promotes_to_staging(catalog: Catalog) -> None:
    plan = plan_promotion(
        catalog,
        "development",
        "staging",
        live(catalog, "development"),
        live(catalog, "staging"),
        secret_exists=lambda ref: True,
    )
    assert not plan.blocked, plan.blockers
    assert plan.changes, "the example should have something to promote"
    paths = [change.path for change in plan.changes]
    assert not any(path.startswith("security.") for path in paths), paths


def test_staging_promotes_to_production_despite_production_drift_elsewhere(catalog: Catalog) -> None:
    staging = live(catalog, "staging")
    value = value_at(staging.data, ("services", "api", "image"))
    assert isinstance(value, str)
    set_at(staging.data, ("services", "api", "image"), value.replace(":", ":9.9.9-", 1), make_room=True)
    plan = plan_promotion(
        catalog, "staging", "production", staging, live(catalog, "production"), secret_exists=lambda ref: True
    )
    assert not plan.blocked, plan.blockers
    assert "services.api.image" in [change.path for change in plan.changes]
    assert any(
        "security.session.timeout_minutes" in text and "drift: production's live value differs" in text
        for text in plan.warnings
    ), plan.warnings
