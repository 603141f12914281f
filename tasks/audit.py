"""Thin task wrappers over the audit checkpointer (``envsteward.audit.checkpoints``)."""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT
from prefect import task

from envsteward.errors import ConfigurationError
from envsteward.services import get_services


@task(name="audit-checkpoint", **RETRY_TRANSIENT, persist_result=False)
def write_audit_checkpoint() -> dict[str, Any]:
    """Verify the audit log against its latest checkpoint, then sign and store a checkpoint of its head (a
    no-op when the head is checkpointed already). Calls the signer (Vault transit, KMS, or the local key)
    and the log and checkpoint stores. Retried only on transient errors (writing the same checkpoint twice
    is a no-op: checkpoints are created only when absent).

    Raises IntegrityError when the log does not verify (nothing is signed), ConfigurationError when
    checkpoints are off, and the signer's and stores' errors.
    """
    log = get_services().audit_log()
    if log.checkpointer is None:
        raise ConfigurationError("signed audit checkpoints are off (audit.signer: none)")
    outcome = log.checkpointer.checkpoint(log)
    return {
        "written": outcome.written,
        "reason": outcome.reason,
        "checkpoint": outcome.checkpoint.summary() if outcome.checkpoint else None,
    }
