"""The audit log: append records to a hash chain, read them back, verify the chain."""

from __future__ import annotations

import json
import random
import time as _time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError

from envsteward.audit.query import action_matches
from envsteward.audit.record import (
    GENESIS_HASH,
    AuditRecord,
    canonical_json,
    first_validation_error,
    hash_body,
    is_valid_action,
)
from envsteward.audit.safety import AuditDetailsError, check_json_safe
from envsteward.audit.verify import VerifyResult, verify_lines
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError
from envsteward.ports import AuditSink

if TYPE_CHECKING:
    from envsteward.audit.checkpoints import AuditVerification, Checkpointer
    from envsteward.fingerprint import Fingerprinter
    from envsteward.ports import ObjectStore
    from envsteward.settings import Settings

DEFAULT_MAX_ATTEMPTS = 200
_MAX_BACKOFF_SECONDS = 0.05


@runtime_checkable
class TailReadableSink(Protocol):
    """A sink that can return its last line without reading the whole log."""

    def last_line(self) -> str | None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """An append-only, hash-chained log of what envsteward and its operators did.

    Many processes may append to the same sink at once: each append reads the tail, builds the next record
    and asks the sink to store it only if it is still the next one; when another writer won, it re-reads the
    tail and tries again (bounded by ``max_attempts``).
    """

    def __init__(
        self,
        sink: AuditSink,
        actor_default: str,
        clock: Callable[[], datetime] = utc_now,
        *,
        fingerprinter: Fingerprinter | Callable[[], Fingerprinter] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        if not actor_default:
            raise ConfigurationError("the audit log needs a default actor (set ENVSTEWARD_ACTOR)")
        self.sink = sink
        self.actor_default = actor_default
        self.clock = clock
        self.max_attempts = max(1, max_attempts)
        self._fingerprinter_source = fingerprinter
        self._fingerprinter: Fingerprinter | None = None
        self.checkpointer = checkpointer
        """Signs checkpoints after appends (every N records, at least hourly); None: no checkpoints."""

    def __repr__(self) -> str:
        return f"AuditLog({self.sink!r})"

    @property
    def location(self) -> str:
        """Where the log is stored, for messages."""
        return str(getattr(self.sink, "location", repr(self.sink)))

    # -- writing ------------------------------------------------------------------------------------------

    def append(
        self,
        action: str,
        *,
        target: str,
        environment: str | None = None,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditRecord:
        """Append one record and return it (with its seq and hash).

        Raises AuditDetailsError when ``details`` hold a secret (``SecretStr``/``SecretBytes``), bytes or a
        non-JSON value, or ``action`` is not a dotted verb; ConflictError when no slot could be won in
        ``max_attempts`` tries; IntegrityError when the log's last record is damaged; the sink's errors.
        When a checkpoint is due it is signed and stored too (a failure there is logged, never raised).
        """
        if not isinstance(action, str) or not is_valid_action(action):
            raise AuditDetailsError(
                f"action {action!r} is not a dotted lower-case verb such as 'promotion.approved'",
                system="audit",
            )
        for name, value in (("target", target), ("environment", environment), ("actor", actor)):
            check_json_safe(value, name)
            if value is not None and not isinstance(value, str):
                raise AuditDetailsError(f"{name} must be a string", system="audit")
        check_json_safe(dict(details or {}), "details")
        # Normalise to plain JSON (tuples become lists, str subclasses become str) so that what is hashed
        # is exactly what a reader will parse back.
        plain_details: dict[str, Any] = json.loads(canonical_json(dict(details or {})))
        who = actor or self.actor_default

        for attempt in range(self.max_attempts):
            last_seq, last_hash = self._tail()
            try:
                record = AuditRecord.build(
                    seq=last_seq + 1,
                    time=self.clock(),
                    actor=who,
                    action=action,
                    environment=environment,
                    target=target,
                    details=plain_details,
                    prev_hash=last_hash,
                )
            except (ValidationError, ValueError) as exc:
                raise AuditDetailsError(
                    "cannot build the audit record: "
                    + (first_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)),
                    system="audit",
                ) from None
            if self.sink.append_line(record.seq, record.to_line()):
                if self.checkpointer is not None:
                    self.checkpointer.after_append(self, record)
                return record
            # Lost the race for this seq: wait a little (jittered, growing) so writers spread out.
            _time.sleep(random.uniform(0, min(_MAX_BACKOFF_SECONDS, 0.001 * 2**attempt)))  # noqa: S311
        raise ConflictError(
            f"could not append {action} after {self.max_attempts} attempts (other writers kept winning)",
            system="audit",
            operation="append",
        )

    def _tail_line(self) -> str | None:
        if isinstance(self.sink, TailReadableSink):
            return self.sink.last_line()
        last: str | None = None
        for last in self.sink.read_lines():  # noqa: B007 - only the last one is wanted
            pass
        return last

    def _tail(self) -> tuple[int, str]:
        """The last record's seq and hash (0 and the genesis hash for an empty log).

        Raises IntegrityError when the last record is unreadable or fails its own hash check: nothing is
        chained onto a damaged record.
        """
        line = self._tail_line()
        if line is None:
            return 0, GENESIS_HASH
        raw = self._intact_tail(line)
        return int(raw["seq"]), str(raw["hash"])

    def _intact_tail(self, line: str) -> dict[str, Any]:
        try:
            raw = json.loads(line)
            body = {key: value for key, value in raw.items() if key != "hash"}
            intact = isinstance(raw["seq"], int) and hash_body(body) == raw["hash"]
        except (ValueError, TypeError, KeyError, AttributeError):
            intact = False
        if not intact:
            raise IntegrityError(
                f"the last record of the audit log at {self.location} is damaged; "
                "run `envsteward audit verify` and repair the log before appending",
                system="audit",
            )
        return dict(raw)

    # -- reading -------------------------------------------------------------------------------------------

    def records(
        self,
        environment: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
    ) -> Iterator[AuditRecord]:
        """Records in stored order, filtered by environment (exact), action (exact, dotted prefix or glob)
        and time (at or after ``since``, which must be timezone-aware).

        Raises IntegrityError naming the line when a stored record cannot be read (run ``verify``). It does
        not check hashes: use :meth:`verify` for that.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        for line_no, line in enumerate(self.sink.read_lines(), start=1):
            try:
                record = AuditRecord.model_validate_json(line)
            except ValidationError:
                raise IntegrityError(
                    f"audit record at line {line_no} of {self.location} cannot be read; "
                    "run `envsteward audit verify`",
                    system="audit",
                ) from None
            if environment is not None and record.environment != environment:
                continue
            if action is not None and not action_matches(action, record.action):
                continue
            if since is not None and record.time < since:
                continue
            yield record

    def head(self) -> AuditRecord | None:
        """The last record, or None for an empty log. Raises IntegrityError when it is damaged."""
        line = self._tail_line()
        if line is None:
            return None
        try:
            return AuditRecord.model_validate(self._intact_tail(line))
        except ValidationError:
            raise IntegrityError(
                f"the last record of the audit log at {self.location} cannot be read", system="audit"
            ) from None

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Check the whole chain (see :func:`~envsteward.audit.verify.verify_lines`). Raises sink errors."""
        return verify_lines(self.sink.read_lines(), anchor=anchor)

    def verify_with_checkpoints(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """The chain checked against the latest valid signed checkpoint (and ``anchor``): see
        :meth:`Checkpointer.verify`. Without a checkpointer, the chain alone. Read-only: creates no key and
        writes no checkpoint. Raises the sinks' errors."""
        if self.checkpointer is None:
            from envsteward.audit.checkpoints import AuditVerification

            return AuditVerification(chain=self.verify(anchor))
        return self.checkpointer.verify(self, anchor)

    # -- fingerprints ---------------------------------------------------------------------------------------

    def fingerprint(self, value: Any) -> str:
        """A keyed fingerprint of ``value`` to put in details instead of the value itself.

        Raises ConfigurationError when this log was built without a fingerprinter.
        """
        if self._fingerprinter is None:
            source = self._fingerprinter_source
            if source is None:
                raise ConfigurationError("this audit log has no fingerprinter (build it with open_audit_log)")
            from envsteward.fingerprint import Fingerprinter

            self._fingerprinter = source if isinstance(source, Fingerprinter) else source()
        return self._fingerprinter.fingerprint(value)


def open_audit_log(
    settings: Settings,
    object_store: ObjectStore | None = None,
    checkpointer: Checkpointer | None = None,
) -> AuditLog:
    """The audit log named by settings, checkpointed by ``checkpointer`` (``Services.audit_log()`` passes
    the one settings describe; None: no checkpoints).

    With ``object_store`` (the lead passes the S3 store when ``storage.kind`` is ``s3``) records are objects
    under ``audit/``; otherwise, for ``storage.kind == "filesystem"``, the JSON-lines file
    ``<home>/audit/audit.jsonl``. Raises ConfigurationError for ``s3`` without a store. Touches no file.
    """
    from envsteward.audit.sinks import JsonLinesFileSink, ObjectStoreSink
    from envsteward.fingerprint import load_fingerprinter

    sink: AuditSink
    if object_store is not None:
        sink = ObjectStoreSink(object_store, prefix="audit/")
    elif settings.storage.kind == "filesystem":
        sink = JsonLinesFileSink(settings.home / "audit" / "audit.jsonl")
    else:
        raise ConfigurationError(
            f"storage.kind is {settings.storage.kind!r}: open_audit_log needs its object store "
            "(use Services.audit_log())"
        )
    return AuditLog(
        sink,
        settings.current_actor(),
        fingerprinter=lambda: load_fingerprinter(settings),
        checkpointer=checkpointer,
    )
