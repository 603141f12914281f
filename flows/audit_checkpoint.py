"""The audit checkpoint flow: sign the audit log's head so that a later consistent rewrite is detected.

Runbook:
1. Verify the log against its latest valid signed checkpoint; a broken or rewritten log fails the run and
   nothing is signed.
2. Sign a checkpoint of the head (Vault transit, KMS, or the local key outside ENVSTEWARD_HOME) and store
   it apart from the log; a no-op when the head is checkpointed already.

Appends write checkpoints every N records and at least hourly while records come in; this deployment
(hourly, ``prefect.yaml`` ``audit-checkpoint``) covers quiet hours. ``envsteward audit checkpoint`` does
the same from cron.
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.audit import write_audit_checkpoint
from prefect import flow, get_run_logger


@flow(name="audit-checkpoint", description="Verify the audit log, then sign a checkpoint of its head.")
def audit_checkpoint() -> dict[str, Any]:
    """Returns what the checkpoint step did (written or not, why, the checkpoint's seq/hash/signer).

    Raises IntegrityError when the log does not verify, and the signer's and stores' errors.
    """
    outcome = write_audit_checkpoint()
    get_run_logger().info("audit checkpoint: %s", outcome["reason"])
    return outcome
