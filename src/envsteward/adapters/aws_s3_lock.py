"""An S3 object store whose new objects get Object Lock retention when their bucket has Object Lock.

Used for audit checkpoints (``audit.checkpoint_bucket``): with Object Lock enabled on the bucket, every
checkpoint is written with ``ObjectLockMode`` (``audit.object_lock_mode``) and ``ObjectLockRetainUntilDate``
(now + ``audit.object_lock_days``), so nobody without the right to bypass governance (or, in COMPLIANCE
mode, nobody at all) can delete or overwrite it before then. A bucket without Object Lock is used as is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import botocore.exceptions as boto_exc

from envsteward.adapters.aws_errors import error_code, translate_aws_error
from envsteward.adapters.aws_s3 import S3ObjectStore
from envsteward.adapters.aws_session import AWSClients


class ObjectLockS3Store(S3ObjectStore):
    """:class:`S3ObjectStore` whose ``put_if_absent`` sets Object Lock retention where the bucket has it."""

    def __init__(
        self,
        clients: AWSClients,
        bucket: str,
        region: str | None = None,
        prefix: str = "",
        *,
        lock_mode: str = "GOVERNANCE",
        retention: timedelta = timedelta(days=400),
    ) -> None:
        super().__init__(clients, bucket, region, prefix)
        self.lock_mode = lock_mode
        self.retention = retention
        self._lock_enabled: bool | None = None
        self._mutex = threading.Lock()

    def object_lock_enabled(self) -> bool:
        """Whether the bucket reports Object Lock enabled (GetObjectLockConfiguration, cached). Raises
        NotFoundError for a missing bucket, PermissionDeniedError..."""
        with self._mutex:
            if self._lock_enabled is None:
                try:
                    response = self._s3.get_object_lock_configuration(Bucket=self.bucket)
                except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
                    if error_code(exc) != "ObjectLockConfigurationNotFoundError":
                        raise translate_aws_error(
                            exc, "s3", "get_object_lock_configuration", self._where()
                        ) from None
                    self._lock_enabled = False
                else:
                    config = response.get("ObjectLockConfiguration") or {}
                    self._lock_enabled = config.get("ObjectLockEnabled") == "Enabled"
            return self._lock_enabled

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """PutObject with ``If-None-Match: *`` and, where the bucket has Object Lock, retention until now +
        ``retention``. False when the object exists. Raises the usual S3 errors."""
        extra: dict[str, object] = {}
        if self.object_lock_enabled():
            extra = {
                "ObjectLockMode": self.lock_mode,
                "ObjectLockRetainUntilDate": datetime.now(UTC) + self.retention,
            }
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                **extra,
            )
        except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
            if error_code(exc) == "PreconditionFailed":
                return False
            raise translate_aws_error(exc, "s3", "put_object if-none-match", self._where(key)) from None
        return True
