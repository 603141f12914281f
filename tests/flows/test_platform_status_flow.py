"""The platform-status flow under Prefect: the fixed-key artifact and both charts are published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envsteward.services import Services, set_services
from envsteward.settings import Settings
from envsteward.status.records import record_drift
from tests.unit.test_status import EVIL, write_catalog

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = Services(
        Settings(catalog=write_catalog(tmp_path / "catalog", "production"), home=tmp_path / "home")
    )
    set_services(svc)
    yield svc
    set_services(None)


def latest(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found, f"no artifact {key}"
    return str(found[0].data)


def test_refresh_publishes_the_view_and_charts(services: Services) -> None:
    from datetime import UTC, datetime

    from envsteward.flows.platform_status import platform_status

    record_drift(services.state_store(), "production", datetime.now(UTC), [(EVIL, "critical")], None)
    result = platform_status()
    assert result["red"] == ["production"]
    markdown = latest("platform-status")
    assert "production" in markdown
    assert "🔴" in markdown
    assert "<script>" not in markdown
    assert "data:image/svg+xml;base64," in latest("platform-status-drift-chart")
    assert "data:image/svg+xml;base64," in latest("platform-status-uptime-chart")
