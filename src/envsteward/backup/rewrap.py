"""Backup key rotation: rotate the key-encryption key (KEK) and rewrap every retained backup's data key.

``envsteward backup rotate-key [--env E] [--dry-run]`` runs :func:`rotate_backup_keys`:

1. **Which keys.** The KEKs the selected environments' encrypted targets use (:func:`catalog_keys`): the
   local key file, a Vault transit key, a KMS key. A key may be shared by several environments (the local
   key always is), so the rewrap below covers every backup the key wrapped, whatever its environment.
2. **Rotate** (:func:`decide_rotation`, pure): local - a new version in the key file; Vault - transit
   ``rotate``; KMS - nothing (AWS rotates the key material itself and keeps every older one). A previous
   run that stopped before it finished (the newest version is above ``min_decryption_version``) is
   finished instead of rotating again, unless that newest version is itself past the maximum age.
3. **Rewrap** each retained backup (every complete backup in the primary AND the DR store) whose data key
   an older version wrapped (:func:`rewrap_backup`): read the manifest, read the data object's header (the
   salt; no chunk is read or decrypted), unwrap the data key and check the manifest's MAC with it, rewrap
   (Vault ``rewrap`` / KMS ``ReEncrypt`` inside the service; locally unwrap and wrap with the newest
   version), check the new wrap opens to the same data key, write the new manifest (MAC'd) over the old
   one in ONE atomic put, then read it back and verify it again (on failure the old bytes are put back).
   The data object is never rewritten: its header keeps the original wrap, which the manifest records
   (``encryption.header_*``) for the reader's header comparison. The DR copy receives the very same
   bytes, so primary and replica manifests stay identical.
4. **Retire** the old versions (Vault ``min_decryption_version``; the local file's
   ``min_decryption_version``) only when a fresh listing of both stores shows every backup the key wrapped
   at the new version, none failed, and no backup is being written (a data object without a manifest).

Crash safety: until step 4, the old versions still unwrap, so a backup is readable through its old
manifest or its new one, and a manifest is only ever replaced whole. A re-run skips what is current
(after verifying it) and finishes the rest. Dry-run plans without rotating, writing or retiring anything.
Nothing here creates a key: a local key file that does not exist is reported, not made.

External calls: the object stores, the key providers (Vault transit, KMS, the local key file), the audit
log (``backup.key_rotated``, ``backup.rewrapped``; counts and key ids only, never key material).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from envsteward.backup.format import BackupReader, StreamHeader, derive_keys
from envsteward.backup.manifest import Manifest, manifest_object_key
from envsteward.backup.pipeline import find_incomplete_backups, list_backups
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
)
from envsteward.inventory.metadata import KeyState
from envsteward.ports import DataKey, KeyProvider, ObjectStore

if TYPE_CHECKING:
    from envsteward.audit import AuditLog
    from envsteward.backup.stores import BackupStores
    from envsteward.catalog import BackupTarget, Catalog
    from envsteward.settings import Settings

_HEADER_PIECE = 64 * 1024


@runtime_checkable
class RotatableKeyProvider(KeyProvider, Protocol):
    """A KeyProvider that can rotate its KEK and rewrap data keys (local, Vault transit, KMS)."""

    def describe(self) -> KeyState:
        """The newest version, the oldest that still unwraps, and the newest version's date."""
        ...

    def rotate(self) -> int | None:
        """Make a new version and return it; None when the service rotates the key itself (KMS)."""
        ...

    def wrapped_version(self, wrapped: bytes, key_id: str) -> int | None:
        """Which version wrapped a data key; None when that cannot be told (another key, or KMS)."""
        ...

    def rewrap(self, wrapped: bytes, key_id: str) -> DataKey:
        """The data key wrapped with the newest version, with its plaintext (memory only)."""
        ...

    def retire_versions_below(self, version: int) -> None:
        """Stop older versions from unwrapping (never lowers the minimum)."""
        ...


class KeyProviderServices(Protocol):
    """For opening a key (:func:`open_key`): the settings (``home``: the local key file) and the key
    providers."""

    @property
    def settings(self) -> Settings: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...


