"""The audit log: append-only, hash-chained records of what envsteward and its operators did.

See :mod:`envsteward.audit.record` for the canonical form an auditor can re-verify by hand.
"""

from envsteward.audit.checkpoints import (
    AuditVerification,
    Checkpoint,
    Checkpointer,
    CheckpointOutcome,
    CheckpointSigner,
    CheckpointStore,
    SigningKey,
    open_checkpointer,
)
from envsteward.audit.log import AuditLog, TailReadableSink, open_audit_log
from envsteward.audit.query import action_matches, parse_since
from envsteward.audit.record import GENESIS_HASH, AuditRecord, canonical_json, hash_body
from envsteward.audit.safety import AuditDetailsError
from envsteward.audit.sinks import JsonLinesFileSink, ObjectStoreSink
from envsteward.audit.verify import VerifyResult, parse_anchor, verify_lines

__all__ = [
    "GENESIS_HASH",
    "AuditDetailsError",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "Checkpoint",
    "CheckpointOutcome",
    "CheckpointSigner",
    "CheckpointStore",
    "Checkpointer",
    "JsonLinesFileSink",
    "ObjectStoreSink",
    "SigningKey",
    "TailReadableSink",
    "VerifyResult",
    "action_matches",
    "canonical_json",
    "hash_body",
    "open_audit_log",
    "open_checkpointer",
    "parse_anchor",
    "parse_since",
    "verify_lines",
]
