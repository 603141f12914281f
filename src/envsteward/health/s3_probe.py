"""The health check's S3 call (HeadBucket), through the AWS adapter's client factory."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envsteward.adapters.aws import AWSClients


def s3_head_bucket(clients: AWSClients, bucket: str, region: str | None = None) -> float:
    """HeadBucket ``bucket`` (in ``region``, default the settings' region); return the latency in ms.

    Calls AWS S3. Raises the adapter's errors: NotFoundError (no such bucket), PermissionDeniedError,
    AuthenticationError, TransientError (unreachable endpoint, throttling, 5xx). Timeouts and botocore's
    own retries come from the AWS settings.
    """
    from envsteward.adapters.aws import aws_errors

    s3 = clients.s3(region)
    started = time.perf_counter()
    with aws_errors("s3", "head_bucket", bucket):
        s3.head_bucket(Bucket=bucket)
    return (time.perf_counter() - started) * 1000.0
