"""httpx exceptions in our own words (shared by the HTTP and Vault checks)."""

from __future__ import annotations

from envsteward.errors import EnvstewardError, PermanentError, TransientError


def translate_httpx(exc: Exception, timeout_seconds: float) -> EnvstewardError:
    """Map an httpx exception to an envsteward error with our own words (no URL, no response text)."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"timed out after {timeout_seconds:g} s")
    if isinstance(exc, httpx.ConnectError):
        return TransientError(describe_connect_error(exc))
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return PermanentError("invalid URL in the check (expected http:// or https://)")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"transport error ({type(exc).__name__})")
    return PermanentError(f"HTTP error ({type(exc).__name__})")


def describe_connect_error(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "host not found"
    if "certificate" in text or "ssl" in text:
        return "TLS handshake failed"
    if "unreachable" in text:
        return "network unreachable"
    return "cannot connect"
