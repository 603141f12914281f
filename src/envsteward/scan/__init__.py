"""Drift scans of live environments: read every source, compare with the catalog, check parity, plan and
execute heals, plan de-duplicated alerts, render reports. No Prefect here (the drift-scan flow wraps it).

* :mod:`envsteward.scan.live` — read sources, assemble an environment's live tree (kept out of reprs);
* :mod:`envsteward.scan.fingerprints` — keyed fingerprints of the resolved secret references;
* :mod:`envsteward.scan.environment` — one environment's result, parity of two neighbours;
* :mod:`envsteward.scan.heal` — heal planning, approval decisions, the heal executor;
* :mod:`envsteward.scan.alerts` — which notifications a scan sends (pure);
* :mod:`envsteward.scan.report` — markdown, table rows, summary, the JSON-able result;
* :mod:`envsteward.scan.runner` — the plan of a scan, and the whole scan without Prefect (CLI).
"""

from envsteward.scan.alerts import AlertItem, AlertPlan, ChannelRoute, Delivery, alert_item, plan_alerts
from envsteward.scan.environment import check_parity, scan_environment
from envsteward.scan.fingerprints import SecretFingerprints, fingerprint_secrets
from envsteward.scan.heal import ApprovalDecision, decide_approval, execute_heals, plan_heals
from envsteward.scan.model import (
    EnvironmentScan,
    HealAction,
    HealOutcome,
    HealPlan,
    HealResult,
    ParityScan,
    ScanStatus,
    SourceState,
)
from envsteward.scan.runner import ScanPlan, ScanRun, plan_scan, run_scan

__all__ = [
    "AlertItem",
    "AlertPlan",
    "ApprovalDecision",
    "ChannelRoute",
    "Delivery",
    "EnvironmentScan",
    "HealAction",
    "HealOutcome",
    "HealPlan",
    "HealResult",
    "ParityScan",
    "ScanPlan",
    "ScanRun",
    "ScanStatus",
    "SecretFingerprints",
    "SourceState",
    "alert_item",
    "check_parity",
    "decide_approval",
    "execute_heals",
    "fingerprint_secrets",
    "plan_alerts",
    "plan_heals",
    "plan_scan",
    "run_scan",
    "scan_environment",
]
