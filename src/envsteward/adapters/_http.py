"""Shared by the HTTP-speaking adapters (HTTP config source, PagerDuty, Slack): error mapping, safe URLs.

:func:`translate_httpx_error` and :func:`error_for_status` are the one place where httpx failures and
HTTP status codes become envsteward errors. :func:`safe_url` keeps credentials in a URL out of messages;
response bodies go through :func:`envsteward._redact.vendor_text`.
"""

from __future__ import annotations

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


def safe_url(url: str) -> str:
    """``url`` without user info, query string or fragment (they may hold tokens), for messages."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return "<unparsable url>"
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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