class RotationServices(KeyProviderServices, Protocol):
    """What rotation needs from :class:`envsteward.services.Services` (which satisfies it)."""

    def catalog(self) -> Catalog: ...

    def audit_log(self) -> AuditLog: ...


# ---------------------------------------------------------------------------------------------------------
# Which keys, and whether to rotate (pure)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class KeyRef:
    """One KEK: its provider kind and, except for the (single) local key, its id."""

    kind: str
    key_id: str | None = None

    def label(self) -> str:
        return "local" if self.kind == "local" else f"{self.kind}:{self.key_id}"


def catalog_keys(catalog: Catalog, environments: Iterable[str]) -> dict[KeyRef, list[str]]:
    """The KEKs the environments' encrypted backup targets use, each with the ``env/target`` labels that
    use it. Pure."""
    found: dict[KeyRef, list[str]] = {}
    for name in environments:
        for target in catalog.environment(name).backups:
            if target.encrypted:
                ref = KeyRef(target.key_provider, None if target.key_provider == "local" else target.key_id)
                found.setdefault(ref, []).append(f"{name}/{target.name}")
    return dict(sorted(found.items()))


def key_of_manifest(manifest: Manifest, target: BackupTarget | None) -> KeyRef:
    """The KEK that wrapped a stored backup's data key: the provider recorded in the manifest
    (``extra.key_provider``), else its catalog target's, else ``local``; for KMS the target's key id when
    the target still uses KMS (the manifest may name the same key by another alias). Pure."""
    kind = str(manifest.extra.get("key_provider") or (target.key_provider if target else None) or "local")
    if kind == "local":
        return KeyRef("local")
    if kind == "aws_kms" and target is not None and target.key_provider == "aws_kms" and target.key_id:
        return KeyRef(kind, target.key_id)
    return KeyRef(kind, manifest.encryption.key_id)


@dataclass(frozen=True)
class RotationDecision:
    rotate: bool
    target_version: int | None
    """The version every backup is rewrapped to (the newest after rotating); None for KMS."""
    reason: str


def decide_rotation(state: KeyState, max_age_days: int | None, now: datetime) -> RotationDecision:
    """Rotate, or finish an unfinished rotation, or (KMS) leave the rotating to AWS. Pure.

    ``latest > min_decryption_version`` means a version was added that not every backup was rewrapped to
    (a run that stopped, or a rotation outside envsteward): finish that one rather than adding another,
    unless it is already older than ``max_age_days``.
    """
    if state.latest_version is None:
        return RotationDecision(
            False,
            None,
            f"AWS rotates KMS key material itself ({state.detail or 'see aws kms get-key-rotation-status'}); "
            "older material keeps decrypting, so no backup needs rewrapping for it",
        )
    latest, minimum = state.latest_version, state.min_decryption_version or 1
    if latest > minimum:
        stale = (
            max_age_days is not None
            and state.created_at is not None
            and now - state.created_at >= timedelta(days=max_age_days)
        )
        if not stale:
            return RotationDecision(
                False,
                latest,
                f"version {latest} exists but versions from {minimum} still decrypt: finishing that rotation "
                "(rewrap to it, then retire the older versions) instead of adding another",
            )
    return RotationDecision(True, latest + 1, f"rotate to version {latest + 1}")


# ---------------------------------------------------------------------------------------------------------
# One backup
# ---------------------------------------------------------------------------------------------------------


class _HeaderRead(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, header: StreamHeader) -> None:
        super().__init__("header read")
        self.header = header


def read_stream_header(store: ObjectStore, manifest: Manifest) -> StreamHeader:
    """The data object's header (its salt and original wrap), read from the object's first bytes; no
    chunk is decrypted. Calls the store. Raises NotFoundError, IntegrityError (bad or foreign header)."""

    def stop(header: StreamHeader) -> bytes:
        raise _HeaderRead(header)

    reader = BackupReader(stop, lambda _: None)
    try:
        for piece in store.get_stream(manifest.data_object, _HEADER_PIECE):
            reader.feed(piece)
        reader.close()
    except _HeaderRead as read:
        header = read.header
    else:  # pragma: no cover - close() raises for an object without a complete header
        raise IntegrityError(f"backup {manifest.backup_id}: the data object has no header")
    encryption = manifest.encryption
    if (
        header.backup_id != manifest.backup_id
        or header.key_id != encryption.stream_key_id()
        or header.wrapped_key != encryption.stream_wrapped_key_bytes()
    ):
        raise IntegrityError(
            f"backup {manifest.backup_id}: the data object's header does not match the manifest "
            "(the object was replaced or belongs to another backup)"
        )
    return header


