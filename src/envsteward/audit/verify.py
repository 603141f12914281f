"""Checking a whole hash chain, streaming, and naming the first bad record.

:func:`verify_lines` is pure: it takes the stored lines (in stored order) and returns a
:class:`VerifyResult`. Checks, for each line in turn:

1. the line is a JSON object with exactly the record members and valid types ("not valid JSON at line N",
   "invalid record");
2. its ``hash`` matches its content ("hash mismatch (record changed)");
3. its ``seq`` is the previous one + 1 ("sequence gap (record removed)", "sequence out of order (records
   reordered)", "sequence repeated (record inserted)");
4. its ``prev_hash`` is the previous record's ``hash`` ("prev_hash mismatch (record inserted or removed)").

A chain can only prove it is internally consistent: someone who rewrites every record after a point, or
removes records from the end, leaves a consistent chain. Two things detect that too: a signed checkpoint
(:mod:`envsteward.audit.checkpoints`, passed here as ``checkpoint``), and a head recorded somewhere else by
hand (``seq:hash`` printed by ``envsteward audit verify``) passed back as ``anchor``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError

from envsteward.audit.record import (
    GENESIS_HASH,
    RECORD_FIELDS,
    AuditRecord,
    first_validation_error,
    hash_body,
)

CHANGED = "changed"
REMOVED = "removed"
REORDERED = "reordered"
INSERTED = "inserted"
INVALID = "invalid"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking a chain.

    ``count`` is the number of records that verified (all of them when ``ok``; those before the first bad
    one otherwise). ``first_bad_seq`` is the sequence number of the first bad record (the number it carries,
    or the number it should have had when it cannot be read), ``line`` its 1-based position in stored order,
    ``kind`` one of changed/removed/reordered/inserted/invalid/truncated. ``last_seq``/``last_hash`` are
    the head of the verified part (0 and 64 zeros for an empty log): record them as an anchor.
    """

    ok: bool
    count: int
    first_bad_seq: int | None = None
    line: int | None = None
    reason: str | None = None
    kind: str | None = None
    last_seq: int = 0
    last_hash: str = GENESIS_HASH

    @property
    def anchor(self) -> str:
        """``<last_seq>:<last_hash>``, the form ``--anchor`` accepts."""
        return f"{self.last_seq}:{self.last_hash}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "anchor": self.anchor}


