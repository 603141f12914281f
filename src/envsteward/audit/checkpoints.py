"""Signed checkpoints of the audit log: what makes a *consistent* rewrite of the chain detectable.

Why
---
The hash chain (:mod:`envsteward.audit.verify`) proves only that the log is internally consistent: whoever
can write the log can change a record and recompute every hash after it. A checkpoint is a signed statement
"record ``seq`` of this log had hash ``head_hash`` at ``time``", made with a key that the log's writer
cannot use to forge one. Because every hash commits to all records before it, a valid checkpoint at ``seq``
fixes records 1..seq: rewriting any of them, or cutting the log below ``seq``, no longer verifies.

Trust model
-----------
Three parties: the *log store* (``<home>/audit/`` or the bucket's ``audit/`` prefix, writable by every
envsteward process and by anyone who gets at that folder or bucket), the *signer* (holds the private key)
and the *verifier's trust anchors* (which public keys it accepts). The design assumes an attacker who can
rewrite the log store and the checkpoint store but cannot use the signing key and cannot change the trust
anchors.

- Signer: ``vault_transit`` (Vault signs; the private key never leaves Vault, every use is in Vault's own
  audit device, and a policy can give envsteward ``sign`` without ``export``), ``aws_kms`` (KMS ``Sign`` with
  an asymmetric key; the private key never leaves KMS), or ``local`` (the embedded default: an ed25519 key
  in a PEM file, mode 0600, OUTSIDE ``ENVSTEWARD_HOME``, by default in ``~/.config/envsteward``). The local
  key protects against whoever can reach the data folder, a copy or a mount of it, or the bucket, not
  against the user account that runs envsteward: for that, use Vault or KMS.
- Checkpoints: one JSON object per checkpoint, apart from the log (``<home>/audit-checkpoints/`` or another
  S3 prefix/bucket, with Object Lock retention where the bucket has it, so that they cannot be deleted or
  replaced there). Each carries the signer's public key, but only as a convenience: a checkpoint is
  **trusted only when the SHA-256 fingerprint of its public key is pinned**, so an attacker who rewrites
  the checkpoints with a key of their own gains nothing.
- Pins (trust anchors), all read-only for ``verify``: ``audit.trusted_keys`` in settings (environment or
  deployment configuration), the pin file ``audit.trusted_keys_file`` (outside home; the local signer adds
  its fingerprint there when it creates its key, and only then), and, for Vault and KMS, the public keys
  the service itself reports for the configured key (read over the authenticated client).
- Verification needs only public keys: ``envsteward audit verify`` never creates a key, never writes a
  checkpoint and never calls the signer's ``sign``.

What ``verify`` concludes
-------------------------
Checkpoints are read newest first; the first valid one (schema, pinned key, good signature) is the anchor.
Newer ones that are malformed, signed by an unpinned key or carry a bad signature are reported (and make the
result a failure) and skipped. The chain must then verify *and* hold record ``seq`` with exactly the signed
hash: otherwise the log was rewritten (or cut below ``seq``). Records after the anchor are reported as
unanchored (count and first sequence). It fails closed when the log has records but no checkpoint can be
found at all (the checkpoint store is missing or was emptied, or checkpoints were never written: run
``envsteward audit checkpoint`` after checking the log), and when more than ``checkpoint_every`` records
follow the latest valid checkpoint (newer checkpoints were deleted, or signing has been failing).

Limits (by design): records appended after the latest checkpoint are protected by the chain only; a
checkpoint is bound to a log's content, not to its location, so replacing one whole log, checkpoints
included, with another log signed by the same key is not detected.

Document (stored as canonical JSON; the signature covers every other member, after a domain tag)::

    {"format": "envsteward-audit-checkpoint", "version": 1, "seq": 200, "head_hash": "<64 hex>",
     "time": "2026-03-01T09:30:00.000000Z",
     "signer": {"kind": "local", "key_id": "...", "key_version": 1, "algorithm": "ed25519"},
     "public_key": "<base64 SubjectPublicKeyInfo DER>", "key_fingerprint": "sha256:<64 hex>",
     "signature": "<base64>"}

Signed bytes: ``b"envsteward-audit-checkpoint-v1\\0" + canonical_json(document without "signature")``.
Algorithms: ``ed25519``, ``ecdsa-p256-sha256`` and ``ecdsa-p384-sha384`` (DER signatures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from envsteward.audit.record import HASH_PATTERN, canonical_json, first_validation_error, format_time
from envsteward.audit.verify import VerifyResult, verify_lines
from envsteward.errors import ConfigurationError, EnvstewardError

if TYPE_CHECKING:
    from envsteward.audit.log import AuditLog
    from envsteward.audit.record import AuditRecord
    from envsteward.ports import ObjectStore
    from envsteward.settings import Settings

logger = logging.getLogger(__name__)

FORMAT = "envsteward-audit-checkpoint"
VERSION = 1
DOMAIN_TAG = b"envsteward-audit-checkpoint-v1\0"
ALGORITHMS = ("ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384")
FINGERPRINT_PATTERN = r"^sha256:[0-9a-f]{64}$"
_FINGERPRINT_RE = re.compile(FINGERPRINT_PATTERN)
_SEQ_DIGITS = 12
_MAX_CHECKPOINT_BYTES = 16 * 1024

SYSTEM = "audit-checkpoints"


# ---------------------------------------------------------------------------------------------------------
# Signers (implemented in adapters/: local_signing, vault, aws_kms)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """The key a signer will sign with: its id, version, algorithm and public key (SubjectPublicKeyInfo
    DER). Public information only."""

    key_id: str
    key_version: int | None
    algorithm: str
    public_key: bytes

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, key_version={self.key_version!r})"


class CheckpointSigner(Protocol):
    """Signs checkpoint bytes with a key the log's writer cannot use to forge.

    Building a signer must have no side effect (no key created, no network call): ``verify`` builds one to
    ask for :meth:`trusted_public_keys`.
    """

    @property
    def kind(self) -> str: ...

    def signing_key(self) -> SigningKey:
        """The key :meth:`sign` uses (the local signer creates its key here, on first use)."""
        ...

    def sign(self, message: bytes, key: SigningKey) -> bytes:
        """The signature of ``message`` by ``key`` (that exact version)."""
        ...

    def trusted_public_keys(self) -> list[bytes]:
        """Public keys (SPKI DER) the key's own service vouches for, read-only; [] when it vouches for none
        (the local signer: its key is pinned in the pin file instead)."""
        ...


def fingerprint_public_key(public_key_der: bytes) -> str:
    """``sha256:<hex>`` of a SubjectPublicKeyInfo DER: the form pins take. Pure."""
    return "sha256:" + hashlib.sha256(public_key_der).hexdigest()


def signature_algorithm_of(public_key_der: bytes) -> str:
    """The checkpoint algorithm name for a public key. Raises ValueError for an unsupported key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    key = load_der_public_key(public_key_der)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "ecdsa-p256-sha256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1":
        return "ecdsa-p384-sha384"
    raise ValueError("unsupported checkpoint signing key (use ed25519, ECDSA P-256 or P-384)")


