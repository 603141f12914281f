"""Ways an attacker (or a broken disk) can damage a chain, as functions over the stored lines.

Shared by the unit tests (in-memory lines) and the integration tests (a real JSONL file, real objects).
"""

from __future__ import annotations

import json
from typing import Any

from envsteward.audit import canonical_json, hash_body


def parse(line: str) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def rehash(record: dict[str, Any]) -> str:
    """Return the record as a stored line with a correct own hash (what a careful forger does)."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return canonical_json({**body, "hash": hash_body(body)})


def change_field(lines: list[str], seq: int, field: str, value: Any) -> list[str]:
    """Edit one member of record ``seq`` and leave its hash alone."""
    out = list(lines)
    record = parse(out[seq - 1])
    record[field] = value
    out[seq - 1] = canonical_json(record)
    return out


def change_and_rehash(lines: list[str], seq: int, field: str, value: Any) -> list[str]:
    """Edit one member of record ``seq`` and recompute its own hash."""
    out = list(lines)
    record = parse(out[seq - 1])
    record[field] = value
    out[seq - 1] = rehash(record)
    return out


def remove(lines: list[str], seq: int) -> list[str]:
    return [line for index, line in enumerate(lines, start=1) if index != seq]


def swap(lines: list[str], first: int, second: int) -> list[str]:
    out = list(lines)
    out[first - 1], out[second - 1] = out[second - 1], out[first - 1]
    return out


def forged_after(lines: list[str], seq: int, *, prev_hash: str | None = None) -> list[str]:
    """Insert, after record ``seq``, a forged record numbered ``seq + 1`` with a correct own hash.

    By default it chains correctly onto record ``seq`` (prev_hash = its hash).
    """
    out = list(lines)
    anchor = parse(out[seq - 1])
    forged = {
        **anchor,
        "seq": seq + 1,
        "action": "promotion.approved",
        "actor": "mallory",
        "details": {"comment": "looks fine"},
        "prev_hash": prev_hash if prev_hash is not None else anchor["hash"],
    }
    out.insert(seq, rehash(forged))
    return out


def truncate_last_line(lines: list[str]) -> list[str]:
    out = list(lines)
    out[-1] = out[-1][: len(out[-1]) // 2]
    return out


def rewrite_consistently(lines: list[str], seq: int, field: str, value: Any) -> list[str]:
    """Edit record ``seq`` and recompute its hash and every later record's ``prev_hash`` and ``hash``: the
    chain stays internally consistent (what someone who can write the whole log does)."""
    out = list(lines)
    prev_hash = parse(out[seq - 2])["hash"] if seq > 1 else "0" * 64
    for index in range(seq - 1, len(out)):
        record = parse(out[index])
        if index == seq - 1:
            record[field] = value
        record["prev_hash"] = prev_hash
        out[index] = rehash(record)
        prev_hash = parse(out[index])["hash"]
    return out
