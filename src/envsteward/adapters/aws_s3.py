"""S3 as an ObjectStore: single and multipart uploads, streaming reads, listing, cross-region copy.

Every object is written with a SHA-256 checksum that S3 verifies on upload (``ChecksumAlgorithm``) and
botocore verifies again on download (``ChecksumMode=ENABLED``) where S3 has a full-object checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
from base64 import b64encode
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions as boto_exc

from envsteward.adapters.aws_errors import SYSTEM, aws_errors, error_code, translate_aws_error
from envsteward.adapters.aws_session import AWSClients
from envsteward.errors import ConfigurationError, IntegrityError, NotFoundError, PermanentError
from envsteward.ports import ObjectInfo

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest allowed part, except for the last one."""
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_SINGLE_COPY_SIZE = 5 * 1024**3
"""CopyObject's limit; larger objects need UploadPartCopy (not implemented: backups stay below it)."""


@dataclass(frozen=True)
class ObjectChecksum:
    """What S3 says about an object's integrity. ``sha256`` is base64; ``composite`` marks a multipart
    checksum (a checksum of part checksums, suffixed ``-N``), not comparable to a whole-object one."""

    etag: str | None
    sha256: str | None
    composite: bool


@dataclass(frozen=True)
class CopyResult:
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    dest_region: str
    size: int
    etag: str | None
    checksum_sha256: str | None
    """The destination's whole-object SHA-256 (base64), computed by S3 during the copy."""
    version_id: str | None = None