def signature_is_valid(algorithm: str, public_key_der: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``algorithm``'s signature of ``message`` by ``public_key_der``. Pure; never
    raises (a malformed key or signature is simply not valid)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        if signature_algorithm_of(public_key_der) != algorithm:
            return False
        key = load_der_public_key(public_key_der)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA256() if algorithm == "ecdsa-p256-sha256" else hashes.SHA384()
            key.verify(signature, message, ec.ECDSA(digest))
        else:  # pragma: no cover - signature_algorithm_of refused it
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------------------


class SignerInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Annotated[StrictStr, Field(min_length=1)]
    key_id: Annotated[StrictStr, Field(min_length=1)]
    key_version: StrictInt | None = None
    algorithm: Literal["ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384"]


class Checkpoint(BaseModel):
    """One signed checkpoint (the module docstring shows its stored form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["envsteward-audit-checkpoint"]
    version: Literal[1]
    seq: Annotated[StrictInt, Field(ge=1)]
    head_hash: Annotated[StrictStr, Field(pattern=HASH_PATTERN)]
    time: Annotated[StrictStr, Field(min_length=1)]
    signer: SignerInfo
    public_key: StrictStr
    key_fingerprint: Annotated[StrictStr, Field(pattern=FINGERPRINT_PATTERN)]
    signature: StrictStr

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return checkpoint_message(self.model_dump(mode="json", exclude={"signature"}))

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json")).encode("utf-8") + b"\n"

    def public_key_der(self) -> bytes:
        """The embedded public key. Raises ValueError when it is not base64."""
        return base64.b64decode(self.public_key, validate=True)

    def time_value(self) -> datetime:
        """``time`` as an aware datetime. Raises ValueError when it is not RFC 3339."""
        return datetime.fromisoformat(self.time.replace("Z", "+00:00"))

    def summary(self) -> dict[str, Any]:
        """What ``verify --json`` prints about it (no signature bytes)."""
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "time": self.time,
            "signer": self.signer.model_dump(mode="json"),
            "key_fingerprint": self.key_fingerprint,
        }


def checkpoint_message(body: dict[str, Any]) -> bytes:
    """The signed bytes for a checkpoint body (every member but ``signature``). Pure."""
    return DOMAIN_TAG + canonical_json(body).encode("utf-8")


def make_checkpoint(seq: int, head_hash: str, time: datetime, signer: CheckpointSigner) -> Checkpoint:
    """Build and sign the checkpoint of record ``seq``. Calls the signer (Vault, KMS or the local key).

    Raises the signer's errors, and IntegrityError when the signer answered with a key that is not the one
    it signed with (its signature does not verify).
    """
    from envsteward.errors import IntegrityError

    key = signer.signing_key()
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "seq": seq,
        "head_hash": head_hash,
        "time": format_time(time),
        "signer": {
            "kind": signer.kind,
            "key_id": key.key_id,
            "key_version": key.key_version,
            "algorithm": key.algorithm,
        },
        "public_key": base64.b64encode(key.public_key).decode("ascii"),
        "key_fingerprint": fingerprint_public_key(key.public_key),
    }
    signature = signer.sign(checkpoint_message(body), key)
    checkpoint = Checkpoint.model_validate({**body, "signature": base64.b64encode(signature).decode("ascii")})
    if not signature_is_valid(key.algorithm, key.public_key, checkpoint.signed_bytes(), signature):
        raise IntegrityError(
            "the signer's signature does not verify with the public key it reported",
            system=SYSTEM,
            operation="sign checkpoint",
        )
    return checkpoint


@dataclass(frozen=True)
class BadCheckpoint:
    """A checkpoint that was skipped, and why (never quotes its content beyond seq and key fingerprint)."""

    key: str
    seq: int | None
    reason: str


def check_checkpoint(key: str, data: bytes, trusted: set[str]) -> Checkpoint | BadCheckpoint:
    """Parse and check one stored checkpoint against the pinned fingerprints ``trusted``. Pure."""
    seq_in_key = _seq_of_key(key)
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return BadCheckpoint(key, seq_in_key, "not valid JSON")
    try:
        checkpoint = Checkpoint.model_validate(raw)
    except ValidationError as exc:
        return BadCheckpoint(key, seq_in_key, f"invalid checkpoint: {first_validation_error(exc)}")
    if seq_in_key is not None and seq_in_key != checkpoint.seq:
        return BadCheckpoint(key, seq_in_key, f"names record {checkpoint.seq} but is stored as {seq_in_key}")
    try:
        public_key = checkpoint.public_key_der()
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError):
        return BadCheckpoint(key, checkpoint.seq, "public key or signature is not base64")
    if fingerprint_public_key(public_key) != checkpoint.key_fingerprint:
        return BadCheckpoint(key, checkpoint.seq, "key_fingerprint does not match its public key")
    if checkpoint.key_fingerprint not in trusted:
        return BadCheckpoint(
            key,
            checkpoint.seq,
            f"signed by key {checkpoint.key_fingerprint}, which is not pinned (untrusted)",
        )
    if not signature_is_valid(checkpoint.signer.algorithm, public_key, checkpoint.signed_bytes(), signature):
        return BadCheckpoint(key, checkpoint.seq, "bad signature (checkpoint altered or forged)")
    return checkpoint


def _seq_of_key(key: str) -> int | None:
    match = re.search(r"(\d{%d})\.json$" % _SEQ_DIGITS, key)  # noqa: UP031
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------------------
# Where checkpoints are kept
# ---------------------------------------------------------------------------------------------------------


class CheckpointStore:
    """Checkpoints as objects ``<prefix><seq, 12 digits>.json`` in an ObjectStore (a folder apart from the
    log for the embedded default; an S3 prefix or bucket, with Object Lock retention set by the S3 adapter,
    otherwise). Created with ``put_if_absent``: a checkpoint is never replaced."""

    def __init__(self, store: ObjectStore, prefix: str = "audit-checkpoints/") -> None:
        self.store = store
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"CheckpointStore({self.store!r}, prefix={self.prefix!r})"

    @property
    def location(self) -> str:
        return f"{self.store!r} {self.prefix}"

    def key(self, seq: int) -> str:
        return f"{self.prefix}{seq:0{_SEQ_DIGITS}d}.json"

    def put(self, checkpoint: Checkpoint) -> bool:
        """Store ``checkpoint``; False when one for that record exists already. Raises the store's errors."""
        return self.store.put_if_absent(self.key(checkpoint.seq), checkpoint.to_bytes())

    def keys_newest_first(self) -> list[str]:
        """Every object key under the prefix, highest sequence first (one listing)."""
        return sorted((info.key for info in self.store.list(self.prefix)), reverse=True)

    def read(self, key: str) -> bytes:
        """One stored checkpoint (at most 16 KiB are kept: a bigger object is not a checkpoint)."""
        return self.store.get_bytes(key)[:_MAX_CHECKPOINT_BYTES]


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointReport:
    """What the checkpoints say about the log. ``problem`` is set when they make the verification fail."""

    enabled: bool
    location: str | None = None
    checkpoint: Checkpoint | None = None
    bad: tuple[BadCheckpoint, ...] = ()
    unanchored_count: int = 0
    first_unanchored_seq: int | None = None
    problem: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "location": self.location,
            "checkpoint": self.checkpoint.summary() if self.checkpoint else None,
            "bad": [{"key": b.key, "seq": b.seq, "reason": b.reason} for b in self.bad],
            "unanchored_count": self.unanchored_count,
            "first_unanchored_seq": self.first_unanchored_seq,
            "problem": self.problem,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class AuditVerification:
    """The chain's result and the checkpoints' report; ``ok`` only when both are fine."""

    chain: VerifyResult
    checkpoints: CheckpointReport = field(default_factory=lambda: CheckpointReport(enabled=False))

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.checkpoints.problem is None

    def failure_line(self) -> str | None:
        """One line naming the first bad sequence, or None when ``ok``."""
        if not self.chain.ok:
            where = f" (line {self.chain.line})" if self.chain.line else ""
            return f"audit log BROKEN at record {self.chain.first_bad_seq}{where}: {self.chain.reason}"
        return self.checkpoints.problem

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.chain.to_dict(),
            "ok": self.ok,
            "checkpoints": self.checkpoints.to_dict(),
            "failure": self.failure_line(),
        }


