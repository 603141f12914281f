"""The one place where hvac and requests exceptions become envsteward errors.

Messages name the system (``vault``), the operation and the path. They carry Vault's own error text only
after :func:`envsteward._redact.vendor_text` (quoted substrings redacted, length capped), and never a
token or a secret value. The vendor exception is not chained (``from None``) so a logged traceback
cannot leak what the vendor put in its message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import hvac.exceptions as hvac_exc
import requests

from envsteward._redact import vendor_text
from envsteward.adapters._http import describe_connect_error
from envsteward.errors import (
    AuthenticationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)

SYSTEM = "vault"

_TRANSIENT_VAULT = (
    hvac_exc.VaultDown,
    hvac_exc.InternalServerError,
    hvac_exc.BadGateway,
    hvac_exc.RateLimitExceeded,
    hvac_exc.VaultNotInitialized,
)
_TRANSIENT_HTTP = (requests.ConnectionError, requests.Timeout)


_INVALID_REQUEST_TEXT: dict[type[PermanentError], str] = {
    PermanentError: "vault rejected the request",
    IntegrityError: "vault could not decrypt: the ciphertext is not from this key or was altered",
    AuthenticationError: "login refused: invalid credentials",
}


def translate_vault_error(
    exc: BaseException,
    operation: str,
    path: str,
    *,
    invalid_request: type[PermanentError] = PermanentError,
) -> EnvstewardError:
    """Map an hvac/requests exception to an envsteward error for ``operation`` on ``path``.

    A 400 about a check-and-set mismatch is a ConflictError; any other 400 becomes ``invalid_request``:
    IntegrityError for transit decrypt (the ciphertext is not ours or was altered), AuthenticationError
    for a login (Vault answers 400 to a wrong AppRole secret id), PermanentError otherwise.
    """
    op = f"{operation} {path}" if path else operation
    if isinstance(exc, EnvstewardError):
        return exc
    if isinstance(exc, hvac_exc.VaultError):
        detail = vendor_text(", ".join(exc.errors) if exc.errors else str(exc.args[0] or ""))
        suffix = f" ({detail})" if detail else ""
        if isinstance(exc, hvac_exc.InvalidPath):
            return NotFoundError(f"nothing at this path{suffix}", system=SYSTEM, operation=op)
        if isinstance(exc, hvac_exc.Forbidden):
            return PermissionDeniedError(
                f"permission denied: the token's policies do not allow this{suffix}",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, hvac_exc.Unauthorized):
            return AuthenticationError(
                f"not authenticated: the token is missing, expired or revoked{suffix}",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, hvac_exc.VaultDown):
            return TransientError(f"vault is sealed or unavailable{suffix}", system=SYSTEM, operation=op)
        if isinstance(exc, _TRANSIENT_VAULT):
            return TransientError(f"vault answered {type(exc).__name__}{suffix}", system=SYSTEM, operation=op)
        if isinstance(exc, hvac_exc.PreconditionFailed):
            return ConflictError(f"precondition failed{suffix}", system=SYSTEM, operation=op)
        if isinstance(exc, hvac_exc.InvalidRequest):
            lowered = detail.lower()
            if "check-and-set" in lowered or "cas" in lowered.split():
                return ConflictError(
                    f"the secret changed since it was read (check-and-set failed){suffix}",
                    system=SYSTEM,
                    operation=op,
                )
            text = _INVALID_REQUEST_TEXT.get(invalid_request, "vault rejected the request")
            return invalid_request(f"{text}{suffix}", system=SYSTEM, operation=op)
        return PermanentError(
            f"unexpected vault error {type(exc).__name__}{suffix}", system=SYSTEM, operation=op
        )
    if isinstance(exc, _TRANSIENT_HTTP):
        reason = "timed out" if isinstance(exc, requests.Timeout) else describe_connect_error(exc)
        return TransientError(
            f"cannot reach vault ({reason or type(exc).__name__}); is it running and is the address right?",
            system=SYSTEM,
            operation=op,
        )
    if isinstance(exc, requests.RequestException):
        return PermanentError(
            f"HTTP error talking to vault ({type(exc).__name__})", system=SYSTEM, operation=op
        )
    return PermanentError(f"unexpected error {type(exc).__name__}", system=SYSTEM, operation=op)


@contextmanager
def vault_errors(
    operation: str, path: str = "", *, invalid_request: type[PermanentError] = PermanentError
) -> Iterator[None]:
    """Run a block of hvac calls; re-raise anything hvac or requests raises as an envsteward error."""
    try:
        yield
    except EnvstewardError:
        raise
    except (hvac_exc.VaultError, requests.RequestException) as exc:
        raise translate_vault_error(exc, operation, path, invalid_request=invalid_request) from None