def _verified_key(keys: KeyProvider, manifest: Manifest, salt: bytes) -> bytes:
    """The manifest's data key, after its MAC checked out under it. Raises IntegrityError."""
    encryption = manifest.encryption
    try:
        data_key = keys.unwrap(encryption.wrapped_key_bytes(), encryption.key_id)
    except IntegrityError as exc:
        raise IntegrityError(f"backup {manifest.backup_id}: cannot unwrap its data key: {exc}") from None
    manifest.check_mac(derive_keys(data_key, salt).mac_key)
    return data_key


def rewrapped_manifest(manifest: Manifest, new: DataKey, mac_key: bytes, now: datetime) -> Manifest:
    """``manifest`` carrying ``new``'s wrap, the data object's original wrap in ``header_*``, and a new
    MAC under ``mac_key``. Pure."""
    encryption = manifest.encryption
    updated = encryption.model_copy(
        update={
            "key_id": new.key_id,
            "key_version": new.key_version,
            "wrapped_data_key": base64.b64encode(new.wrapped).decode("ascii"),
            "header_key_id": encryption.stream_key_id(),
            "header_wrapped_data_key": base64.b64encode(encryption.stream_wrapped_key_bytes()).decode(
                "ascii"
            ),
            "rewrapped_at": now.astimezone(UTC),
        }
    )
    return manifest.model_copy(update={"encryption": updated, "mac": None}).with_mac(mac_key)


def _same_backup(a: Manifest, b: Manifest) -> bool:
    """Two manifests describe the same backup, wraps and MACs aside (e.g. a replica one run behind)."""
    placeholder = {"encryption": None, "mac": None}
    return (
        a.model_copy(update=placeholder) == b.model_copy(update=placeholder)
        and a.encryption.stream_key_id() == b.encryption.stream_key_id()
        and a.encryption.stream_wrapped_key_bytes() == b.encryption.stream_wrapped_key_bytes()
    )


def _is_current(keys: RotatableKeyProvider, manifest: Manifest, target_version: int | None) -> bool:
    encryption = manifest.encryption
    if target_version is None:  # KMS: current when wrapped by the provider's own key id
        return encryption.key_id == keys.key_id
    version = keys.wrapped_version(encryption.wrapped_key_bytes(), encryption.key_id)
    return version is not None and version >= target_version


Outcome = Literal["rewrapped", "current", "failed"]


@dataclass(frozen=True)
class BackupRewrap:
    """What happened to one backup (JSON-able; no key material)."""

    backup_id: str
    outcome: Outcome
    regions: tuple[str, ...] = ()
    """The regions whose manifest was rewritten."""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "outcome": self.outcome,
            "regions": list(self.regions),
            "error": self.error,
        }


def _write_verified(
    store: ObjectStore,
    backup_id: str,
    *,
    expected_old: bytes,
    new_bytes: bytes,
    keys: KeyProvider,
    salt: bytes,
) -> None:
    """Replace the manifest (one atomic put), read it back and verify it with ``keys``; put the old bytes
    back when it does not verify. Raises ConflictError when the manifest changed or its data object went
    away since it was read (another process: prune, a replication), IntegrityError."""
    name = manifest_object_key(backup_id)
    try:
        still = store.get_bytes(name)
    except NotFoundError:
        raise ConflictError(f"backup {backup_id}: the manifest was removed meanwhile (pruned?)") from None
    if still != expected_old:
        raise ConflictError(f"backup {backup_id}: the manifest changed meanwhile; run rotate-key again")
    written = Manifest.from_json(new_bytes, origin=name)
    if store.head(written.data_object) is None:
        raise ConflictError(f"backup {backup_id}: the data object was removed meanwhile (pruned?)")
    store.put_bytes(name, new_bytes)
    try:
        _verified_key(keys, Manifest.from_json(store.get_bytes(name), origin=name), salt)
    except EnvstewardError:
        store.put_bytes(name, expected_old)
        raise


