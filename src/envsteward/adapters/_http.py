"""Shared by the HTTP-speaking adapters (HTTP config source, PagerDuty, Slack, HTTP health checks): error
mapping, safe URLs, a status probe.

:func:`translate_httpx_error` and :func:`error_for_status` are the one place where httpx failures and
HTTP status codes become envsteward errors. :func:`safe_url` keeps credentials in a URL out of messages;
response bodies go through :func:`envsteward._redact.vendor_text`.
"""

from __future__ import annotations

import threading
import time
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


def describe_connect_error(exc: BaseException) -> str | None:
    """A short, safe reason for a failed connection ("connection refused", "host not found", ...), read from
    the exception's text (which is not shown: it may quote a URL); None when the text says nothing known."""
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "host not found"
    if "certificate" in text or "ssl" in text:
        return "TLS handshake failed"
    if "unreachable" in text:
        return "network unreachable"
    return None


def translate_httpx_error(
    exc: httpx.HTTPError, *, system: str, operation: str, timeout_seconds: float | None = None
) -> EnvstewardError:
    """Map an httpx exception raised before a response arrived (connect, timeout, protocol) to an error.

    The one place that translates httpx's exceptions (HTTP sources, PagerDuty, HTTP health checks).
    """
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        after = f"after {timeout_seconds:g} s" if timeout_seconds is not None else f"({type(exc).__name__})"
        return TransientError(f"timed out {after}", system=system, operation=operation)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        reason = describe_connect_error(exc) or f"connection failed ({type(exc).__name__}); is the server up?"
        return TransientError(reason, system=system, operation=operation)
    if isinstance(exc, httpx.HTTPStatusError):
        return error_for_status(exc.response.status_code, system=system, operation=operation)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentError(
            f"invalid URL ({type(exc).__name__}; expected http:// or https://)",
            system=system,
            operation=operation,
        )
    return PermanentError(f"request failed ({type(exc).__name__})", system=system, operation=operation)


def get_status(
    url: str, *, timeout_seconds: float, system: str, operation: str, user_agent: str = "envsteward"
) -> tuple[int, float]:
    """GET ``url`` (no redirects followed, body ignored) and return the status code and latency in ms.

    Calls the HTTP server at ``url``. Raises TransientError (timeout, refused, network), PermanentError
    (invalid URL); a status code is a result here, not an error.
    """
    import httpx

    client = _probe_client()
    try:
        started = time.perf_counter()
        response = client.get(
            url, headers={"User-Agent": user_agent}, timeout=timeout_seconds, follow_redirects=False
        )
        return response.status_code, (time.perf_counter() - started) * 1000.0
    except httpx.HTTPError as exc:
        raise translate_httpx_error(
            exc, system=system, operation=operation, timeout_seconds=timeout_seconds
        ) from None


_PROBE_CLIENT: list[httpx.Client] = []
_PROBE_CLIENT_LOCK = threading.Lock()


def _probe_client() -> httpx.Client:
    """The process's one client for :func:`get_status` (thread-safe; built on first use).

    Building an ``httpx.Client`` costs ~30 ms of CPU (it loads the CA bundle into a new TLS context): per
    probe, that was most of a 500-check health run's CPU time (``benchmarks/scale``). No keep-alive: every
    probe still opens its own connection (and TLS handshake), so a server that stopped accepting
    connections is not hidden behind a pooled one.
    """
    import httpx

    with _PROBE_CLIENT_LOCK:
        if not _PROBE_CLIENT:
            _PROBE_CLIENT.append(
                httpx.Client(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))
            )
        return _PROBE_CLIENT[0]