def sha256_b64(data: bytes) -> str:
    """The base64 SHA-256 of ``data``, in the form S3 reports ``ChecksumSHA256``."""
    return b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _etag(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def _etag_parts(etag: Any) -> int | None:
    """The part count of a multipart object's ETag (``"<md5>-N"``), or None for a single-part ETag."""
    text = str(etag or "").strip('"')
    head, dash, tail = text.rpartition("-")
    return int(tail) if dash and head and tail.isdigit() else None


def _is_composite(head: Mapping[str, Any]) -> bool:
    """True when a HeadObject answer's SHA-256 is a multipart checksum of part checksums, not of the object.

    S3 says so with ``ChecksumType: COMPOSITE`` or a ``-N`` suffix on the checksum, but not every
    implementation does (moto 5.2's HeadObject gives neither), so an ETag with a part count also marks
    it, unless S3 explicitly says ``FULL_OBJECT``.
    """
    kind = head.get("ChecksumType")
    if kind == "FULL_OBJECT":
        return False
    sha = head.get("ChecksumSHA256")
    return kind == "COMPOSITE" or bool(sha and "-" in str(sha)) or _etag_parts(head.get("ETag")) is not None


class S3ObjectStore:
    """An S3 bucket (optionally under a key prefix) as an ObjectStore. Keys given and returned are relative
    to the prefix. Every method calls S3 through the ``AWSClients`` client for ``region`` and raises
    envsteward errors (NotFoundError for a missing bucket or key, PermissionDeniedError, TransientError...).
    """

    def __init__(
        self,
        clients: AWSClients,
        bucket: str,
        region: str | None = None,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigurationError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part size)",
                system=SYSTEM,
                operation=f"s3 store {bucket}",
            )
        self.clients = clients
        self.bucket = bucket
        self.region = region or clients.region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self.list_page_size = list_page_size
        """ListObjectsV2 page size (S3's default and maximum is 1000); smaller pages only help tests."""

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, region={self.region!r}, prefix={self.prefix!r})"

    @property
    def _s3(self) -> Any:
        return self.clients.s3(self.region)

    def _key(self, key: str) -> str:
        if not key or key.startswith("/"):
            raise ConfigurationError(
                f"invalid object key {key!r}: keys are non-empty relative paths like 'backups/prod/x.zst'",
                system=SYSTEM,
                operation=f"s3 {self.bucket}",
            )
        return self.prefix + key

    def _where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # -- writes ---------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Write (replace) an object with PutObject (SHA-256 checked by S3)."""
        with aws_errors("s3", "put_object", self._where(key)):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                Metadata=dict(metadata or {}),
                ChecksumAlgorithm="SHA256",
            )
        return self._info_after_write(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only when no object has that key: PutObject with ``If-None-Match: *``.

        Returns False (and writes nothing) when an object exists. S3 decides atomically, so two concurrent
        callers cannot both win. moto (5.2) honours ``If-None-Match`` too (the integration tests prove it),
        so there is no head-then-put fallback: such a fallback would not be atomic. Raises TransientError
        for S3's 409 ConditionalRequestConflict (another conditional write in flight: retry), or the usual
        errors.
        """
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", ChecksumAlgorithm="SHA256"
            )
        except (boto_exc.ClientError, boto_exc.BotoCoreError) as exc:
            if error_code(exc) == "PreconditionFailed":
                return False
            raise translate_aws_error(exc, "s3", "put_object if-none-match", self._where(key)) from None
        return True

    def put_stream(
        self, key: str, chunks: Iterable[bytes], metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Upload an object of unknown size from ``chunks`` (any sizes) without holding it whole.

        Parts of ``part_size`` bytes are uploaded as they fill (at most one part plus one chunk in memory);
        a stream smaller than one part becomes a single PutObject. On ANY exception or interruption
        (including one raised by ``chunks`` itself, KeyboardInterrupt or GeneratorExit) the multipart upload
        is aborted, so no object and no orphaned parts remain, and the exception is re-raised.
        """
        full = self._key(key)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        with aws_errors("s3", "create_multipart_upload", self._where(key)):
                            upload_id = str(
                                self._s3.create_multipart_upload(
                                    Bucket=self.bucket,
                                    Key=full,
                                    Metadata=dict(metadata or {}),
                                    ChecksumAlgorithm="SHA256",
                                )["UploadId"]
                            )
                    with memoryview(buffer) as view:  # one copy of the part, not two
                        part = bytes(view[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                with aws_errors("s3", "put_object", self._where(key)):
                    self._s3.put_object(
                        Bucket=self.bucket,
                        Key=full,
                        Body=bytes(buffer),
                        Metadata=dict(metadata or {}),
                        ChecksumAlgorithm="SHA256",
                    )
                return self._info_after_write(key)
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                buffer.clear()
            with aws_errors("s3", "complete_multipart_upload", self._where(key)):
                self._s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            upload_id = None
        except BaseException:
            if upload_id is not None:
                self._abort(full, upload_id)
            raise
        return self._info_after_write(key)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        with aws_errors("s3", f"upload_part {number}", self._where(key)):
            response = self._s3.upload_part(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="SHA256",
            )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if response.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = response["ChecksumSHA256"]
        return part

    def _abort(self, full_key: str, upload_id: str) -> None:
        """Best effort: the original exception matters more than a failed abort (a lifecycle rule for
        incomplete multipart uploads is the backstop)."""
        with contextlib.suppress(boto_exc.BotoCoreError, boto_exc.ClientError):
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)

    def _info_after_write(self, key: str) -> ObjectInfo:
        info = self.head(key)
        if info is None:
            raise NotFoundError(
                "the object is not visible right after it was written",
                system=SYSTEM,
                operation=f"s3 head {key}",
            )
        return info

    # -- reads -------------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object (GetObject; checksum verified when S3 has a whole-object one).
        Raises NotFoundError for a missing key or bucket, IntegrityError for a checksum mismatch."""
        with aws_errors("s3", "get_object", self._where(key)):
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def get_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Read an object in chunks of at most ``chunk_size`` bytes from the streaming body.

        The GetObject call happens now (so NotFoundError is raised here, not on first iteration); the
        body is closed when the iterator is exhausted or closed.
        """
        with aws_errors("s3", "get_object", self._where(key)):
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        return self._iterate_body(response["Body"], chunk_size, key)

    def _iterate_body(self, body: Any, chunk_size: int, key: str) -> Iterator[bytes]:
        try:
            with aws_errors("s3", "get_object read", self._where(key)):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info (HeadObject), or None when it does not exist."""
        try:
            with aws_errors("s3", "head_object", self._where(key)):
                response = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except NotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            modified=response["LastModified"],
            etag=_etag(response.get("ETag")),
            metadata=dict(response.get("Metadata") or {}),
        )

    def checksum(self, key: str) -> ObjectChecksum:
        """The object's ETag and SHA-256 checksum as S3 stores them (HeadObject ChecksumMode=ENABLED).
        Raises NotFoundError."""
        with aws_errors("s3", "head_object", self._where(key)):
            response = self._s3.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        sha = response.get("ChecksumSHA256")
        return ObjectChecksum(etag=_etag(response.get("ETag")), sha256=sha, composite=_is_composite(response))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (ListObjectsV2, all pages), in key order."""
        paginator = self._s3.get_paginator("list_objects_v2")
        with aws_errors("s3", "list_objects_v2", self._where(prefix)):
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                PaginationConfig={"PageSize": self.list_page_size} if self.list_page_size else {},
            )
            for page in pages:
                for item in page.get("Contents") or []:
                    yield ObjectInfo(
                        key=str(item["Key"])[len(self.prefix) :],
                        size=int(item["Size"]),
                        modified=item["LastModified"],
                        etag=_etag(item.get("ETag")),
                    )

    def delete(self, key: str) -> None:
        """Delete an object (DeleteObject); a missing object is not an error, a missing bucket is."""
        with aws_errors("s3", "delete_object", self._where(key)):
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    # -- replication -------------------------------------------------------------------------------------

    def copy_to(
        self,
        dest: S3ObjectStore | str,
        key: str,
        dest_region: str | None = None,
        dest_key: str | None = None,
    ) -> CopyResult:
        """Server-side copy of ``key`` to another bucket, typically in the DR region (CopyObject, sent to
        the destination region's client; the data never passes through this process).

        ``dest`` is another S3ObjectStore (its bucket, region and prefix are used) or a bucket name (region
        ``dest_region``, default settings.dr_region). S3 computes the destination's SHA-256 during the copy;
        when both the source and the copy have a whole-object SHA-256 the two must match, else
        IntegrityError (a multipart source's composite checksum is not comparable: see ``_is_composite``).
        Objects over 5 GiB would need UploadPartCopy, which is not implemented (PermanentError). Raises
        NotFoundError for a missing source object or bucket.
        """
        if isinstance(dest, S3ObjectStore):
            dest_bucket, region = dest.bucket, dest_region or dest.region
            full_dest = dest._key(dest_key or key)
        else:
            dest_bucket, region = dest, dest_region or self.clients.dr_region
            full_dest = dest_key or self._key(key)
        where = f"{self._where(key)} -> s3://{dest_bucket}/{full_dest} ({region})"
        with aws_errors("s3", "head_object", self._where(key)):
            source = self._s3.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        size = int(source["ContentLength"])
        if size > MAX_SINGLE_COPY_SIZE:
            raise PermanentError(
                f"object is {size} bytes; copies over 5 GiB need UploadPartCopy, which is not implemented",
                system=SYSTEM,
                operation=f"s3 copy_object {where}",
            )
        with aws_errors("s3", "copy_object", where):
            response = self.clients.s3(region).copy_object(
                Bucket=dest_bucket,
                Key=full_dest,
                CopySource={"Bucket": self.bucket, "Key": self._key(key)},
                MetadataDirective="COPY",
                ChecksumAlgorithm="SHA256",
            )
        result = response.get("CopyObjectResult") or {}
        dest_sha = result.get("ChecksumSHA256")
        source_sha = source.get("ChecksumSHA256")
        # A multipart source has a checksum of part checksums; CopyObject gives the copy a whole-object one
        # (or keeps a composite one): only two whole-object checksums are comparable. The caller checks the
        # copy against the manifest's own SHA-256 either way (replica.check_data_copy).
        comparable = not _is_composite(source) and not _is_composite(result)
        if source_sha and dest_sha and comparable and source_sha != dest_sha:
            raise IntegrityError(
                "the copy's SHA-256 differs from the source's",
                system=SYSTEM,
                operation=f"s3 copy_object {where}",
            )
        return CopyResult(
            source_bucket=self.bucket,
            source_key=self._key(key),
            dest_bucket=dest_bucket,
            dest_key=full_dest,
            dest_region=region,
            size=size,
            etag=_etag(result.get("ETag")),
            checksum_sha256=dest_sha,
            version_id=response.get("VersionId"),
        )
