"""AWS (boto3) adapter: the client factory, its error mapping and the port implementations.

Import from here; the code lives in ``aws_session`` (``AWSClients``, the only place boto3 clients are
built), ``aws_errors`` (the one mapping from botocore exceptions to envsteward errors), ``aws_s3``,
``aws_ssm``, ``aws_secrets`` and ``aws_kms``. The same code runs against AWS and moto: only the
settings' ``endpoint_url`` differs.
"""

from __future__ import annotations

from envsteward.adapters.aws_errors import aws_errors, error_code, translate_aws_error
from envsteward.adapters.aws_kms import KMSKeyProvider
from envsteward.adapters.aws_s3 import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    CopyResult,
    ObjectChecksum,
    S3ObjectStore,
    sha256_b64,
)
from envsteward.adapters.aws_secrets import (
    SecretsManager,
    SecretsManagerSecretStore,
    SecretsManagerSource,
    SecretSummary,
)
from envsteward.adapters.aws_session import AWSClients
from envsteward.adapters.aws_ssm import SSMParameterSource, SSMSecretStore, decode_scalar, encode_scalar

__all__ = [
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "AWSClients",
    "CopyResult",
    "KMSKeyProvider",
    "ObjectChecksum",
    "S3ObjectStore",
    "SSMParameterSource",
    "SSMSecretStore",
    "SecretSummary",
    "SecretsManager",
    "SecretsManagerSecretStore",
    "SecretsManagerSource",
    "aws_errors",
    "decode_scalar",
    "encode_scalar",
    "error_code",
    "sha256_b64",
    "translate_aws_error",
]
