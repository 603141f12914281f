"""The rollback journal: what a promotion's target looked like before the first write, kept durably.

A promotion writes its journal to the shared state store (key ``promotion-journal:<target>``) *before* its
first write, and removes it only when the apply is verified or the rollback is verified. Any process can
rebuild the restorers from it alone (plus the services' clients): the run itself when it rolls back, or a
sweep (:mod:`envsteward.promotion.repair`) after the run was killed or ran out of rollback budget.

What the journal holds per touched key, never a secret value in plain text:

* Vault KV v2: each secret path a write may touch and its version then (``null``: it did not exist); the
  old data is read back from that version;
* SSM Parameter Store: each parameter name and its version then (``null``: absent); value, type and KMS key
  come back from GetParameterHistory;
* Secrets Manager: each secret id and its AWSCURRENT VersionId then (``null``: absent); restoring moves the
  AWSCURRENT label back to that version;
* a file: a 0600 copy of its bytes under ``<home>/journal/`` (a file may hold literal secrets), and only
  that copy's path, SHA-256 and the file's mode in the journal (``null``: the file did not exist);
* any other writable source: the old leaf value when the key is not secret (the plan never changes secret
  keys, so this is a second line of defence); a secret-looking key is recorded as needing a manual check.

One journal per target: the target's promotion lease admits one promotion at a time, and a journal left by
another run (a pending rollback) refuses a new one (:func:`ensure_no_pending`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsteward.errors import ConflictError, IntegrityError, NotFoundError, PermanentError
from envsteward.ports import JSONValue
from envsteward.promotion.model import PromotionPlan
from envsteward.scan.live import call_with_retries
from envsteward.tree import is_missing, value_at

if TYPE_CHECKING:
    from envsteward.catalog.models import SourceSpec
    from envsteward.ports import ConfigSource, StateStore
    from envsteward.promotion.deps import PromotionServices

JOURNAL_PREFIX = "promotion-journal:"
INDEX_KEY = "promotion-journals"
"""Targets that may have a journal (the state store cannot list keys); the sweep also checks the catalog."""
DEFAULT_APPLY_WINDOW = timedelta(minutes=30)
"""How long after the journal is written a run may still be applying; past it the sweep takes over."""
_SSM_BATCH = 10  # GetParameters takes at most 10 names


class JournalStatus(StrEnum):
    APPLYING = "applying"
    """Written before the first write; removed when the apply is verified."""
    ROLLING_BACK = "rolling_back"
    """The run is restoring the target."""
    ROLLBACK_PENDING = "rollback_pending"
    """The run's rollback budget ran out: the sweep must finish it (the lease stays held)."""


class PendingRollbackError(ConflictError):
    """The target has a journal of another run: its rollback must finish before anything else is written."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _EntryBase(_Model):
    source: str
    """The target's catalog source the entry belongs to."""
    paths: tuple[str, ...]
    """The plan's change paths (``app.database.pool_size``) this entry can hold (named when left changed).
    Not called ``keys``: Prefect reads a model with a ``keys`` attribute as a mapping."""


class VaultSecretEntry(_EntryBase):
    kind: Literal["vault_kv"] = "vault_kv"
    mount: str
    path: str
    version: int | None
    """The secret's current version before the first write; None: it did not exist."""

    @property
    def label(self) -> str:
        return f"vault {self.mount}/{self.path}"


class SSMParameterEntry(_EntryBase):
    kind: Literal["ssm"] = "ssm"
    name: str
    version: int | None
    """The parameter's version before the first write; None: it did not exist."""
    parameter_type: str | None = None
    region: str | None = None

    @property
    def label(self) -> str:
        return f"ssm {self.name}"


class SecretsManagerEntry(_EntryBase):
    kind: Literal["secrets_manager"] = "secrets_manager"
    secret_id: str
    version_id: str | None
    """The AWSCURRENT version before the first write; None: the secret did not exist."""
    region: str | None = None

    @property
    def label(self) -> str:
        return f"secretsmanager {self.secret_id}"


