"""Golden cases for the inventory's pure decisions (cases/references.json: metadata + policy + now ->
state, age, days left and findings), plus orphans, certificate thresholds and environment evaluation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.catalog.models import SecretsPolicy
from envsteward.inventory.classify import (
    ReferenceFacts,
    certificate_finding,
    classify_reference,
    evaluate_environment,
    find_orphans,
    reference_findings,
)
from envsteward.inventory.metadata import SecretMetadata, StoredSecret
from envsteward.inventory.model import CertificateFacts, FindingKind, InventoryStatus, ReferenceUsage
from envsteward.inventory.plaintext import PlaintextHit
from envsteward.ports import Severity

CASES = json.loads((Path(__file__).parent / "cases" / "references.json").read_text(encoding="utf-8"))


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_reference_golden(case: dict[str, Any]) -> None:
    usage = ReferenceUsage(
        environment="production", reference=case["reference"], used_at=("app.x",), origin="config/p.yaml:3"
    )
    policy = SecretsPolicy.model_validate(case["policy"])
    meta = case.get("metadata")
    cert = case.get("certificate")
    facts = ReferenceFacts(
        metadata=None
        if meta is None
        else SecretMetadata(
            exists=meta["exists"],
            version=meta.get("version"),
            changed_at=_time(meta.get("changed_at")),
            detail=meta.get("detail", ""),
        ),
        certificate=None
        if cert is None
        else CertificateFacts(subject=cert["subject"], not_after=_time(cert["not_after"])),
        error=case.get("error"),
    )
    now = _time(case["now"])
    assert now is not None
    status = classify_reference(usage, facts, policy, now)
    expected = case["expected"]
    assert status.state.value == expected["state"]
    assert status.age_days == expected["age_days"]
    assert status.days_left == expected["days_left"]
    assert status.reason, "every status says why"
    found = reference_findings(status, policy, now)
    assert [[f.kind.value, f.severity.value] for f in found] == expected["findings"]
    for finding in found:
        assert finding.reason
        assert finding.origin == "config/p.yaml:3"


def test_each_certificate_threshold_is_a_new_finding() -> None:
    cert = CertificateFacts(subject="CN=x", not_after=datetime(2025, 7, 31, tzinfo=UTC))
    ids = []
    for days_before in (40, 29, 20, 13, 8, 6, 1, -1):
        now = cert.not_after - timedelta(days=days_before)
        found = certificate_finding("production", "vault://s/tls#c", cert, [30, 14, 7], now)
        ids.append(None if found is None else (found.id, found.severity))
    assert ids[0] is None
    severities = [None if entry is None else entry[1] for entry in ids]
    assert severities[1:] == [Severity.LOW] * 2 + [Severity.MEDIUM] * 2 + [Severity.HIGH] * 2 + [
        Severity.CRITICAL
    ]
    assert ids[1] == ids[2]
    assert ids[3] == ids[4]
    assert ids[5] == ids[6]
    assert len({entry[0] for entry in ids if entry}) == 4


def test_orphans_are_stored_names_no_reference_names() -> None:
    stored = {
        ("vault", "secret/app/production"): [
            StoredSecret("secret/app/production/database"),
            StoredSecret("secret/app/production/legacy"),
        ],
        ("aws-sm", "production/app/"): [StoredSecret("production/app/payments")],
    }
    named = {"vault": {"secret/app/production/database"}, "aws-sm": {"production/app/payments"}}
    found = find_orphans("production", stored, named)
    assert [(f.kind, f.subject, f.severity) for f in found] == [
        (FindingKind.ORPHAN, "secret/app/production/legacy", Severity.MEDIUM)
    ]


def test_an_unreadable_prefix_reports_no_orphans_and_makes_the_inventory_unknown() -> None:
    now = datetime(2025, 6, 30, tzinfo=UTC)
    inventory = evaluate_environment(
        "production",
        "production",
        usages=[],
        facts={},
        policy=SecretsPolicy(),
        now=now,
        stored={
            ("vault", "secret/a"): [StoredSecret("secret/a/orphan")],
            ("ssm", "/a/"): "aws: ssm describe_parameters /a: connection refused",
        },
        named={},
    )
    assert inventory.findings == ()
    assert inventory.status is InventoryStatus.UNKNOWN
    assert "could not be listed" in inventory.errors[0]


def test_plaintext_is_critical_with_path_and_origin_and_ordered_first() -> None:
    now = datetime(2025, 6, 30, tzinfo=UTC)
    inventory = evaluate_environment(
        "staging",
        "staging",
        usages=[ReferenceUsage(environment="staging", reference="vault://s/a/db#password", used_at=("a",))],
        facts={"vault://s/a/db#password": ReferenceFacts(metadata=SecretMetadata(exists=False))},
        policy=SecretsPolicy(),
        now=now,
        desired_hits=[PlaintextHit("partners.api_key", "secret-like-key", "hmac-sha256:00")],
        desired_origins={"partners.api_key": "config/staging.yaml:9"},
        live_hits={"ssm-services": [PlaintextHit("services.worker.token", "slack-token", "hmac-sha256:01")]},
    )
    kinds = [(f.kind, f.severity, f.subject, f.origin) for f in inventory.findings]
    assert kinds == [
        (FindingKind.PLAINTEXT, Severity.CRITICAL, "partners.api_key", "config/staging.yaml:9"),
        (FindingKind.PLAINTEXT, Severity.CRITICAL, "services.worker.token", "live source ssm-services"),
        (FindingKind.MISSING, Severity.HIGH, "vault://s/a/db#password", None),
    ]
    assert inventory.status is InventoryStatus.FINDINGS


def test_finding_ids_are_stable_and_change_with_the_value_fingerprint() -> None:
    def ids(fp: str) -> str:
        inv = evaluate_environment(
            "staging",
            "staging",
            usages=[],
            facts={},
            policy=SecretsPolicy(),
            now=datetime(2025, 6, 30, tzinfo=UTC),
            desired_hits=[PlaintextHit("a.token", "secret-like-key", fp)],
        )
        return inv.findings[0].id

    assert ids("hmac-sha256:aa") == ids("hmac-sha256:aa")
    assert ids("hmac-sha256:aa") != ids("hmac-sha256:bb")
