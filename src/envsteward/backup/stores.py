"""Where backups live: the primary object store and the disaster-recovery (DR) store in a second region.

From :class:`envsteward.settings.Settings`:

* ``storage.kind: s3`` — primary: bucket ``storage.bucket`` in ``aws.region``; DR: bucket
  ``storage.dr_bucket`` in ``aws.dr_region`` (both under ``storage.prefix``). Without ``dr_bucket`` there is
  no DR store, and a target that asks for a replica fails its replication with a clear message.
* ``storage.kind: filesystem`` (the embedded default) — primary: ``<home>/objects``; DR: the sibling folder
  ``<home>/objects-dr``, which *stands for* the DR region (same disk, so it protects against a deleted or
  damaged object, not against losing the machine). Regions are nominal there: the catalog's ``region`` and
  ``replica_region`` are recorded but not checked.

Backups sit at the root of each store: ``<environment>/<target>/<timestamp>-<hex>/{manifest.json,data.bin}``
plus the sidecars this package writes next to them (``replica.json``, ``verified-by-drill.json``).

External calls: none here (stores are built lazily; no request is made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from envsteward.errors import ConfigurationError
from envsteward.ports import ObjectStore

if TYPE_CHECKING:
    from envsteward.backup.ports import StoreServices
    from envsteward.catalog import BackupTarget


@dataclass(frozen=True)
class BackupStores:
    """The primary store and, when configured, the DR store, with the regions they stand for."""

    primary: ObjectStore
    primary_region: str
    dr: ObjectStore | None
    dr_region: str | None
    kind: str
    """``s3`` or ``filesystem``."""

    def describe_primary(self) -> str:
        return describe_store(self.primary)

    def describe_dr(self) -> str:
        return describe_store(self.dr) if self.dr is not None else "<none>"

    def check_target(self, target: BackupTarget) -> None:
        """Raise ConfigurationError when an S3 target asks for regions the configured buckets are not in.

        A target's ``region`` must be ``aws.region`` (where ``storage.bucket`` is) and its
        ``replica_region``, when set, ``aws.dr_region`` (where ``storage.dr_bucket`` is). The filesystem
        store stands for both regions and accepts any.
        """
        if self.kind != "s3":
            return
        if target.region is not None and target.region != self.primary_region:
            raise ConfigurationError(
                f"backup target {target.name!r} wants its primary copy in {target.region}, but "
                f"storage.bucket is in aws.region={self.primary_region}: fix the target's region or "
                "ENVSTEWARD_AWS__REGION"
            )
        replica = target.replica_region
        if replica is not None and self.dr_region is not None and replica != self.dr_region:
            raise ConfigurationError(
                f"backup target {target.name!r} wants its replica in {replica}, but "
                f"storage.dr_bucket is in aws.dr_region={self.dr_region}: fix the target's "
                "replica_region or ENVSTEWARD_AWS__DR_REGION"
            )


def describe_store(store: ObjectStore) -> str:
    """``s3://bucket/prefix`` or the folder of a filesystem store; never credentials."""
    bucket = getattr(store, "bucket", None)
    if bucket is not None:
        return f"s3://{bucket}/{getattr(store, 'prefix', '')}"
    root = getattr(store, "root", None)
    return str(root) if root is not None else type(store).__name__


def backup_stores(services: StoreServices) -> BackupStores:
    """The primary and DR backup stores named by ``services.settings`` (see the module docstring).

    Raises ConfigurationError for ``storage.kind: s3`` without ``storage.bucket``. No network call.
    """
    settings = services.settings
    storage = settings.storage
    primary = services.object_store()
    if storage.kind == "s3":
        dr: ObjectStore | None = None
        if storage.dr_bucket:
            from envsteward.adapters.aws import S3ObjectStore

            if storage.dr_bucket == storage.bucket:
                raise ConfigurationError(
                    "storage.dr_bucket must differ from storage.bucket (the replica must survive the "
                    "loss of the primary bucket's region)"
                )
            dr = S3ObjectStore(
                services.aws_clients(), storage.dr_bucket, settings.aws.dr_region, storage.prefix
            )
        return BackupStores(
            primary=primary,
            primary_region=settings.aws.region,
            dr=dr,
            dr_region=settings.aws.dr_region if dr is not None else None,
            kind="s3",
        )
    from envsteward.adapters.objectstore_fs import FilesystemObjectStore

    return BackupStores(
        primary=primary,
        primary_region=settings.aws.region,
        dr=FilesystemObjectStore(settings.home / "objects-dr"),
        dr_region=settings.aws.dr_region,
        kind="filesystem",
    )