class FileEntry(_EntryBase):
    kind: Literal["file"] = "file"
    path: str
    copy_path: str | None
    """A 0600 copy of the old bytes (None: the file did not exist)."""
    sha256: str | None
    mode: int | None = None

    @property
    def label(self) -> str:
        return f"file {self.path}"


class LeafEntry(_EntryBase):
    kind: Literal["leaf"] = "leaf"
    key_path: tuple[str, ...]
    state: Literal["value", "absent", "manual"]
    """value: ``value`` is the old (non-secret) leaf; absent: the key did not exist; manual: a secret-looking
    key whose old value is not journaled (a person must check it)."""
    value: JSONValue = None

    @property
    def label(self) -> str:
        return f"{self.source} {'/'.join(self.key_path)}"


JournalEntry = Annotated[
    VaultSecretEntry | SSMParameterEntry | SecretsManagerEntry | FileEntry | LeafEntry,
    Field(discriminator="kind"),
]


class RepairClaim(_Model):
    """A sweep working on this journal until ``until`` (another sweep leaves it alone meanwhile)."""

    by: str
    until: datetime


class RollbackJournal(_Model):
    """One target's journal (JSON in the state store). Holds references and versions, no secret value."""

    format: Literal[1] = 1
    run_id: str
    source: str
    target: str
    plan_hash: str
    created_at: datetime
    updated_at: datetime
    apply_deadline: datetime
    status: JournalStatus
    changes: tuple[str, ...]
    entries: tuple[JournalEntry, ...]
    keys_left: tuple[str, ...] = ()
    """The keys the last rollback attempt could not restore (every key of an unreachable entry)."""
    last_error: str | None = None
    attempts: int = 0
    claim: RepairClaim | None = None

    def __repr__(self) -> str:
        return (
            f"RollbackJournal(target={self.target!r}, run_id={self.run_id!r}, status={self.status.value!r}, "
            f"entries={len(self.entries)})"
        )


def journal_key(target: str) -> str:
    return f"{JOURNAL_PREFIX}{target}"


def parse_journal(value: Any, target: str) -> RollbackJournal:
    """Validate a stored journal. Raises IntegrityError naming the key and the first bad field."""
    try:
        return RollbackJournal.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise IntegrityError(
            f"the rollback journal {journal_key(target)!r} is damaged at {where}: {first['msg']}; "
            "restore the target by hand, then delete the key",
            system="promotion",
            operation="journal read",
        ) from None


def _dump(journal: RollbackJournal) -> dict[str, Any]:
    return journal.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------------------
# Tree helpers (plain nested mappings)
# ---------------------------------------------------------------------------------------------------------


def _is_secret_path(keys: Sequence[str], plan: PromotionPlan, path: str) -> bool:
    from envsteward.drift import is_secret_key

    secret_paths = {check.path for check in plan.secret_checks}
    return path in secret_paths or any(is_secret_key(key) for key in keys)


# ---------------------------------------------------------------------------------------------------------
# Capturing the previous state
# ---------------------------------------------------------------------------------------------------------


def _vault_entries(
    services: PromotionServices, spec: Any, changes: Sequence[tuple[tuple[str, ...], str]]
) -> list[VaultSecretEntry]:
    client = services.vault_client()
    mount, base = spec.kv_mount, spec.kv_path
    covers: dict[str, list[str]] = {}
    for keys, path in changes:
        # a write to keys lands in the deepest existing secret along them, or creates <base>/<keys[:-1]>
        for split in range(len(keys)):
            secret = "/".join(part for part in (base, *keys[:split]) if part)
            if secret:
                covers.setdefault(secret, []).append(path)

    def current(secret: str) -> int | None:
        try:
            meta = client.kv_metadata(mount, secret)
        except NotFoundError:
            return None
        # a soft-deleted latest version is journaled as it is: restoring it then needs a person, which is
        # better than deleting the secret's whole history
        return meta.current_version or None

    return [
        VaultSecretEntry(
            source=spec.name,
            paths=tuple(dict.fromkeys(paths)),
            mount=mount,
            path=secret,
            version=call_with_retries(lambda secret=secret: current(secret)),  # type: ignore[misc]
        )
        for secret, paths in covers.items()
    ]


