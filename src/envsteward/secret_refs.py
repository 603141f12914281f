"""Secret references: where a secret lives, never what it is.

Syntax (one URI per secret, documented in the README):

* ``vault://<mount>/<path>#<key>`` — a key of a Vault KV v2 secret, e.g. ``vault://secret/app/db#password``
* ``aws-sm://<secret-name>#<key>`` — a key of a JSON Secrets Manager secret, e.g. ``aws-sm://prod/db#password``;
  without ``#<key>`` the whole secret string
* ``ssm://<parameter-name>`` — an SSM parameter (SecureString or String), e.g. ``ssm:///app/prod/LOG_LEVEL``
* ``env://<VARIABLE>`` — an environment variable of the envsteward process (for the embedded default)

In catalog YAML a secret reference is written as a string value starting with ``secret+``, e.g.
``password: secret+vault://secret/app/db#password``, so that a plain URL value is never mistaken for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

SECRET_PREFIX = "secret+"  # noqa: S105 - a marker, not a password
SCHEMES = ("vault", "aws-sm", "ssm", "env")

_VAULT = re.compile(
    r"^vault://(?P<mount>[A-Za-z0-9_.-]+)/(?P<path>[A-Za-z0-9_./-]+[A-Za-z0-9_-])#(?P<key>[^#\s]+)$"
)
_AWS_SM = re.compile(r"^aws-sm://(?P<name>[A-Za-z0-9/_+=.@-]+)(?:#(?P<key>[^#\s]+))?$")
_SSM = re.compile(r"^ssm://(?P<name>/?[A-Za-z0-9_./-]+)$")
_ENV = re.compile(r"^env://(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


class SecretRefError(ValueError):
    """A malformed secret reference; the message shows the accepted forms."""


@dataclass(frozen=True)
class SecretRef:
    """A parsed secret reference; ``location`` is scheme-specific (Vault ``mount/path``, SM or SSM name)."""

    scheme: str
    location: str
    key: str | None = None

    @property
    def mount(self) -> str:
        """Vault only: the KV v2 mount."""
        return self.location.split("/", 1)[0]

    @property
    def path(self) -> str:
        """Vault only: the secret path inside the mount."""
        return self.location.split("/", 1)[1] if "/" in self.location else ""

    def uri(self) -> str:
        base = f"{self.scheme}://{self.location}"
        return f"{base}#{self.key}" if self.key else base

    def __str__(self) -> str:
        return self.uri()

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """Parse ``vault://…``, ``aws-sm://…``, ``ssm://…`` or ``env://…`` (an optional ``secret+`` prefix is
        accepted). Raises SecretRefError naming the accepted forms."""
        raw = text.removeprefix(SECRET_PREFIX).strip()
        if match := _VAULT.match(raw):
            return cls("vault", f"{match['mount']}/{match['path']}", match["key"])
        if match := _AWS_SM.match(raw):
            return cls("aws-sm", match["name"], match["key"])
        if match := _SSM.match(raw):
            return cls("ssm", match["name"], None)
        if match := _ENV.match(raw):
            return cls("env", match["name"], None)
        raise SecretRefError(
            f"malformed secret reference {raw!r}: expected vault://MOUNT/PATH#KEY, aws-sm://NAME[#KEY], "
            "ssm://NAME or env://VARIABLE"
        )


def is_secret_ref(value: Any) -> bool:
    """True for a catalog string value that declares a secret reference (``secret+…``)."""
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def _coerce(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise SecretRefError(f"a secret reference must be a string, got {type(value).__name__}")
    return SecretRef.parse(value)


SecretRefField = Annotated[
    SecretRef, BeforeValidator(_coerce), PlainSerializer(lambda ref: ref.uri(), return_type=str)
]
"""Use in pydantic models for fields that hold a secret reference (validated, serialised as its URI)."""
