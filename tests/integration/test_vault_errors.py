"""The Vault error mapping for answers a healthy dev server does not give (sealed, 5xx, 429...)."""

from __future__ import annotations

import hvac.exceptions as hvac_exc
import pytest
import requests

from envsteward.adapters.vault import translate_vault_error
from envsteward.errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (hvac_exc.InvalidPath(errors=[]), NotFoundError),
        (hvac_exc.Forbidden(errors=["permission denied"]), PermissionDeniedError),
        (hvac_exc.Unauthorized(errors=["missing client token"]), AuthenticationError),
        (hvac_exc.VaultDown(errors=["Vault is sealed"]), TransientError),
        (hvac_exc.InternalServerError(errors=["boom"]), TransientError),
        (hvac_exc.BadGateway(errors=[]), TransientError),
        (hvac_exc.RateLimitExceeded(errors=[]), TransientError),
        (hvac_exc.InvalidRequest(errors=["bad input"]), PermanentError),
        (
            hvac_exc.InvalidRequest(errors=["check-and-set parameter did not match the current version"]),
            ConflictError,
        ),
        (hvac_exc.PreconditionFailed(errors=[]), ConflictError),
        (requests.ConnectionError("refused"), TransientError),
        (requests.Timeout("slow"), TransientError),
    ],
)
def test_mapping(exc: Exception, expected: type[Exception]) -> None:
    error = translate_vault_error(exc, "kv read", "secret/app/db")
    assert type(error) is expected
    assert str(error).startswith("vault: kv read secret/app/db: ")
    assert error.transient is (expected is TransientError)


def test_invalid_request_override_and_redaction() -> None:
    decrypt = translate_vault_error(
        hvac_exc.InvalidRequest(errors=["cipher: message authentication failed"]),
        "transit decrypt",
        "transit/decrypt/k",
        invalid_request=IntegrityError,
    )
    assert type(decrypt) is IntegrityError
    echoed = translate_vault_error(hvac_exc.InvalidRequest(errors=["bad value 'SEEDED-1'"]), "kv write", "p")
    assert "SEEDED-1" not in str(echoed)