def rewrap_backup(
    keys: RotatableKeyProvider,
    copies: Sequence[tuple[str, ObjectStore]],
    backup_id: str,
    target_version: int | None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> BackupRewrap:
    """Bring every copy of one backup (``copies``: ``(region, store)`` holding its manifest, primary first)
    to ``target_version``, verifying each manifest on the way (see the module docstring). A copy that
    already is current is verified and left alone; a replica one rewrap behind receives the very bytes
    of the rewritten primary. Dry-run reads and verifies, writes nothing. Calls the stores and ``keys``.
    Never raises for the backup's own problems: they are the ``failed`` outcome with a one-line reason.
    """
    moment = now or datetime.now(UTC)
    rewritten: list[str] = []
    try:
        loaded = []
        for region, store in copies:
            raw = store.get_bytes(manifest_object_key(backup_id))
            manifest = Manifest.from_json(raw, origin=f"{region} {manifest_object_key(backup_id)}")
            loaded.append((region, store, raw, manifest, read_stream_header(store, manifest).salt))
        region, store, raw, manifest, salt = loaded[0]
        if _is_current(keys, manifest, target_version):
            data_key = _verified_key(keys, manifest, salt)
            new_bytes = raw
        else:
            if dry_run:
                return BackupRewrap(backup_id, "rewrapped", tuple(r for r, *_ in loaded))
            new = keys.rewrap(manifest.encryption.wrapped_key_bytes(), manifest.encryption.key_id)
            # the old manifest must authenticate under the data key the new wrap holds: that proves both
            data_key = new.plaintext
            mac_key = derive_keys(data_key, salt).mac_key
            manifest.check_mac(mac_key)
            new_bytes = rewrapped_manifest(manifest, new, mac_key, moment).to_json()
            _write_verified(store, backup_id, expected_old=raw, new_bytes=new_bytes, keys=keys, salt=salt)
            rewritten.append(region)
        reference = Manifest.from_json(new_bytes)
        for region, store, raw, manifest, salt in loaded[1:]:
            if raw == new_bytes:
                continue
            if _same_backup(manifest, reference):
                manifest.check_mac(derive_keys(data_key, salt).mac_key)  # the replica's is authentic too
                if not dry_run:
                    _write_verified(
                        store, backup_id, expected_old=raw, new_bytes=new_bytes, keys=keys, salt=salt
                    )
                rewritten.append(region)
                continue
            # a replica that differs from the primary for other reasons: rewrap it on its own
            result = rewrap_backup(
                keys, [(region, store)], backup_id, target_version, dry_run=dry_run, now=now
            )
            if result.outcome == "failed":
                raise IntegrityError(result.error or "failed")
            rewritten += result.regions
    except EnvstewardError as exc:
        return BackupRewrap(backup_id, "failed", tuple(rewritten), error=str(exc))
    return BackupRewrap(backup_id, "rewrapped" if rewritten else "current", tuple(rewritten))


# ---------------------------------------------------------------------------------------------------------
# Every backup of a key, and the whole rotation
# ---------------------------------------------------------------------------------------------------------


@dataclass
class KeyRotationResult:
    """One KEK's rotation (JSON-able; key ids, versions and counts only)."""

    key: KeyRef
    used_by: list[str]
    rotated: bool = False
    from_version: int | None = None
    to_version: int | None = None
    note: str = ""
    backups: list[BackupRewrap] = field(default_factory=list)
    foreign: int = 0
    """Backups of this kind wrapped by a key id this key does not know (left alone)."""
    retired_below: int | None = None
    """The new ``min_decryption_version``, when the old versions were retired."""
    not_retired_because: str | None = None
    error: str | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for item in self.backups if item.outcome == outcome)

    @property
    def ok(self) -> bool:
        return self.error is None and self.count("failed") == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key.label(),
            "kind": self.key.kind,
            "used_by": self.used_by,
            "rotated": self.rotated,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "note": self.note,
            "rewrapped": self.count("rewrapped"),
            "current": self.count("current"),
            "failed": self.count("failed"),
            "foreign": self.foreign,
            "retired_below": self.retired_below,
            "not_retired_because": self.not_retired_because,
            "error": self.error,
            "backups": [item.as_json() for item in self.backups],
        }


