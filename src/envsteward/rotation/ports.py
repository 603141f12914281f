"""The narrow protocols rotation adapters implement (registry kind ``rotator``).

A :class:`SecretStage` is the store the catalog's reference points at. It is stateful for one rotation: it
remembers the current version (and value, in this process only) at :meth:`~SecretStage.begin`, so it can
make the pending value current with a check-and-set and put the previous one back. A
:class:`SecretConsumer` is where the value is used besides the store (a PostgreSQL role): the value is set
there before the store makes it current, and set back on failure.

Every method calls its external system and raises envsteward errors (TransientError when retrying can
help); none puts a value into a message. Return values are one-line, value-free descriptions.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class SecretStage(Protocol):
    """Where a reference's value is stored."""

    def describe(self) -> str:
        """What the store does with the pending value (plan text; no call)."""
        ...

    def begin(self, pending: SecretStr) -> str:
        """Read the current version and value; stage ``pending`` where the store can (Secrets Manager
        ``AWSPENDING``), else hold it in memory. Raises NotFoundError when there is nothing to rotate."""
        ...

    def previous(self) -> SecretStr:
        """The value that was current at :meth:`begin` (for the consumer's restore)."""
        ...

    def current(self) -> SecretStr:
        """Read the value the store holds as current now, without staging anything (the repair of a killed
        rotation sets the consumer to it). Raises NotFoundError when the secret or key is gone."""
        ...

    def check_staged(self) -> str:
        """The store side of the test step: the staged value reads back as ``pending``, or the current
        version is still the one read at :meth:`begin` (a check-and-set would pass). Raises ConflictError
        when someone changed the secret meanwhile."""
        ...

    def commit(self) -> str:
        """Make the pending value current (Vault: a new version with check-and-set; Secrets Manager: move
        ``AWSCURRENT``; SSM: a new parameter version). Raises ConflictError on a lost check-and-set."""
        ...

    def verify_current(self) -> str:
        """Read the current value back: it must be the pending one. Raises IntegrityError otherwise."""
        ...

    def abort(self) -> str:
        """Before :meth:`commit`: drop what :meth:`begin` staged (Secrets Manager's ``AWSPENDING`` label)."""
        ...

    def revert(self) -> str:
        """After :meth:`commit`: make the previous value current again (and check it reads back)."""
        ...


class SecretConsumer(Protocol):
    """Where the value is used besides its store."""

    def describe(self) -> str:
        """What set and test do (plan text; no call)."""
        ...

    def apply(self, value: SecretStr) -> str:
        """Make ``value`` the credential the consumer accepts (idempotent)."""
        ...

    def check(self, value: SecretStr) -> str:
        """Prove that ``value`` works (and that the consumer holds it). Raises when it does not."""
        ...

    def confirm(self, value: SecretStr) -> str:
        """After a restore: prove the consumer holds ``value`` again (without depending on what made the
        test step fail, where it can). Raises when it does not."""
        ...
