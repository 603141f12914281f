"""The AWS error mapping: every code family, plus the credential and settings failures seen for real."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from envsteward.adapters.aws import AWSClients, S3ObjectStore, translate_aws_error
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.settings import AWSSettings
from tests.fixtures.aws import MotoServer


def _client_error(code: str, status: int, message: str = "msg") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ParameterNotFound", 400, NotFoundError),
        ("ResourceNotFoundException", 400, NotFoundError),
        ("NoSuchKey", 404, NotFoundError),
        ("NoSuchBucket", 404, NotFoundError),
        ("404", 404, NotFoundError),
        ("AccessDenied", 403, PermissionDeniedError),
        ("AccessDeniedException", 400, PermissionDeniedError),
        ("UnauthorizedOperation", 403, PermissionDeniedError),
        ("Throttling", 400, TransientError),
        ("ThrottlingException", 400, TransientError),
        ("RequestLimitExceeded", 503, TransientError),
        ("SlowDown", 503, TransientError),
        ("SomethingNew", 500, TransientError),
        ("SomethingNew", 503, TransientError),
        ("SomethingNew", 429, TransientError),
        ("PreconditionFailed", 412, ConflictError),
        ("InvalidCiphertextException", 400, IntegrityError),
        ("IncorrectKeyException", 400, IntegrityError),
        ("ExpiredToken", 400, AuthenticationError),
        ("ValidationException", 400, PermanentError),
    ],
)
def test_client_error_codes(code: str, status: int, expected: type[Exception]) -> None:
    error = translate_aws_error(_client_error(code, status), "s3", "get_object", "s3://b/k")
    assert type(error) is expected
    assert str(error).startswith(f"aws: s3 get_object s3://b/k: {code} (HTTP {status})")
    assert error.transient is (expected is TransientError)


def test_botocore_errors() -> None:
    def translate(exc: Exception) -> Exception:
        return translate_aws_error(exc, "ssm", "get_parameter", "/x")

    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x")), TransientError)
    assert isinstance(translate(ReadTimeoutError(endpoint_url="http://x")), TransientError)
    assert isinstance(translate(NoCredentialsError()), AuthenticationError)
    hidden = translate(ParamValidationError(report="Invalid type for parameter Value, value: SEEDED-123"))
    assert type(hidden) is PermanentError
    assert "SEEDED-123" not in str(hidden)
    echoed = translate(_client_error("ValidationException", 400, "Value 'SEEDED-456' at 'value' failed"))
    assert "SEEDED-456" not in str(echoed)
    assert "failed" in str(echoed)


def test_long_or_multi_line_echoed_values_are_hidden() -> None:
    # The quote pattern used before gave up after 2000 characters or at a line break and showed the value.
    long_value = "SEEDED-LONG-" * 300
    echoed = translate_aws_error(
        _client_error("ValidationException", 400, f"Value '{long_value}' at 'value' failed"),
        "ssm",
        "put",
        "/x",
    )
    assert "SEEDED-LONG" not in str(echoed)
    pem = "-----BEGIN KEY-----\nSEEDED-PEM-BODY\n-----END KEY-----"
    echoed = translate_aws_error(
        _client_error("ValidationException", 400, f"Value '{pem}' bad"), "ssm", "put"
    )
    assert "SEEDED-PEM-BODY" not in str(echoed)


def test_no_credentials_is_authentication_error(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    clients = AWSClients(AWSSettings(endpoint_url=moto_server.endpoint_url, max_attempts=1))
    with pytest.raises(AuthenticationError, match="no usable AWS credentials"):
        S3ObjectStore(clients, "b").get_bytes("k")


def test_unknown_profile_is_configuration_error(moto_server: MotoServer) -> None:
    clients = AWSClients(AWSSettings(endpoint_url=moto_server.endpoint_url, profile="no-such-profile"))
    with pytest.raises(ConfigurationError, match="ProfileNotFound"):
        clients.s3()


def test_clients_are_cached_per_service_and_region(aws_clients: AWSClients) -> None:
    assert aws_clients.s3() is aws_clients.client("s3", aws_clients.region)
    assert aws_clients.s3(aws_clients.dr_region) is not aws_clients.s3()
    assert aws_clients.s3(aws_clients.dr_region).meta.region_name == aws_clients.dr_region
    assert aws_clients.ssm().meta.endpoint_url == aws_clients.settings.endpoint_url
