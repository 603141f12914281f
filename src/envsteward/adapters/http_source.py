"""A read-only ConfigSource over an HTTP(S) endpoint that returns a JSON object (httpx).

Typical use: a service's ``/config`` or feature-flag endpoint whose live values are compared with the
catalog. Header values may be secrets (an ``Authorization`` header): pass them as ``SecretStr``; they are
sent, never shown, and never sent to another origin a redirect points at. Messages show the URL without
user info or query string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from envsteward._redact import vendor_text
from envsteward.adapters._http import error_for_status, safe_url, translate_httpx_error
from envsteward.errors import PermanentError
from envsteward.ports import JSONValue

if TYPE_CHECKING:
    import httpx

SYSTEM = "http"


class HTTPJSONSource:
    """ConfigSource that GETs ``url`` and expects a JSON object back. Read-only."""

    writable = False

    def __init__(
        self,
        name: str,
        url: str,
        timeout_seconds: float = 10.0,
        headers: Mapping[str, str | SecretStr] | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.name = name
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._headers = dict(headers or {})
        self._verify_tls = verify_tls

    def __repr__(self) -> str:
        return f"HTTPJSONSource(name={self.name!r}, url={safe_url(self.url)!r})"

    def read(self) -> Mapping[str, JSONValue]:
        """GET the URL and return the JSON object it answers with. Calls the HTTP endpoint.

        Raises TransientError (refused, timeout, 408/429/5xx), NotFoundError (404/410),
        AuthenticationError (401), PermissionDeniedError (403), PermanentError (other 4xx, a body that is
        not JSON, JSON that is not an object, or a redirect to another origin while secret headers are set).
        """
        import httpx

        operation = f"read {self.name} (GET {safe_url(self.url)})"
        secrets = [v.get_secret_value() if isinstance(v, SecretStr) else None for v in self._headers.values()]
        headers = {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in self._headers.items()
        }
        headers.setdefault("Accept", "application/json")
        try:
            hooks = {"request": [self._same_origin_guard(operation)]} if any(secrets) else {}
            with httpx.Client(
                timeout=self.timeout_seconds,
                verify=self._verify_tls,
                follow_redirects=True,
                event_hooks=hooks,
            ) as client:
                response = client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            raise translate_httpx_error(exc, system=SYSTEM, operation=operation) from None
        if response.status_code >= 400:
            detail = vendor_text(response.text, secrets, limit=160)
            raise error_for_status(response.status_code, system=SYSTEM, operation=operation, detail=detail)
        try:
            document = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = (
                f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            )
            content_type = response.headers.get("content-type", "no content type")
            raise PermanentError(
                f"response is not JSON{where}; content type {content_type}",
                system=SYSTEM,
                operation=operation,
            ) from None
        if not isinstance(document, dict):
            raise PermanentError(
                f"response is JSON but not an object (got a {type(document).__name__})",
                system=SYSTEM,
                operation=operation,
            )
        return document

    def _same_origin_guard(self, operation: str) -> Callable[[httpx.Request], None]:
        """A request hook that refuses to follow a redirect to another origin while secret headers are set.

        httpx drops ``Authorization`` on such a redirect, but would send any other header (an API key).
        """
        import httpx

        start = _origin(httpx.URL(self.url))

        def guard(request: httpx.Request) -> None:
            if _origin(request.url) != start:
                raise PermanentError(
                    f"redirected to {safe_url(str(request.url))}, another origin; secret headers are only "
                    "sent to the configured origin: set the source's url to the final address",
                    system=SYSTEM,
                    operation=operation,
                )

        return guard

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        """Always raises PermanentError: HTTP sources are read-only."""
        raise PermanentError(
            f"source {self.name!r} is read-only (HTTP sources cannot be written)",
            system=SYSTEM,
            operation=f"write {'/'.join(key_path)}",
        )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default_port
