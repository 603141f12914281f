"""The health check's PostgreSQL call, through :class:`envsteward.adapters.postgres.PostgresClient`."""

from __future__ import annotations

import math
import time

from pydantic import SecretStr


def postgres_query(dsn: str, password: SecretStr | None, query: str, timeout_seconds: float) -> float:
    """Connect to ``dsn``, run ``query`` (bounded by a statement timeout) and return the latency in ms.

    Calls PostgreSQL. Raises the adapter's errors: ConfigurationError (malformed DSN, DSN with a password),
    TransientError (refused, timeout, server starting), AuthenticationError, PermissionDeniedError,
    NotFoundError (missing database) or PermanentError (a failing query).
    """
    from envsteward.adapters.postgres import PostgresClient

    client = PostgresClient(dsn, password=password, connect_timeout=timeout_seconds)
    started = time.perf_counter()
    with client.connect("health query") as conn:
        conn.execute(f"SET statement_timeout = {max(1, math.ceil(timeout_seconds * 1000))}")
        cursor = conn.execute(query)
        if cursor.description is not None:
            cursor.fetchall()
    return (time.perf_counter() - started) * 1000.0
