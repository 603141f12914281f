"""verify_lines names the first bad record for every kind of tampering."""

from __future__ import annotations

import json

import pytest

from envsteward.audit import GENESIS_HASH, parse_anchor, verify_lines
from envsteward.audit.verify import CHANGED, INSERTED, INVALID, REMOVED, REORDERED, TRUNCATED

from . import tampering as t
from .conftest import ChainFactory


def test_valid_chain(chain: ChainFactory) -> None:
    lines = chain(10)
    result = verify_lines(lines)
    assert result.ok
    assert result.count == 10
    assert result.first_bad_seq is None
    assert result.reason is None
    assert result.last_seq == 10
    assert result.last_hash == json.loads(lines[-1])["hash"]
    assert result.anchor == f"10:{result.last_hash}"


def test_empty_log_is_valid() -> None:
    result = verify_lines([])
    assert result.ok
    assert result.count == 0
    assert result.last_hash == GENESIS_HASH


@pytest.mark.parametrize(
    ("field", "value"),
    [("details", {"n": 999}), ("actor", "mallory"), ("target", "other"), ("environment", "production"),
     ("time", "2020-01-01T00:00:00.000000Z"), ("seq", 77), ("prev_hash", "1" * 64)],
)  # fmt: skip
def test_changed_field_is_named(chain: ChainFactory, field: str, value: object) -> None:
    result = verify_lines(t.change_field(chain(10), 4, field, value))
    assert not result.ok
    assert result.first_bad_seq == (77 if field == "seq" else 4)
    assert result.line == 4
    assert result.kind == CHANGED
    assert result.reason is not None
    assert result.reason.startswith("hash mismatch (record changed)")
    assert result.count == 3
    assert result.last_seq == 3


def test_changed_and_rehashed_record_breaks_the_next_link(chain: ChainFactory) -> None:
    result = verify_lines(t.change_and_rehash(chain(10), 4, "details", {"n": 999}))
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.kind == INSERTED
    assert result.reason is not None
    assert result.reason.startswith("prev_hash mismatch (record inserted or removed)")
    assert "record 5's prev_hash is not the hash of record 4" in result.reason


@pytest.mark.parametrize("seq", [1, 5, 9])
def test_removed_record(chain: ChainFactory, seq: int) -> None:
    result = verify_lines(t.remove(chain(10), seq))
    assert not result.ok
    assert result.kind == REMOVED
    assert result.first_bad_seq == seq + 1
    assert result.line == seq
    assert result.reason == (
        f"sequence gap (record removed): expected seq {seq}, found {seq + 1}; record {seq} missing"
    )


def test_several_removed_records(chain: ChainFactory) -> None:
    lines = t.remove(t.remove(chain(10), 5), 5)
    result = verify_lines(lines)
    assert result.first_bad_seq == 7
    assert result.reason is not None
    assert "records 5..6 missing" in result.reason


def test_removed_last_record_needs_an_anchor(chain: ChainFactory) -> None:
    lines = chain(10)
    anchor = parse_anchor(verify_lines(lines).anchor)
    shortened = lines[:-1]
    assert verify_lines(shortened).ok  # a consistent prefix: the chain alone cannot tell
    result = verify_lines(shortened, anchor=anchor)
    assert not result.ok
    assert result.kind == REMOVED
    assert result.first_bad_seq == 10
    assert result.reason is not None
    assert "anchored record 10 is missing" in result.reason


def test_rewritten_tail_is_caught_by_the_anchor(chain: ChainFactory) -> None:
    lines = chain(10)
    anchor = parse_anchor(verify_lines(lines).anchor)
    record = t.parse(lines[-1])
    record["details"] = {"n": "rewritten"}
    rewritten = [*lines[:-1], t.rehash(record)]
    assert verify_lines(rewritten).ok
    result = verify_lines(rewritten, anchor=anchor)
    assert not result.ok
    assert result.first_bad_seq == 10
    assert result.reason is not None
    assert result.reason.startswith("anchor mismatch")


