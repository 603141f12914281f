"""The errors envsteward raises, and whether retrying can help.

Every adapter translates its vendor library's exceptions into one of these at the boundary, so the rest
of the code (and Prefect's ``retry_condition_fn``) only has to ask :attr:`EnvstewardError.transient`.

Messages name the system and the operation (``vault: read secret/app/db``), never a secret value.
"""

from __future__ import annotations


class EnvstewardError(Exception):
    """Base class. ``transient`` says whether the same call may succeed if retried later."""

    transient: bool = False

    def __init__(self, message: str, *, system: str | None = None, operation: str | None = None) -> None:
        self.system = system
        self.operation = operation
        prefix = ""
        if system and operation:
            prefix = f"{system}: {operation}: "
        elif system:
            prefix = f"{system}: "
        super().__init__(f"{prefix}{message}")


class TransientError(EnvstewardError):
    """A failure that may go away: timeouts, refused connections, throttling, 5xx, a sealed Vault."""

    transient = True


class WriteRaceError(TransientError):
    """Another writer's conditional write of the same object is still in flight (S3's 409
    ConditionalRequestConflict): re-read and try again; a compare-and-set loop treats it as a lost race."""


class PermanentError(EnvstewardError):
    """A failure that retrying will not fix: bad input, missing things, denied access."""


class NotFoundError(PermanentError):
    """The path, key, bucket, object or parameter does not exist."""


class PermissionDeniedError(PermanentError):
    """The credentials are valid but not allowed to do this."""


class AuthenticationError(PermanentError):
    """The credentials are missing, expired or wrong."""


class ConflictError(PermanentError):
    """A precondition failed: the thing exists already, or changed since it was read."""


class ConfigurationError(PermanentError):
    """envsteward's own settings or catalog are wrong; the message says where and what to change."""


class IntegrityError(PermanentError):
    """Stored data failed verification (checksum, signature, hash chain). Never retried, never ignored."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is an envsteward error that retrying may fix (used by task retry conditions)."""
    return isinstance(exc, EnvstewardError) and exc.transient
