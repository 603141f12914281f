"""The ``audit-checkpoint`` flow under Prefect: signs the head once, refuses a rewritten log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from envsteward.flows.audit_checkpoint import audit_checkpoint

from envsteward.errors import IntegrityError
from envsteward.services import Services, set_services
from envsteward.settings import AuditSettings, Settings
from tests.unit.audit import tampering as t

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    audit = AuditSettings(
        checkpoint_every=1000,
        signing_key_file=tmp_path / "config" / "audit-signing.key",
        trusted_keys_file=tmp_path / "config" / "audit-trusted-keys",
    )
    services = Services(Settings(home=tmp_path / "home", actor="alice", audit=audit))
    set_services(services)
    yield services
    set_services(None)


def test_the_flow_checkpoints_the_head_and_refuses_a_rewritten_log(services: Services) -> None:
    log = services.audit_log()
    for index in range(3):
        log.append("drift.healed", target=f"k{index}")  # record 1 is checkpointed on append
    outcome = audit_checkpoint()
    assert outcome["written"] is True
    assert outcome["checkpoint"]["seq"] == 3
    assert audit_checkpoint()["written"] is False

    path = services.settings.home / "audit" / "audit.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("".join(f"{line}\n" for line in t.rewrite_consistently(lines, 1, "actor", "mallory")))
    with pytest.raises(IntegrityError, match="refusing to sign"):
        audit_checkpoint()
