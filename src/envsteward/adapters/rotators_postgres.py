"""Rotation of a PostgreSQL role's password (the consumer side; the store side is the reference's stage).

Set: ``ALTER ROLE <role> PASSWORD '<SCRAM-SHA-256 verifier>'`` through the catalog's admin connection. The
verifier is computed here (libpq's ``PQencryptPasswordConn``, as psql's ``\\password`` does), so the
password itself never reaches the server's statement log. Test: connect as the role with the new
password, and, when the admin connection may read ``pg_authid``, check that the server's verifier is the
new password's (which also holds under ``trust`` authentication, where any password connects). The old
password stops working at set; restore sets it back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr

from envsteward.adapters.postgres import SYSTEM, PostgresClient
from envsteward.errors import ConfigurationError, IntegrityError, PermissionDeniedError


def scram_matches(verifier: str, password: SecretStr) -> bool:
    """Whether ``password`` is the one a ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`` verifier was made
    from (RFC 5802/7677; ASCII passwords need no SASLprep). False for any other format."""
    try:
        method, params, keys = verifier.split("$")
        iterations, salt = params.split(":")
        stored_key = base64.b64decode(keys.split(":")[0])
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.get_secret_value().encode(), base64.b64decode(salt), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    if method != "SCRAM-SHA-256":
        return False
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def role_dsn(admin_dsn: str, role: str, database: str) -> str:
    """The admin DSN's server, as ``role`` on ``database``. Raises ConfigurationError (malformed DSN)."""
    from psycopg.conninfo import make_conninfo

    try:
        return make_conninfo(admin_dsn, user=role, dbname=database)
    except Exception:  # noqa: BLE001 - psycopg's text may echo the DSN
        raise ConfigurationError("malformed admin_dsn", system=SYSTEM, operation="rotate") from None


class PostgresRoleConsumer:
    """:class:`envsteward.rotation.ports.SecretConsumer` for a role's password."""

    def __init__(self, admin: PostgresClient, role: str, database: str, admin_dsn: str) -> None:
        self._admin, self.role, self._database = admin, role, database
        self._role_dsn = role_dsn(admin_dsn, role, database)

    def __repr__(self) -> str:
        return f"PostgresRoleConsumer(role={self.role!r}, server={self._admin.target!r})"

    def describe(self) -> str:
        return f"ALTER ROLE {self.role} PASSWORD (a SCRAM verifier) on {self._admin.target}"

    def apply(self, value: SecretStr) -> str:
        """Calls PostgreSQL (admin). Raises PermissionDeniedError (no CREATEROLE), NotFoundError..."""
        from psycopg import sql

        with self._admin.connect(f"alter role {self.role}") as conn:
            verifier = conn.pgconn.encrypt_password(
                value.get_secret_value().encode(), self.role.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.role), sql.Literal(verifier.decode("ascii"))
                )
            )
        return f"role {self.role}'s password set"

    def holds(self, value: SecretStr) -> bool | None:
        """Whether the server's verifier for the role is ``value``'s; None when the admin connection may not
        read ``pg_authid`` (not a superuser). Calls PostgreSQL (admin)."""
        try:
            rows = self._admin.query(
                "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (self.role,)
            )
        except PermissionDeniedError:
            return None
        if not rows or rows[0][0] is None:
            return False
        return scram_matches(str(rows[0][0]), value)

    def check(self, value: SecretStr) -> str:
        """Connect as the role with ``value`` (and compare the server's verifier). Raises
        AuthenticationError (the password does not work), NotFoundError (no such database),
        IntegrityError (the server holds another password)."""
        PostgresClient(self._role_dsn, password=value).ping()
        held = self.holds(value)
        if held is False:
            raise IntegrityError(
                f"role {self.role}: the server holds another password than the one set",
                system=SYSTEM,
                operation=f"test {self.role}",
            )
        suffix = (
            "; its SCRAM verifier matches" if held else " (pg_authid not readable: verifier not compared)"
        )
        return f"connected as {self.role} to {self._database} with that password{suffix}"

    def confirm(self, value: SecretStr) -> str:
        """The server's verifier is ``value``'s (when readable; else connect as the role with it). Raises
        IntegrityError, or the connection's errors."""
        held = self.holds(value)
        if held is None:
            PostgresClient(self._role_dsn, password=value).ping()
            return f"role {self.role}: connected with the password it should hold"
        if not held:
            raise IntegrityError(
                f"role {self.role}: the server does not hold the password it should",
                system=SYSTEM,
                operation=f"restore {self.role}",
            )
        return f"role {self.role}: holds the password it should (SCRAM verifier matches)"
