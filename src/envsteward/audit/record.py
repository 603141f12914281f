"""One audit record, its canonical serialisation and its hash.

Canonical form (what an auditor re-computes)
--------------------------------------------
A record is a JSON object with exactly these members::

    seq          integer, 1 for the first record, +1 for each next one
    time         UTC time, RFC 3339 with microseconds and "Z", e.g. "2026-03-01T09:30:00.000000Z"
    actor        who acted (user or service name)
    action       dotted verb, e.g. "promotion.approved", "drift.healed", "health.status_changed"
    environment  environment name, or null
    target       what was acted on (a path, a deployment, a backup id)
    details      JSON object with more facts; never secret values (keyed fingerprints instead)
    prev_hash    "hash" of the previous record; 64 zeros for record 1 (the genesis record)
    hash         SHA-256 (lowercase hex) of the canonical JSON of every other member

The canonical JSON of an object is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` encoded as UTF-8. Each stored line (or object) is the canonical
JSON of the whole record, including ``hash``. To re-verify one record with standard tools::

    jq -cS 'del(.hash)' <<<"$line" | tr -d '\\n' | sha256sum     # compare with: jq -r .hash <<<"$line"

(``jq`` prints the same bytes for records whose details hold strings, integers, booleans and nulls; it
rewrites some floats, e.g. ``1.0`` as ``1``, so for those use the Python expression above.) The chain is
valid when every record's ``hash`` is correct, ``seq`` runs 1, 2, 3... without gaps and every
``prev_hash`` equals the previous record's ``hash``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_serializer,
    field_validator,
)

GENESIS_HASH = "0" * 64
"""``prev_hash`` of record 1."""

HASH_PATTERN = r"^[0-9a-f]{64}$"
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
RECORD_FIELDS = frozenset(
    {"seq", "time", "actor", "action", "environment", "target", "details", "prev_hash", "hash"}
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_ACTION_RE = re.compile(ACTION_PATTERN)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no whitespace, non-ASCII kept, no NaN).

    Raises TypeError or ValueError when ``value`` is not plain JSON.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def hash_body(body: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``body`` (a record's members without ``hash``), as UTF-8."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC text with microseconds and ``Z``. Raises ValueError for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def first_validation_error(exc: ValidationError) -> str:
    """``member: problem`` for the first error pydantic found (its messages never quote the value)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


def is_valid_action(action: str) -> bool:
    """True for a dotted lower-case verb such as ``promotion.approved``."""
    return bool(_ACTION_RE.match(action))


class AuditRecord(BaseModel):
    """One entry of the audit log. Build new ones with :meth:`AuditLog.append`, not by hand."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: Annotated[StrictInt, Field(ge=1)]
    time: datetime
    actor: Annotated[StrictStr, Field(min_length=1)]
    action: Annotated[StrictStr, Field(pattern=ACTION_PATTERN)]
    environment: StrictStr | None = None
    target: StrictStr
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: Annotated[StrictStr, Field(pattern=HASH_PATTERN)]
    hash: Annotated[StrictStr, Field(pattern=HASH_PATTERN)]

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time must carry a timezone (audit times are UTC)")
        return value.astimezone(UTC)

    @field_serializer("time")
    def _format_time(self, value: datetime) -> str:
        return format_time(value)

    def body(self) -> dict[str, Any]:
        """Every member except ``hash``, as JSON values: the input of the hash."""
        return self.model_dump(mode="json", exclude={"hash"})

    def computed_hash(self) -> str:
        """The hash this record should carry."""
        return hash_body(self.body())

    def to_line(self) -> str:
        """The stored form: canonical JSON of the whole record (one line, no trailing newline)."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def build(
        cls,
        *,
        seq: int,
        time: datetime,
        actor: str,
        action: str,
        environment: str | None,
        target: str,
        details: dict[str, Any],
        prev_hash: str,
    ) -> AuditRecord:
        """A new record with its hash computed. Raises pydantic.ValidationError for bad members."""
        body = {
            "seq": seq,
            "time": format_time(time),
            "actor": actor,
            "action": action,
            "environment": environment,
            "target": target,
            "details": details,
            "prev_hash": prev_hash,
        }
        return cls.model_validate({**body, "hash": hash_body(body)})