def rotatable(keys: KeyProvider, ref: KeyRef) -> RotatableKeyProvider:
    """``keys`` as a RotatableKeyProvider. Raises ConfigurationError when it cannot rotate."""
    if not isinstance(keys, RotatableKeyProvider):
        raise ConfigurationError(f"the {ref.kind} key provider cannot rotate keys or rewrap data keys")
    return keys


def open_key(services: KeyProviderServices, ref: KeyRef) -> RotatableKeyProvider:
    """The provider of ``ref``; the local key file is only read, never created. Raises ConfigurationError
    (no local key file: no local backup was ever made)."""
    if ref.kind == "local":
        from envsteward.adapters.local_keys import LocalKeyProvider
        from envsteward.backup.keys import local_key_file

        return LocalKeyProvider(local_key_file(services.settings.home), create=False)
    return rotatable(services.key_provider(ref.kind, ref.key_id), ref)


def key_max_age(catalog: Catalog, users: Iterable[str]) -> int | None:
    """The smallest ``secrets.backup_key_max_age_days`` among the environments of ``users``
    (``env/target`` labels); None when each of them sets none."""
    ages = [catalog.environment(label.split("/", 1)[0]).secrets.backup_key_max_age_days for label in users]
    present = [age for age in ages if age is not None]
    return min(present) if present else None


ProgressHook = Callable[[KeyRef, int, int, BackupRewrap], None]
"""``(key, done, total, result)`` after each backup."""


def rotate_key(
    services: RotationServices,
    stores: BackupStores,
    ref: KeyRef,
    used_by: list[str],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    on_backup: ProgressHook | None = None,
    on_start: Callable[[KeyRef, int], None] | None = None,
) -> KeyRotationResult:
    """Rotate one KEK, rewrap every backup it wrapped in both stores, retire its old versions when all is
    done (see the module docstring). Calls the stores, the key provider and the audit log (not in
    dry-run). Raises nothing for a failed backup or key (``result.error`` / failed outcomes): the caller
    reports them."""
    moment = now or datetime.now(UTC)
    result = KeyRotationResult(key=ref, used_by=used_by)
    catalog = services.catalog()
    try:
        keys = open_key(services, ref)
        state = keys.describe()
        decision = decide_rotation(state, key_max_age(catalog, used_by), moment)
        result.from_version, result.note = state.latest_version, decision.reason
        target_version = decision.target_version
        if decision.rotate and not dry_run:
            target_version = keys.rotate()
            result.rotated = True
            services.audit_log().append(
                "backup.key_rotated",
                target=ref.label(),
                details={
                    "kind": ref.kind,
                    "from_version": state.latest_version,
                    "to_version": target_version,
                },
            )
        result.to_version = target_version
        copies = _backups_of(services, stores, keys, ref, result)
        if on_start is not None:
            on_start(ref, len(copies))
        for index, (backup_id, where) in enumerate(sorted(copies.items()), start=1):
            if dry_run and decision.rotate:  # the new version does not exist yet: every backup would move
                outcome = BackupRewrap(backup_id, "rewrapped", tuple(region for region, _ in where))
            else:
                outcome = rewrap_backup(keys, where, backup_id, target_version, dry_run=dry_run, now=moment)
            result.backups.append(outcome)
            if on_backup is not None:
                on_backup(ref, index, len(copies), outcome)
        if not dry_run:
            services.audit_log().append(
                "backup.rewrapped",
                target=ref.label(),
                details={
                    "kind": ref.kind,
                    "to_version": target_version,
                    "rewrapped": result.count("rewrapped"),
                    "current": result.count("current"),
                    "failed": result.count("failed"),
                },
            )
            if target_version is not None:
                _retire(services, stores, keys, ref, target_version=target_version, result=result)
    except EnvstewardError as exc:
        result.error = str(exc)
    return result


