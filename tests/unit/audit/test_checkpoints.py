"""Pure checks of checkpoint documents and of the chain against a checkpoint."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from envsteward.audit.checkpoints import (
    BadCheckpoint,
    Checkpoint,
    SigningKey,
    check_checkpoint,
    fingerprint_public_key,
    make_checkpoint,
    pin_fingerprint,
    signature_is_valid,
)
from envsteward.audit.record import canonical_json
from envsteward.audit.verify import REMOVED, REWRITTEN, verify_lines
from tests.unit.audit import tampering as t
from tests.unit.audit.conftest import ChainFactory


class ECSigner:
    """A checkpoint signer with an in-process ECDSA P-256 key (the shape KMS and Vault ecdsa keys have)."""

    kind = "test"

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def signing_key(self) -> SigningKey:
        return SigningKey("test-key", 3, "ecdsa-p256-sha256", self.public)

    def sign(self, message: bytes, key: SigningKey) -> bytes:
        return self.private.sign(message, ec.ECDSA(hashes.SHA256()))

    def trusted_public_keys(self) -> list[bytes]:
        return []


def _checkpoint(chain: ChainFactory, seq: int = 4) -> tuple[list[str], Checkpoint, ECSigner]:
    from datetime import UTC, datetime

    lines = chain(6)
    signer = ECSigner()
    head = t.parse(lines[seq - 1])["hash"]
    return lines, make_checkpoint(seq, head, datetime(2026, 3, 1, tzinfo=UTC), signer), signer


def test_a_good_checkpoint_checks_out_only_with_its_key_pinned(chain: ChainFactory) -> None:
    _lines, checkpoint, signer = _checkpoint(chain)
    pinned = {fingerprint_public_key(signer.public)}
    assert check_checkpoint("x/000000000004.json", checkpoint.to_bytes(), pinned) == checkpoint
    result = check_checkpoint("x/000000000004.json", checkpoint.to_bytes(), set())
    assert isinstance(result, BadCheckpoint)
    assert "not pinned" in result.reason


def test_every_member_is_covered_by_the_signature(chain: ChainFactory) -> None:
    _lines, checkpoint, signer = _checkpoint(chain)
    pinned = {fingerprint_public_key(signer.public)}
    for member, value in (("seq", 5), ("time", "2027-01-01T00:00:00.000000Z"), ("head_hash", "a" * 64)):
        document = {**checkpoint.model_dump(mode="json"), member: value}
        key = f"x/{document['seq']:012d}.json"
        result = check_checkpoint(key, canonical_json(document).encode(), pinned)
        assert isinstance(result, BadCheckpoint), member
        assert result.reason == "bad signature (checkpoint altered or forged)"


def test_malformed_checkpoints_are_bad_not_errors(chain: ChainFactory) -> None:
    _lines, checkpoint, signer = _checkpoint(chain)
    pinned = {fingerprint_public_key(signer.public)}
    cases = {
        b"{not json": "not valid JSON",
        b'{"format": "envsteward-audit-checkpoint"}': "invalid checkpoint",
    }
    for data, reason in cases.items():
        result = check_checkpoint("x/000000000004.json", data, pinned)
        assert isinstance(result, BadCheckpoint)
        assert result.reason.startswith(reason)
    moved = check_checkpoint("x/000000000005.json", checkpoint.to_bytes(), pinned)
    assert isinstance(moved, BadCheckpoint)
    assert "stored as 5" in moved.reason
    other = ECSigner()
    swapped = {**checkpoint.model_dump(mode="json"), "public_key": base64.b64encode(other.public).decode()}
    result = check_checkpoint("x/000000000004.json", canonical_json(swapped).encode(), pinned)
    assert isinstance(result, BadCheckpoint)
    assert result.reason == "key_fingerprint does not match its public key"


def test_the_chain_against_a_checkpoint(chain: ChainFactory) -> None:
    lines, checkpoint, _signer = _checkpoint(chain)
    pin = (checkpoint.seq, checkpoint.head_hash)
    assert verify_lines(lines, checkpoint=pin).ok
    rewritten = verify_lines(t.rewrite_consistently(lines, 2, "actor", "mallory"), checkpoint=pin)
    assert (rewritten.ok, rewritten.kind, rewritten.first_bad_seq) == (False, REWRITTEN, 4)
    # A rewrite after the checkpoint is beyond its reach (those records are unanchored).
    assert verify_lines(t.rewrite_consistently(lines, 5, "actor", "mallory"), checkpoint=pin).ok
    cut = verify_lines(lines[:3], checkpoint=pin)
    assert (cut.ok, cut.kind, cut.first_bad_seq) == (False, REMOVED, 4)


def test_signature_is_valid_never_raises() -> None:
    signer = ECSigner()
    assert not signature_is_valid("ecdsa-p256-sha256", signer.public, b"m", b"not a signature")
    assert not signature_is_valid("ed25519", signer.public, b"m", b"x" * 64)
    assert not signature_is_valid("ecdsa-p256-sha256", b"not a key", b"m", b"x")


def test_pin_file_is_appended_once(tmp_path: Path) -> None:
    pins = tmp_path / "cfg" / "pins"
    fingerprint = "sha256:" + "ab" * 32
    pin_fingerprint(pins, fingerprint, "first")
    pin_fingerprint(pins, fingerprint, "again")
    assert pins.read_text(encoding="utf-8") == f"{fingerprint}  # first\n"
    assert oct(pins.stat().st_mode & 0o777) == "0o644"