def parse_anchor(text: str) -> tuple[int, str]:
    """Parse ``SEQ:HASH``. Raises ValueError with the expected form."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep or not seq_text.isdigit() or int(seq_text) < 1 or len(digest) != 64:
        raise ValueError(f"anchor {text!r} is not of the form SEQ:HASH (e.g. 42:<64 hex digits>)")
    try:
        int(digest, 16)
    except ValueError:
        raise ValueError(f"anchor {text!r}: the hash must be 64 hex digits") from None
    return int(seq_text), digest.lower()


def verify_lines(
    lines: Iterable[str],
    anchor: tuple[int, str] | None = None,
    checkpoint: tuple[int, str] | None = None,
) -> VerifyResult:
    """Verify a chain given its stored lines in order (blank lines count as invalid). Pure; never raises.

    ``anchor`` and ``checkpoint`` are ``(seq, hash)`` pairs the log must contain (a head recorded by hand, a
    signed checkpoint's): a different hash there means the log was rewritten, a log ending before it that
    it was cut.
    """
    pins: list[tuple[int, str, str]] = []
    if anchor is not None:
        pins.append((anchor[0], anchor[1], "anchor"))
    if checkpoint is not None:
        pins.append((checkpoint[0], checkpoint[1], "checkpoint"))
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    iterator = iter(lines)

    def bad(seq: int | None, line_no: int, kind: str, reason: str) -> VerifyResult:
        return VerifyResult(
            ok=False,
            count=count,
            first_bad_seq=seq,
            line=line_no,
            reason=reason,
            kind=kind,
            last_seq=expected_seq - 1,
            last_hash=prev_hash,
        )

    for line_no, line in enumerate(iterator, start=1):
        raw = _parse_object(line)
        if raw is None:
            what = "empty line" if not line.strip() else "truncated or corrupted"
            return bad(
                expected_seq,
                line_no,
                TRUNCATED if line.strip() else INVALID,
                f"not valid JSON at line {line_no} ({what})",
            )
        problem = _schema_problem(raw)
        if problem is not None:
            seq = raw.get("seq") if isinstance(raw.get("seq"), int) else expected_seq
            return bad(seq, line_no, INVALID, f"invalid record at line {line_no}: {problem}")
        seq = int(raw["seq"])
        stored_hash = str(raw["hash"])
        body = {key: value for key, value in raw.items() if key != "hash"}
        if hash_body(body) != stored_hash:
            return bad(
                seq, line_no, CHANGED, f"hash mismatch (record changed): record {seq} at line {line_no}"
            )
        if seq != expected_seq:
            return bad(seq, line_no, *_classify_sequence(seq, expected_seq, iterator))
        if raw["prev_hash"] != prev_hash:
            where = (
                "genesis record 1 must have prev_hash of 64 zeros"
                if seq == 1
                else (f"record {seq}'s prev_hash is not the hash of record {seq - 1}")
            )
            return bad(seq, line_no, INSERTED, f"prev_hash mismatch (record inserted or removed): {where}")
        for pin_seq, pin_hash, what in pins:
            if seq == pin_seq and stored_hash != pin_hash:
                if what == "anchor":
                    return bad(
                        seq,
                        line_no,
                        CHANGED,
                        f"anchor mismatch (log rewritten): record {seq}'s hash differs from the anchored "
                        "hash",
                    )
                return bad(
                    seq,
                    line_no,
                    REWRITTEN,
                    f"checkpoint mismatch (log rewritten at or before record {seq}): record {seq}'s hash "
                    "differs from the signed checkpoint",
                )
        count += 1
        expected_seq = seq + 1
        prev_hash = stored_hash

    cut = [(pin_seq, what) for pin_seq, _hash, what in pins if pin_seq >= expected_seq]
    if cut:
        pin_seq, what = min(cut)
        label = "anchored record" if what == "anchor" else "record of the signed checkpoint"
        return VerifyResult(
            ok=False,
            count=count,
            first_bad_seq=expected_seq,
            line=None,
            reason=(
                f"{label} {pin_seq} is missing (log truncated): the log ends at record {expected_seq - 1}"
            ),
            kind=REMOVED,
            last_seq=expected_seq - 1,
            last_hash=prev_hash,
        )
    return VerifyResult(ok=True, count=count, last_seq=expected_seq - 1, last_hash=prev_hash)


def _parse_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _schema_problem(raw: dict[str, Any]) -> str | None:
    missing = sorted(RECORD_FIELDS - raw.keys())
    extra = sorted(raw.keys() - RECORD_FIELDS)
    if missing:
        return f"missing member(s) {', '.join(missing)}"
    if extra:
        return f"unexpected member(s) {', '.join(extra)}"
    try:
        AuditRecord.model_validate(raw)
    except ValidationError as exc:
        return first_validation_error(exc)
    return None


def _classify_sequence(seq: int, expected: int, rest: Iterator[str]) -> tuple[str, str]:
    found = f"expected seq {expected}, found {seq}"
    if seq == expected - 1:
        return INSERTED, f"sequence repeated (record inserted): {found}"
    if seq > expected and _seq_appears_later(expected, rest):
        return REORDERED, f"sequence out of order (records reordered): {found}"
    if seq > expected:
        missing = f"record {expected}" if seq == expected + 1 else f"records {expected}..{seq - 1}"
        return REMOVED, f"sequence gap (record removed): {found}; {missing} missing"
    return REORDERED, f"sequence out of order (records reordered or an old record replayed): {found}"


def _seq_appears_later(seq: int, rest: Iterator[str]) -> bool:
    for line in rest:
        raw = _parse_object(line)
        if raw is not None and raw.get("seq") == seq:
            return True
    return False