def _ssm_entries(
    services: PromotionServices, spec: Any, changes: Sequence[tuple[tuple[str, ...], str]]
) -> list[SSMParameterEntry]:
    from envsteward.adapters.aws_errors import aws_errors

    prefix = "/" + spec.prefix.strip("/")
    names: dict[str, list[str]] = {}
    for keys, path in changes:
        names.setdefault(f"{prefix}/{'/'.join(keys)}", []).append(path)
    found: dict[str, tuple[int, str]] = {}
    ordered = list(names)
    for start in range(0, len(ordered), _SSM_BATCH):
        batch = ordered[start : start + _SSM_BATCH]

        def fetch(batch: list[str] = batch) -> list[Any]:
            # WithDecryption=False: only the version and type are kept, never the value
            with aws_errors("ssm", "get_parameters", batch[0]):
                response = services.aws_clients().ssm().get_parameters(Names=batch, WithDecryption=False)
            return list(response.get("Parameters") or [])

        for parameter in call_with_retries(fetch):
            found[str(parameter["Name"])] = (int(parameter["Version"]), str(parameter["Type"]))
    return [
        SSMParameterEntry(
            source=spec.name,
            paths=tuple(dict.fromkeys(paths)),
            name=name,
            version=found[name][0] if name in found else None,
            parameter_type=found[name][1] if name in found else None,
        )
        for name, paths in names.items()
    ]


def _secrets_manager_entries(
    services: PromotionServices, spec: Any, changes: Sequence[tuple[tuple[str, ...], str]]
) -> list[SecretsManagerEntry]:
    from envsteward.adapters.aws_secrets import SecretsManager

    manager = SecretsManager(services.aws_clients())
    prefix = spec.prefix.strip("/")
    covers: dict[str, list[str]] = {}
    for keys, path in changes:
        # a write lands in the deepest existing JSON secret along the keys, or creates <prefix>/<keys[:-1]>
        for split in range(len(keys)):
            secret = "/".join(part for part in (prefix, *keys[:split]) if part)
            if secret:
                covers.setdefault(secret, []).append(path)

    def current(secret: str) -> str | None:
        try:
            return manager.describe(secret).current_version_id
        except NotFoundError:
            return None

    return [
        SecretsManagerEntry(
            source=spec.name,
            paths=tuple(dict.fromkeys(paths)),
            secret_id=secret,
            version_id=call_with_retries(lambda secret=secret: current(secret)),  # type: ignore[misc]
        )
        for secret, paths in covers.items()
    ]


def copies_folder(services: PromotionServices, target: str, run_id: str) -> Path:
    """Where a run's file copies live: ``<home>/journal/<target>/<run id>/`` (0700)."""
    from envsteward.adapters.state_fs import file_name_for_key

    return services.settings.home / "journal" / file_name_for_key(target) / file_name_for_key(run_id)