def _backups_of(
    services: RotationServices,
    stores: BackupStores,
    keys: RotatableKeyProvider,
    ref: KeyRef,
    result: KeyRotationResult,
) -> dict[str, list[tuple[str, ObjectStore]]]:
    """Every backup (both stores) whose data key ``ref`` wrapped: id -> ``(region, store)`` holding it,
    primary first. Counts the backups of the same kind that name a key this one does not know."""
    from envsteward.backup.restore import catalog_target_for

    found: dict[str, list[tuple[str, ObjectStore]]] = {}
    foreign: set[str] = set()
    regions = [("primary", stores.primary)] + ([("dr", stores.dr)] if stores.dr is not None else [])
    for region, store in regions:
        for manifest in list_backups(store):
            if key_of_manifest(manifest, catalog_target_for(services, manifest)) != ref:
                continue
            encryption = manifest.encryption
            if (
                ref.kind == "local"
                and keys.wrapped_version(encryption.wrapped_key_bytes(), encryption.key_id) is None
            ):
                foreign.add(manifest.backup_id)
                continue
            found.setdefault(manifest.backup_id, []).append((region, store))
    result.foreign = len(foreign - set(found))
    return found


def _retire(
    services: RotationServices,
    stores: BackupStores,
    keys: RotatableKeyProvider,
    ref: KeyRef,
    *,
    target_version: int,
    result: KeyRotationResult,
) -> None:
    """Retire the versions below ``target_version`` when a fresh listing shows nothing still needs them."""
    if not result.ok:
        result.not_retired_because = (
            f"{result.count('failed')} backup(s) could not be rewrapped: the old versions keep decrypting; "
            "fix them and run rotate-key again"
        )
        return
    busy = [
        backup_id
        for store in (stores.primary, stores.dr)
        if store is not None
        for backup_id in find_incomplete_backups(store)
    ]
    if busy:
        result.not_retired_because = (
            f"{len(busy)} backup(s) are being written or were left by a crash ({busy[0]}...): their data "
            "keys may use an old version; run rotate-key again when they finished (`backup prune` "
            "removes crash leftovers)"
        )
        return
    recheck = KeyRotationResult(key=ref, used_by=result.used_by)
    stale = [
        backup_id
        for backup_id, where in _backups_of(services, stores, keys, ref, recheck).items()
        for _, store in where
        if not _is_current(keys, _manifest(store, backup_id), target_version)
    ]
    if stale:
        result.not_retired_because = (
            f"{len(stale)} backup(s) still wrapped by an older version (e.g. {stale[0]}; made during the "
            "rewrap?): run rotate-key again"
        )
        return
    keys.retire_versions_below(target_version)
    result.retired_below = target_version


def _manifest(store: ObjectStore, backup_id: str) -> Manifest:
    return Manifest.from_json(store.get_bytes(manifest_object_key(backup_id)))


@dataclass
class RotationReport:
    results: list[KeyRotationResult]
    dry_run: bool

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.results)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "dry_run": self.dry_run, "keys": [item.as_json() for item in self.results]}


def rotate_backup_keys(
    services: RotationServices,
    stores: BackupStores,
    environments: Sequence[str],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    on_backup: ProgressHook | None = None,
    on_start: Callable[[KeyRef, int], None] | None = None,
) -> RotationReport:
    """Rotate every KEK the environments' backups use (see :func:`rotate_key`). A local key that does not
    exist yet (no local backup was made) is reported and skipped: nothing creates it here."""
    from envsteward.backup.keys import local_key_file

    results = []
    for ref, used_by in catalog_keys(services.catalog(), environments).items():
        if ref.kind == "local" and not local_key_file(services.settings.home).exists():
            results.append(
                KeyRotationResult(
                    key=ref,
                    used_by=used_by,
                    note="no local key yet (the first backup creates it): nothing to rotate",
                )
            )
            continue
        results.append(
            rotate_key(
                services,
                stores,
                ref,
                used_by,
                dry_run=dry_run,
                now=now,
                on_backup=on_backup,
                on_start=on_start,
            )
        )
    return RotationReport(results=results, dry_run=dry_run)