@dataclass(frozen=True)
class CheckpointOutcome:
    """What a checkpoint attempt did: ``written`` the new checkpoint, or ``skipped`` with the reason."""

    checkpoint: Checkpoint | None
    written: bool
    reason: str


# ---------------------------------------------------------------------------------------------------------
# The checkpointer: decides when to write, writes, verifies
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointPolicy:
    every: int = 100
    interval: timedelta = timedelta(hours=1)


class Checkpointer:
    """Writes signed checkpoints of one audit log and verifies the log against them.

    ``signer_factory`` is called lazily (building it must have no side effect); the local signer creates its
    key only inside ``sign``, which only the writing methods call.
    """

    def __init__(
        self,
        store: CheckpointStore,
        signer_factory: Callable[[], CheckpointSigner],
        *,
        policy: CheckpointPolicy | None = None,
        trusted_keys: Iterable[str] = (),
        trusted_keys_file: Path | None = None,
    ) -> None:
        self.store = store
        self.signer_factory = signer_factory
        self.policy = policy or CheckpointPolicy()
        self.trusted_keys = tuple(trusted_keys)
        self.trusted_keys_file = trusted_keys_file
        self._lock = threading.Lock()
        self._last: tuple[int, datetime] | None = None
        """(seq, time) of the newest checkpoint this process knows about: decides when the next is due."""
        self._signer: CheckpointSigner | None = None

    def __repr__(self) -> str:
        return f"Checkpointer({self.store!r})"

    @property
    def location(self) -> str:
        return self.store.location

    def signer(self) -> CheckpointSigner:
        if self._signer is None:
            self._signer = self.signer_factory()
        return self._signer

    # -- trust --------------------------------------------------------------------------------------------

    def trusted_fingerprints(self) -> tuple[set[str], list[str]]:
        """The pinned fingerprints and notes about sources that could not be read. Reads the pin file and
        asks the signer's service for its public keys (Vault read key / KMS GetPublicKey); never raises for
        an unreachable source (it then vouches for nothing, which fails closed)."""
        trusted: set[str] = set()
        notes: list[str] = []
        for pin in self.trusted_keys:
            if _FINGERPRINT_RE.match(pin.strip().lower()):
                trusted.add(pin.strip().lower())
            else:
                notes.append("a pinned key in settings is not of the form sha256:<64 hex digits>; ignored")
        if self.trusted_keys_file is not None:
            trusted |= _read_pin_file(self.trusted_keys_file, notes)
        try:
            trusted |= {fingerprint_public_key(key) for key in self.signer().trusted_public_keys()}
        except EnvstewardError as exc:
            notes.append(f"could not read the signer's public keys ({type(exc).__name__}: {exc})")
        return trusted, notes

    # -- verify (read-only) --------------------------------------------------------------------------------

    def latest_valid(self, trusted: set[str]) -> tuple[Checkpoint | None, list[BadCheckpoint]]:
        """The newest checkpoint that checks out and the bad ones newer than it (newest first). Reads the
        checkpoint store only."""
        bad: list[BadCheckpoint] = []
        for key in self.store.keys_newest_first():
            result = check_checkpoint(key, self.store.read(key), trusted)
            if isinstance(result, Checkpoint):
                return result, bad
            bad.append(result)
        return None, bad

    def verify(self, log: AuditLog, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Verify the chain against the latest valid checkpoint (and ``anchor``, if given). Read-only: reads
        the log, the checkpoints and the pins; creates no key and writes nothing. Raises the stores' errors
        (a missing checkpoint folder is simply empty)."""
        trusted, notes = self.trusted_fingerprints()
        checkpoint, bad = self.latest_valid(trusted)
        chain = verify_lines(
            log.sink.read_lines(),
            anchor=anchor,
            checkpoint=(checkpoint.seq, checkpoint.head_hash) if checkpoint else None,
        )
        report = self._report(chain, checkpoint, bad, trusted=trusted, notes=notes)
        return AuditVerification(chain=chain, checkpoints=report)

    def _report(
        self,
        chain: VerifyResult,
        checkpoint: Checkpoint | None,
        bad: list[BadCheckpoint],
        *,
        trusted: set[str],
        notes: list[str],
    ) -> CheckpointReport:
        head = chain.last_seq
        anchored = checkpoint.seq if checkpoint else 0
        unanchored = max(0, head - anchored) if chain.ok else 0
        problem: str | None = None
        if bad:
            first = bad[0]
            what = f"record {first.seq}" if first.seq is not None else first.key
            problem = (
                f"audit checkpoints BROKEN: {len(bad)} checkpoint(s) skipped, the newest ({what}): "
                f"{first.reason}" + (f"; verified against checkpoint {checkpoint.seq}" if checkpoint else "")
            )
        elif checkpoint is None and head > 0 and chain.ok:
            if not trusted:
                problem = (
                    "audit checkpoints UNTRUSTED: no pinned checkpoint key (set "
                    f"ENVSTEWARD_AUDIT__TRUSTED_KEYS or restore {self.trusted_keys_file}); "
                    f"records 1..{head} unanchored"
                )
            else:
                problem = (
                    f"audit checkpoints MISSING at {self.location}: the log has {head} record(s) and no "
                    "checkpoint (store missing or emptied?); check the log, then run `envsteward audit "
                    "checkpoint`"
                )
        elif checkpoint is not None and chain.ok and unanchored > self.policy.every:
            problem = (
                f"audit checkpoints OVERDUE: {unanchored} records after checkpoint {checkpoint.seq} "
                f"(one is written every {self.policy.every}); were newer checkpoints deleted, or is signing "
                "failing? Check the log, then run `envsteward audit checkpoint`"
            )
        return CheckpointReport(
            enabled=True,
            location=self.location,
            checkpoint=checkpoint,
            bad=tuple(bad),
            unanchored_count=unanchored,
            first_unanchored_seq=(anchored + 1) if unanchored else None,
            problem=problem,
            notes=tuple(notes),
        )

    # -- write ----------------------------------------------------------------------------------------------

    def checkpoint(self, log: AuditLog, now: datetime | None = None) -> CheckpointOutcome:
        """Sign and store a checkpoint of the log's head, after verifying the whole log against the latest
        valid checkpoint (a damaged or rewritten log is never signed). Skips when the latest checkpoint is
        already at the head. Calls the signer (may create the local key) and writes the checkpoint store.

        Raises IntegrityError when the log does not verify; the signer's and the stores' errors.
        """
        from envsteward.errors import IntegrityError

        verification = self.verify(log)
        chain = verification.chain
        if not chain.ok or verification.checkpoints.bad:
            raise IntegrityError(
                "refusing to sign a checkpoint: "
                + (verification.failure_line() or "the log does not verify"),
                system=SYSTEM,
                operation="checkpoint",
            )
        latest = verification.checkpoints.checkpoint
        if chain.last_seq == 0:
            return CheckpointOutcome(None, False, "the audit log is empty")
        if latest is not None and latest.seq >= chain.last_seq:
            self._remember(latest.seq, latest.time_value())
            return CheckpointOutcome(latest, False, f"record {latest.seq} (the head) is checkpointed already")
        moment = now or datetime.now(UTC)
        checkpoint = make_checkpoint(chain.last_seq, chain.last_hash, moment, self.signer())
        written = self.store.put(checkpoint)
        self._remember(checkpoint.seq, moment)
        if not written:
            return CheckpointOutcome(checkpoint, False, f"record {checkpoint.seq} was checkpointed meanwhile")
        return CheckpointOutcome(checkpoint, True, f"checkpoint of record {checkpoint.seq} written")

    def _remember(self, seq: int, moment: datetime) -> None:
        with self._lock:
            if self._last is None or seq >= self._last[0]:
                self._last = (seq, moment)

    def is_due(self, seq: int, now: datetime) -> bool:
        """Whether record ``seq`` (just appended at ``now``) calls for a checkpoint: none known yet, or
        ``every`` records or ``interval`` since the newest one this process knows of. Reads the checkpoint
        store once per process (to learn the newest)."""
        with self._lock:
            last = self._last
        if last is None:
            last = self._newest_stored()
            if last is None:
                return True
            self._remember(*last)
        return seq - last[0] >= self.policy.every or now - last[1] >= self.policy.interval

    def _newest_stored(self) -> tuple[int, datetime] | None:
        for key in self.store.keys_newest_first():
            try:
                checkpoint = Checkpoint.model_validate_json(self.store.read(key))
                return checkpoint.seq, checkpoint.time_value()
            except (ValidationError, ValueError):
                continue
        return None

    def after_append(self, log: AuditLog, record: AuditRecord) -> None:
        """Write a checkpoint when one is due after ``record`` was appended. Never raises: the record is
        stored already, so a failure is logged (without any secret) and retried at the next append."""
        try:
            if self.is_due(record.seq, record.time):
                outcome = self.checkpoint(log, now=record.time)
                logger.debug("audit checkpoint: %s", outcome.reason)
        except EnvstewardError as exc:
            logger.warning(
                "could not write an audit checkpoint after record %s (%s: %s); the next append retries",
                record.seq,
                type(exc).__name__,
                exc,
            )


def _read_pin_file(path: Path, notes: list[str]) -> set[str]:
    """Fingerprints in a pin file (``sha256:<hex>`` first on a line; ``#`` comments). Local file only."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(
            f"cannot read the pin file {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
        )
        return set()
    pins: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if _FINGERPRINT_RE.match(words[0].lower()):
            pins.add(words[0].lower())
        else:
            notes.append(f"{path}:{number}: not a sha256:<64 hex digits> fingerprint; ignored")
    return pins


def pin_fingerprint(path: Path, fingerprint: str, comment: str) -> None:
    """Add ``fingerprint`` to the pin file (created 0644 in a 0700 folder) unless it is there. Atomic
    replace; local files only. Raises ConfigurationError when it cannot be written."""
    import contextlib
    import os
    import secrets

    from envsteward._fsync import fsync_dir

    existing = _read_pin_file(path, [])
    if fingerprint in existing:
        return
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise ConfigurationError(f"cannot read the pin file {path}: {exc.strerror}", system=SYSTEM) from None
    if old and not old.endswith("\n"):
        old += "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as handle:
            handle.write(f"{old}{fingerprint}  # {comment}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the pin file {path}: {exc.strerror or type(exc).__name__}", system=SYSTEM
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def open_checkpointer(
    settings: Settings,
    store: ObjectStore,
    prefix: str,
    signer_factory: Callable[[], CheckpointSigner],
) -> Checkpointer | None:
    """The checkpointer that settings describe over ``prefix`` in ``store`` (None when ``audit.signer`` is
    ``none``). Touches nothing."""
    audit = settings.audit
    if audit.signer == "none":
        return None
    return Checkpointer(
        CheckpointStore(store, prefix=prefix),
        signer_factory,
        policy=CheckpointPolicy(
            every=audit.checkpoint_every, interval=timedelta(seconds=audit.checkpoint_interval_seconds)
        ),
        trusted_keys=audit.trusted_keys,
        trusted_keys_file=audit.trusted_keys_path(),
    )


def iter_checkpoints(store: CheckpointStore) -> Iterator[tuple[str, bytes]]:
    """Every stored checkpoint, newest first (for tools and tests)."""
    for key in store.keys_newest_first():
        yield key, store.read(key)