def _file_entry(
    services: PromotionServices,
    spec: Any,
    source: ConfigSource | None,
    *,
    target: str,
    run_id: str,
    paths: list[str],
) -> FileEntry:
    from envsteward.adapters.state_fs import file_name_for_key

    path = getattr(source, "path", None)
    if not isinstance(path, Path):
        path = Path(spec.path)
        if not path.is_absolute():
            path = services.catalog().root / path
    try:
        content = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return FileEntry(source=spec.name, paths=tuple(paths), path=str(path), copy_path=None, sha256=None)
    folder = copies_folder(services, target, run_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    copy = folder / f"{file_name_for_key(spec.name)}.bin"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return FileEntry(
        source=spec.name,
        paths=tuple(paths),
        path=str(path),
        copy_path=str(copy),
        sha256=hashlib.sha256(content).hexdigest(),
        mode=mode,
    )


def _leaf_entries(
    plan: PromotionPlan, spec: Any, source: ConfigSource, changes: Sequence[tuple[tuple[str, ...], str]]
) -> list[LeafEntry]:
    from envsteward.promotion.snapshot import plain

    tree = plain(call_with_retries(source.read))
    entries = []
    for keys, path in changes:
        if _is_secret_path(keys, plan, path):
            entries.append(LeafEntry(source=spec.name, paths=(path,), key_path=keys, state="manual"))
            continue
        value = value_at(tree, keys)
        entries.append(
            LeafEntry(
                source=spec.name,
                paths=(path,),
                key_path=keys,
                state="absent" if is_missing(value) else "value",
                value=None if is_missing(value) else value,
            )
        )
    return entries


def capture_entries(
    services: PromotionServices,
    plan: PromotionPlan,
    run_id: str,
    sources: Mapping[str, ConfigSource] | None = None,
) -> list[JournalEntry]:
    """What each touched key looked like now, by reference/version. Calls Vault (metadata), SSM
    (GetParameters without decryption), Secrets Manager (DescribeSecret), copies files, reads other sources.

    Raises the adapters' errors (transient ones retried a few times) and ConfigurationError for a source the
    target does not have.
    """
    from envsteward.catalog import models

    specs: dict[str, SourceSpec] = {
        spec.name: spec for spec in services.catalog().environment(plan.target).sources
    }
    touched: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for change in plan.changes:
        if change.target_source not in specs:
            from envsteward.errors import ConfigurationError

            raise ConfigurationError(
                f"the plan writes to source {change.target_source!r}, which {plan.target!r} does not have"
            )
        touched.setdefault(change.target_source, []).append((change.key_path, change.path))
    entries: list[JournalEntry] = []
    for name, changes in touched.items():
        spec = specs[name]
        if isinstance(spec, models.VaultKVSource):
            entries.extend(_vault_entries(services, spec, changes))
        elif isinstance(spec, models.SSMSource):
            entries.extend(_ssm_entries(services, spec, changes))
        elif isinstance(spec, models.SecretsManagerSource):
            entries.extend(_secrets_manager_entries(services, spec, changes))
        elif isinstance(spec, models.FileSource):
            source = (sources or {}).get(name)
            paths = list(dict.fromkeys(path for _keys, path in changes))
            entries.append(
                _file_entry(services, spec, source, target=plan.target, run_id=run_id, paths=paths)
            )
        else:
            source = (sources or {}).get(name) or services.config_source(plan.target, name)
            entries.extend(_leaf_entries(plan, spec, source, changes))
    return entries


# ---------------------------------------------------------------------------------------------------------
# Writing, reading and removing journals
# ---------------------------------------------------------------------------------------------------------


def _pending_message(existing: Mapping[str, Any], target: str) -> str:
    return (
        f"{target!r} has an unfinished promotion journal of flow run {existing.get('run_id')} "
        f"(status {existing.get('status')}): its rollback must finish first; run "
        f"`envsteward promote --repair {target}` (see `envsteward promote --status {target}`)"
    )


def ensure_no_pending(store: StateStore, target: str, run_id: str | None = None) -> None:
    """Raise PendingRollbackError when ``target`` has a journal of a run other than ``run_id`` (call before
    taking the lease or planning a write). Calls the state store."""
    existing = store.get(journal_key(target))
    if isinstance(existing, dict) and existing.get("run_id") != run_id:
        raise PendingRollbackError(
            _pending_message(existing, target), system="promotion", operation="journal"
        )


def _index_add(store: StateStore, target: str) -> None:
    def add(value: Any) -> Any:
        targets = set(value) if isinstance(value, list) else set()
        return sorted(targets | {target})

    store.update(INDEX_KEY, add)


def _index_remove(store: StateStore, target: str) -> None:
    def remove(value: Any) -> Any:
        targets = set(value) if isinstance(value, list) else set()
        return sorted(targets - {target}) or None

    store.update(INDEX_KEY, remove)


def open_journal(
    services: PromotionServices,
    plan: PromotionPlan,
    *,
    run_id: str,
    now: datetime,
    apply_deadline: datetime | None = None,
    sources: Mapping[str, ConfigSource] | None = None,
) -> RollbackJournal:
    """Write the target's journal (status ``applying``) before the first write, and return it.

    Idempotent for one run: when this run's journal exists already (a retried task), that one is returned
    untouched (it was taken before any write). ``apply_deadline`` (default ``now`` + 30 min) is when the
    sweep may assume the run died mid-apply. Calls the target's stores (reads only), the local file system
    (copies of file sources) and the state store.

    Raises PendingRollbackError when another run's journal is still there (nothing is written then), the
    adapters' errors when the previous state cannot be read, the state store's errors.
    """
    store = services.state_store()
    key = journal_key(plan.target)
    existing = store.get(key)
    if isinstance(existing, dict):
        if existing.get("run_id") == run_id:
            return parse_journal(existing, plan.target)
        raise PendingRollbackError(
            _pending_message(existing, plan.target), system="promotion", operation="journal"
        )
    entries = capture_entries(services, plan, run_id, sources)
    journal = RollbackJournal(
        run_id=run_id,
        source=plan.source,
        target=plan.target,
        plan_hash=plan.plan_hash,
        created_at=now,
        updated_at=now,
        apply_deadline=apply_deadline or now + DEFAULT_APPLY_WINDOW,
        status=JournalStatus.APPLYING,
        changes=tuple(change.path for change in plan.changes),
        entries=tuple(entries),
    )
    record = _dump(journal)

    def create(value: Any) -> Any:
        if isinstance(value, dict) and value.get("run_id") != run_id:
            raise PendingRollbackError(
                _pending_message(value, plan.target), system="promotion", operation="journal"
            )
        return value if isinstance(value, dict) else record

    _index_add(store, plan.target)
    try:
        stored = store.update(key, create)
    except PendingRollbackError:
        shutil.rmtree(copies_folder(services, plan.target, run_id), ignore_errors=True)
        raise
    return parse_journal(stored, plan.target)


def load_journal(store: StateStore, target: str) -> RollbackJournal | None:
    """The target's journal, or None. Raises IntegrityError for a damaged one. Calls the state store."""
    value = store.get(journal_key(target))
    return None if value is None else parse_journal(value, target)


def update_journal(
    store: StateStore, journal: RollbackJournal, change: Callable[[RollbackJournal], RollbackJournal | None]
) -> RollbackJournal | None:
    """Atomically apply ``change`` to the stored journal of ``journal``'s run (None removes it); returns
    the stored result, or None when the run's journal is gone (another process finished it). Calls the
    state store."""
    result: list[RollbackJournal | None] = [None]

    def apply(value: Any) -> Any:
        if not isinstance(value, dict) or value.get("run_id") != journal.run_id:
            result[0] = None
            return value
        new = change(parse_journal(value, journal.target))
        result[0] = new
        return None if new is None else _dump(new)

    store.update(journal_key(journal.target), apply)
    return result[0]


def set_status(
    store: StateStore,
    journal: RollbackJournal,
    status: JournalStatus,
    *,
    now: datetime,
    keys_left: Iterable[str] | None = None,
    last_error: str | None = None,
    count_attempt: bool = False,
    claim: RepairClaim | None = None,
) -> RollbackJournal | None:
    """Record a status change (and what is left); None when the journal is gone. Calls the state store."""

    def change(current: RollbackJournal) -> RollbackJournal:
        return current.model_copy(
            update={
                "status": status,
                "updated_at": now,
                "keys_left": tuple(keys_left) if keys_left is not None else current.keys_left,
                "last_error": last_error if last_error is not None else current.last_error,
                "attempts": current.attempts + (1 if count_attempt else 0),
                "claim": claim,
            }
        )

    return update_journal(store, journal, change)


def claim_for_repair(
    store: StateStore, journal: RollbackJournal, claim: RepairClaim, *, now: datetime
) -> RollbackJournal | None:
    """Claim ``journal`` for one sweep: compare-and-set, so of several sweeps (on several workers) that
    read the same journal and decided to repair it, exactly one gets it back with its ``claim``; the others
    get None and leave it alone. The claim is set only while the stored journal is still exactly the one
    the caller read (any change in between, another claim included, loses) and holds no unexpired claim of
    another sweep. Counts the attempt. Calls the state store; raises its errors."""

    def change(current: RollbackJournal) -> RollbackJournal:
        held = current.claim is not None and current.claim.by != claim.by and current.claim.until > now
        if held or current != journal:
            return current
        attempts = current.attempts + 1
        return current.model_copy(update={"claim": claim, "updated_at": now, "attempts": attempts})

    stored = update_journal(store, journal, change)
    return stored if stored is not None and stored.claim == claim else None


def discard(services: PromotionServices, journal: RollbackJournal) -> bool:
    """Remove the run's journal and its file copies (the apply or the rollback is verified); True when this
    call removed it. Calls the state store and the local file system."""
    store = services.state_store()
    removed = False

    def drop(value: Any) -> Any:
        nonlocal removed  # assigned on every call: the store may re-run ``drop`` after a lost race
        removed = isinstance(value, dict) and value.get("run_id") == journal.run_id
        return None if removed else value

    store.update(journal_key(journal.target), drop)
    if store.get(journal_key(journal.target)) is None:
        with contextlib.suppress(Exception):  # the index is a hint; the catalog's targets are swept too
            _index_remove(store, journal.target)
    shutil.rmtree(copies_folder(services, journal.target, journal.run_id), ignore_errors=True)
    return removed


def journal_targets(services: PromotionServices) -> list[str]:
    """Targets that may hold a journal: the index plus every catalog environment. Calls the state store."""
    indexed = services.state_store().get(INDEX_KEY)
    names = {str(name) for name in indexed} if isinstance(indexed, list) else set()
    with contextlib.suppress(Exception):  # the sweep still finds indexed targets without a catalog
        names |= set(services.catalog().environments)
    return sorted(names)


def pending_journals(services: PromotionServices, target: str | None = None) -> list[RollbackJournal]:
    """Every unfinished journal (of ``target`` only, when given), for ``envsteward promote --status``.
    Calls the state store. Raises IntegrityError for a damaged journal."""
    store = services.state_store()
    found = []
    for name in [target] if target else journal_targets(services):
        journal = load_journal(store, name)
        if journal is not None:
            found.append(journal)
    return found


def describe_journal(journal: RollbackJournal, now: datetime, lease: Mapping[str, Any] | None = None) -> str:
    """A few lines for people (paths, run, status; no values)."""
    lines = [
        f"{journal.target}: {journal.status.value} — promotion {journal.source} -> {journal.target}, "
        f"flow run {journal.run_id}, started {journal.created_at.isoformat()}, "
        f"updated {journal.updated_at.isoformat()}",
    ]
    if journal.status is JournalStatus.APPLYING and now > journal.apply_deadline:
        lines.append(
            f"  apply deadline {journal.apply_deadline.isoformat()} has passed: the sweep will roll it back"
        )
    age = max(0, int((now - journal.created_at).total_seconds()))
    lines.append(f"  age: {age // 3600}h{age % 3600 // 60:02d}m{age % 60:02d}s")
    keys = journal.keys_left or journal.changes
    label = "keys left changed" if journal.keys_left else "keys the promotion may have changed"
    lines.append(f"  {label}: {', '.join(keys)}")
    if journal.last_error:
        lines.append(f"  last error: {journal.last_error}")
    if journal.attempts:
        lines.append(f"  repair attempts: {journal.attempts}")
    if lease is not None:
        lines.append(f"  lease held by flow run {lease.get('run_id')} until {lease.get('expires_at')}")
    return "\n".join(lines)


def sha256_file(path: Path) -> str | None:
    """The file's SHA-256, or None when it does not exist. Reads the local file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def read_copy(entry: FileEntry) -> bytes:
    """The journaled bytes of a file entry, checked against the recorded SHA-256.

    Raises IntegrityError when the copy is missing or altered (nothing is restored from it then)."""
    if entry.copy_path is None or entry.sha256 is None:
        raise PermanentError("the file did not exist: there is nothing to copy back", system="promotion")
    try:
        content = Path(entry.copy_path).read_bytes()
    except OSError:
        raise IntegrityError(
            f"the journal's copy of {entry.path} is missing ({entry.copy_path}); restore the file by hand",
            system="promotion",
            operation="restore",
        ) from None
    if hashlib.sha256(content).hexdigest() != entry.sha256:
        raise IntegrityError(
            f"the journal's copy of {entry.path} does not match its SHA-256; restore the file by hand",
            system="promotion",
            operation="restore",
        )
    return content
