"""Disaster-recovery drills: restore a backup from the DR region into a scratch target, verify it, measure
RTO and RPO against the catalog's targets, and always tear the scratch target down.

* :mod:`.decisions` — pure: which backup (id / latest / random among those retention keeps), RPO,
  targets, verdict, scratch naming.
* :mod:`.phases` — :class:`Drill` and one function per phase (prepare, choose, fetch_verify, restore,
  verify_data, health, teardown), :func:`finish_drill` (verdict, verified-by-drill mark, audit records);
  :func:`run_drill` runs them in this process (the CLI), the drill flow runs each as a task.
* :mod:`.ports` — :class:`~.ports.DrillServices`, what a drill needs from the process (``Services``
  satisfies it).
* :mod:`.scratch` — scratch targets per kind (PostgreSQL database, Vault KV prefix, SQLite/config file).
* :mod:`.history` — drill records in the state store.
* :mod:`.abandoned` — the drill ledger, scratch markers, and the sweep of killed drills' leftovers
  (``drill.abandoned``); :mod:`.limits` — the phases' timeouts and their total (the sweep's threshold).
* :mod:`.report` — markdown, verification table rows, SVG chart.
* :mod:`.alerts` — who is told (Slack/email for a missed target, PagerDuty too for a failure).
"""

from envsteward.drill.alerts import drill_alerts, notification_for
from envsteward.drill.decisions import (
    LATEST,
    RANDOM,
    REGION_DR,
    REGION_PRIMARY,
    BackupCandidate,
    BackupChoice,
    check_targets,
    choose_backup,
    measure_rpo,
    parse_region,
    parse_request,
    scratch_name,
    verdict,
)
from envsteward.drill.history import load_history, previous_drill, save_drill
from envsteward.drill.model import (
    DrillRecord,
    DrillStatus,
    DrillTargets,
    PhaseName,
    PhaseTiming,
    TargetCheck,
    Verification,
)
from envsteward.drill.phases import Drill, audit_details, finish_drill, run_drill, start_drill
from envsteward.drill.report import history_rows, render_markdown, render_svg, table_rows

__all__ = [
    "LATEST",
    "RANDOM",
    "REGION_DR",
    "REGION_PRIMARY",
    "BackupCandidate",
    "BackupChoice",
    "Drill",
    "DrillRecord",
    "DrillStatus",
    "DrillTargets",
    "PhaseName",
    "PhaseTiming",
    "TargetCheck",
    "Verification",
    "audit_details",
    "check_targets",
    "choose_backup",
    "drill_alerts",
    "finish_drill",
    "history_rows",
    "load_history",
    "measure_rpo",
    "notification_for",
    "parse_region",
    "parse_request",
    "previous_drill",
    "render_markdown",
    "render_svg",
    "run_drill",
    "save_drill",
    "scratch_name",
    "start_drill",
    "table_rows",
    "verdict",
]
