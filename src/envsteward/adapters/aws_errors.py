"""The one place where boto3/botocore exceptions become envsteward errors.

Messages name the system (``aws``), the service, the operation and the target (bucket/key, parameter or
secret name) plus AWS's error code and HTTP status. AWS's own message text is shown only after
:func:`envsteward._redact.vendor_text` (validation errors echo the offending input between quotes, which
may be a secret value), and botocore's ParamValidationError text (which prints values) is never shown.
The vendor exception is not chained (``from None``), so a logged traceback cannot leak what it said.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions as boto_exc

from envsteward._redact import vendor_text
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
    WriteRaceError,
)

SYSTEM = "aws"

NOT_FOUND_CODES = frozenset(
    {
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "ResourceNotFoundException",
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchUpload",
        "NoSuchVersion",
        "NotFoundException",
        "NotFound",
        "NoSuchEntity",
        "404",
    }
)
PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "Forbidden",
        "403",
    }
)
AUTHENTICATION_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "MissingAuthenticationToken",
        "AuthFailure",
        "401",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "PriorRequestNotComplete",
        "TooManyUpdates",
        "OperationAborted",
        "ConditionalRequestConflict",
    }
)
CONFLICT_CODES = frozenset(
    {
        "PreconditionFailed",
        "412",
        "ResourceExistsException",
        "ParameterAlreadyExists",
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "ConcurrentModificationException",
    }
)
INTEGRITY_CODES = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "BadDigest", "InvalidDigest"}
)

_TRANSIENT_BOTOCORE = (
    boto_exc.EndpointConnectionError,
    boto_exc.ConnectTimeoutError,
    boto_exc.ReadTimeoutError,
    boto_exc.ConnectionClosedError,
    boto_exc.HTTPClientError,
    boto_exc.ResponseStreamingError,
    boto_exc.IncompleteReadError,
)
_AUTH_BOTOCORE = (
    boto_exc.NoCredentialsError,
    boto_exc.PartialCredentialsError,
    boto_exc.CredentialRetrievalError,
    boto_exc.NoAuthTokenError,
    boto_exc.TokenRetrievalError,
)
_CONFIG_BOTOCORE = (boto_exc.ProfileNotFound, boto_exc.NoRegionError, boto_exc.UnknownServiceError)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError (``NoSuchKey``, ``404``...), else ``""``."""
    if isinstance(exc, boto_exc.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: boto_exc.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def translate_aws_error(
    exc: BaseException, service: str, operation: str, target: str = ""
) -> EnvstewardError:
    """Map a botocore exception raised by ``service.operation`` on ``target`` to an envsteward error."""
    op = " ".join(part for part in (service, operation, target) if part)
    if isinstance(exc, EnvstewardError):
        return exc
    if isinstance(exc, boto_exc.ClientError):
        code, status = error_code(exc), _status(exc)
        detail = vendor_text(str(exc.response.get("Error", {}).get("Message") or ""))
        what = f"{code or 'error'} (HTTP {status or '?'})" + (f": {detail}" if detail else "")
        cls: type[EnvstewardError]
        if code in NOT_FOUND_CODES:
            cls = NotFoundError
        elif code in PERMISSION_CODES:
            cls = PermissionDeniedError
        elif code in AUTHENTICATION_CODES:
            cls = AuthenticationError
        elif code == "ConditionalRequestConflict":
            cls = WriteRaceError  # a racing conditional write: the caller's CAS loop re-reads and retries
        elif code in TRANSIENT_CODES:
            cls = TransientError
        elif code in CONFLICT_CODES:
            cls = ConflictError
        elif code in INTEGRITY_CODES:
            cls = IntegrityError
        elif status == 404:
            cls = NotFoundError
        elif status == 403:
            cls = PermissionDeniedError
        elif status == 401:
            cls = AuthenticationError
        elif status in (409, 412):
            cls = ConflictError
        elif status == 429 or status >= 500:
            cls = TransientError
        else:
            cls = PermanentError
        return cls(what, system=SYSTEM, operation=op)
    if isinstance(exc, boto_exc.FlexibleChecksumError):
        return IntegrityError(
            "the downloaded data does not match its stored checksum", system=SYSTEM, operation=op
        )
    if isinstance(exc, _TRANSIENT_BOTOCORE):
        return TransientError(
            f"cannot reach the AWS endpoint ({type(exc).__name__}); is it up and is the endpoint right?",
            system=SYSTEM,
            operation=op,
        )
    if isinstance(exc, _AUTH_BOTOCORE):
        return AuthenticationError(
            f"no usable AWS credentials ({type(exc).__name__}): set a profile, AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or an instance role",
            system=SYSTEM,
            operation=op,
        )
    if isinstance(exc, _CONFIG_BOTOCORE):
        return ConfigurationError(
            f"AWS settings are wrong ({type(exc).__name__}): {vendor_text(str(exc))}",
            system=SYSTEM,
            operation=op,
        )
    if isinstance(exc, boto_exc.ParamValidationError):
        # its text prints the rejected values: never show it
        return PermanentError("botocore rejected the request parameters", system=SYSTEM, operation=op)
    return PermanentError(f"unexpected AWS client error {type(exc).__name__}", system=SYSTEM, operation=op)


@contextmanager
def aws_errors(service: str, operation: str, target: str = "") -> Iterator[None]:
    """Run a block of boto3 calls; re-raise botocore exceptions as envsteward errors."""
    try:
        yield
    except EnvstewardError:
        raise
    except (boto_exc.BotoCoreError, boto_exc.ClientError) as exc:
        raise translate_aws_error(exc, service, operation, target) from None
