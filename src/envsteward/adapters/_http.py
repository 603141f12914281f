"""Shared by the HTTP-speaking adapters (HTTP config source, PagerDuty): error mapping and safe text.

:func:`translate_httpx_error` and :func:`error_for_status` are the one place where httpx failures and
HTTP status codes become envsteward errors. :func:`safe_url` and :func:`scrub` keep credentials out of
messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from envsteward.errors import (
    AuthenticationError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)

if TYPE_CHECKING:
    import httpx

REDACTED = "<redacted>"
_QUOTED = re.compile(r"""(['"`])(?:(?!\1).){0,2000}\1""")


def safe_url(url: str) -> str:
    """``url`` without user info, query string or fragment (they may hold tokens), for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``<redacted>``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def vendor_text(text: str | None, secrets: Iterable[str | None] = (), limit: int = 240) -> str:
    """A vendor's error text made safe to show: secrets and quoted substrings redacted, whitespace
    collapsed, length capped (vendors echo offending input, which may be a secret)."""
    if not text:
        return ""
    cleaned = _QUOTED.sub(rf"\1{REDACTED}\1", scrub(text, secrets))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def error_for_status(status: int, *, system: str, operation: str, detail: str = "") -> EnvstewardError:
    """Map an HTTP status to an envsteward error: 408/429/5xx transient, 401 authentication, 403 denied,
    404/410 not found, other 4xx permanent. ``detail`` must already be safe to show."""
    suffix = f": {detail}" if detail else ""
    message = f"HTTP {status}{suffix}"
    if status in (408, 425, 429) or status >= 500:
        return TransientError(message, system=system, operation=operation)
    if status == 401:
        return AuthenticationError(message, system=system, operation=operation)
    if status == 403:
        return PermissionDeniedError(message, system=system, operation=operation)
    if status in (404, 410):
        return NotFoundError(message, system=system, operation=operation)
    return PermanentError(message, system=system, operation=operation)


def translate_httpx_error(exc: httpx.HTTPError, *, system: str, operation: str) -> EnvstewardError:
    """Map an httpx exception raised before a response arrived (connect, timeout, protocol) to an error."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"timed out ({type(exc).__name__})", system=system, operation=operation)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return TransientError(
            f"connection failed ({type(exc).__name__}); is the server up?", system=system, operation=operation
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return error_for_status(exc.response.status_code, system=system, operation=operation)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentError(f"invalid URL ({type(exc).__name__})", system=system, operation=operation)
    return PermanentError(f"request failed ({type(exc).__name__})", system=system, operation=operation)