def test_inserted_forged_record_with_correct_hash_and_link(chain: ChainFactory) -> None:
    lines = t.forged_after(chain(10), 3)
    assert t.parse(lines[3])["actor"] == "mallory"
    result = verify_lines(lines)
    assert not result.ok
    assert result.kind == INSERTED
    assert result.first_bad_seq == 4
    assert result.line == 5
    assert result.reason == "sequence repeated (record inserted): expected seq 5, found 4"


def test_inserted_forged_record_with_wrong_link(chain: ChainFactory) -> None:
    result = verify_lines(t.forged_after(chain(10), 3, prev_hash="f" * 64))
    assert not result.ok
    assert result.kind == INSERTED
    assert (result.first_bad_seq, result.line) == (4, 4)
    assert result.reason is not None
    assert result.reason.startswith("prev_hash mismatch (record inserted or removed)")


@pytest.mark.parametrize(("first", "second"), [(3, 4), (1, 2), (2, 9), (9, 10)])
def test_swapped_records(chain: ChainFactory, first: int, second: int) -> None:
    result = verify_lines(t.swap(chain(10), first, second))
    assert not result.ok
    assert result.kind == REORDERED
    assert result.first_bad_seq == second
    assert result.line == first
    assert result.reason == f"sequence out of order (records reordered): expected seq {first}, found {second}"


def test_replayed_old_record(chain: ChainFactory) -> None:
    lines = chain(10)
    result = verify_lines([*lines[:6], lines[1], *lines[6:]])
    assert not result.ok
    assert result.kind == REORDERED
    assert result.first_bad_seq == 2
    assert result.line == 7


def test_truncated_last_line(chain: ChainFactory) -> None:
    result = verify_lines(t.truncate_last_line(chain(10)))
    assert not result.ok
    assert result.kind == TRUNCATED
    assert result.first_bad_seq == 10
    assert result.reason == "not valid JSON at line 10 (truncated or corrupted)"
    assert result.count == 9


def test_edited_genesis(chain: ChainFactory) -> None:
    result = verify_lines(t.change_field(chain(5), 1, "actor", "mallory"))
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 1, CHANGED)


def test_genesis_with_a_nonzero_prev_hash(chain: ChainFactory) -> None:
    result = verify_lines(t.change_and_rehash(chain(5), 1, "prev_hash", "1" * 64))
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 1, INSERTED)
    assert result.reason is not None
    assert "genesis record 1 must have prev_hash of 64 zeros" in result.reason


def test_new_genesis_replacing_the_log_start(chain: ChainFactory) -> None:
    lines = chain(5)
    result = verify_lines(t.change_and_rehash(lines, 1, "actor", "mallory"))
    assert (result.first_bad_seq, result.kind) == (2, INSERTED)


def test_blank_line_in_the_middle(chain: ChainFactory) -> None:
    lines = chain(5)
    result = verify_lines([*lines[:2], "", *lines[2:]])
    assert (result.first_bad_seq, result.line, result.kind) == (3, 3, INVALID)
    assert result.reason == "not valid JSON at line 3 (empty line)"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(extra="x"), "unexpected member(s) extra"),
        (lambda r: r.pop("target"), "missing member(s) target"),
        (lambda r: r.update(seq="3"), "seq"),
        (lambda r: r.update(details=[1]), "details"),
    ],
)
def test_invalid_record_shape(chain: ChainFactory, mutate: object, expected: str) -> None:
    lines = chain(5)
    record = t.parse(lines[2])
    mutate(record)  # type: ignore[operator]
    lines[2] = t.rehash(record)
    result = verify_lines(lines)
    assert (result.ok, result.line, result.kind) == (False, 3, INVALID)
    assert result.first_bad_seq == 3
    assert result.reason is not None
    assert expected in result.reason


def test_json_array_line_is_invalid(chain: ChainFactory) -> None:
    lines = chain(3)
    result = verify_lines([*lines, "[1, 2]"])
    assert (result.first_bad_seq, result.line) == (4, 4)


@pytest.mark.parametrize("text", ["", "5", "x:" + "a" * 64, "5:abc", "5:" + "z" * 64, "0:" + "a" * 64])
def test_parse_anchor_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"SEQ:HASH|hex"):
        parse_anchor(text)


def test_parse_anchor_accepts() -> None:
    assert parse_anchor(" 12:" + "AB" * 32 + " ") == (12, "ab" * 32)
