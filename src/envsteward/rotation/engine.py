"""One rotation: the four steps over a store (:class:`~.ports.SecretStage`) and, where the value is also
used elsewhere, a consumer (:class:`~.ports.SecretConsumer`), and restoring the previous value on failure.

The pending value lives in this object only (in the process running the rotation): the flow's tasks find
it through :mod:`envsteward.rotation.sessions` by a handle.

=========  ====================================================  =============================================
step       store only (Vault, Secrets Manager, SSM)              with a consumer (PostgreSQL role)
=========  ====================================================  =============================================
create     generate; read current; stage (SM: ``AWSPENDING``)    the same
set        nothing (the store is where it is used)               ``ALTER ROLE`` to the new password
test       the staged value reads back / check-and-set holds     connect as the role with it; and the store
finish     make it current (CAS), read it back                   the same: the store now holds the new one
=========  ====================================================  =============================================

On failure, :meth:`Rotation.restore` undoes exactly what was done, newest first: the store's commit is
reverted (or its staging dropped), the consumer is set back to the previous value and checked with it.
"""

from __future__ import annotations

import threading

from pydantic import SecretStr

from envsteward.catalog.models import GeneratedValuePolicy
from envsteward.errors import IntegrityError, PermanentError
from envsteward.rotation.generate import conforms, describe_policy, generate_value
from envsteward.rotation.model import RestoreError, Step, StepReport
from envsteward.rotation.ports import SecretConsumer, SecretStage
from envsteward.scan.live import describe_failure


class Rotation:
    """The steps of one reference's rotation, in order. Not reusable: one object per rotation."""

    def __init__(
        self,
        kind: str,
        stage: SecretStage,
        policy: GeneratedValuePolicy,
        consumer: SecretConsumer | None = None,
    ) -> None:
        self.kind = kind
        self.stage = stage
        self.consumer = consumer
        self.policy = policy
        self._pending: SecretStr | None = None
        self._done: list[Step] = []
        self._committed = False
        self._consumer_touched = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Rotation(kind={self.kind!r}, done={[step.value for step in self._done]!r})"

    @property
    def done(self) -> tuple[Step, ...]:
        return tuple(self._done)

    def plan(self) -> tuple[tuple[Step, str], ...]:
        """What each step does (no call)."""
        generated = describe_policy(self.policy)
        return (
            (Step.CREATE, f"generate a new value ({generated}); {self.stage.describe()}"),
            (
                Step.SET,
                self.consumer.describe()
                if self.consumer
                else "nothing to set: consumers read the value from its store",
            ),
            (
                Step.TEST,
                "check the new value where it is used, and that the store still holds the version read"
                if self.consumer
                else "check that the store still holds the version read (check-and-set would pass)",
            ),
            (Step.FINISH, "make the new value current in its store and read it back"),
        )

    def _need(self, step: Step, before: Step) -> SecretStr:
        if before not in self._done or self._pending is None:
            raise PermanentError(f"step {step.value} needs step {before.value} first", system="rotation")
        return self._pending

    def run(self, step: Step) -> StepReport:
        """Run one step (in order: create, set, test, finish). Calls the store and the consumer. Raises
        their errors; the value stays in this object."""
        with self._lock:
            detail = {
                Step.CREATE: self._create,
                Step.SET: self._set,
                Step.TEST: self._test,
                Step.FINISH: self._finish,
            }[step]()
            self._done.append(step)
            return StepReport(step=step, detail=detail)

    def _create(self) -> str:
        if self._done:
            raise PermanentError("this rotation was already started", system="rotation")
        pending = generate_value(self.policy)
        if not conforms(pending, self.policy):  # pragma: no cover - generate_value is correct by design
            raise IntegrityError("the generated value does not match the policy", system="rotation")
        detail = self.stage.begin(pending)
        self._pending = pending
        return f"generated {describe_policy(self.policy)}; {detail}"

    def _set(self) -> str:
        pending = self._need(Step.SET, Step.CREATE)
        if self.consumer is None:
            return "nothing to set: consumers read the value from its store"
        self._consumer_touched = True
        return self.consumer.apply(pending)

    def _test(self) -> str:
        pending = self._need(Step.TEST, Step.SET)
        parts = [self.consumer.check(pending)] if self.consumer else []
        parts.append(self.stage.check_staged())
        return "; ".join(parts)

    def _finish(self) -> str:
        self._need(Step.FINISH, Step.TEST)
        committed = self.stage.commit()
        self._committed = True
        return f"{committed}; {self.stage.verify_current()}"

    def restore(self) -> str:
        """Put the previous value back wherever this rotation changed anything, newest change first, and
        check it. Calls the store and the consumer. Raises RestoreError naming what is left changed."""
        with self._lock:
            done: list[str] = []
            problems: list[str] = []
            if self._committed:
                _attempt(self.stage.revert, "store", done, problems)
            elif Step.CREATE in self._done or self._pending is not None:
                _attempt(self.stage.abort, "store", done, problems)
            if self.consumer is not None and self._consumer_touched:
                previous = self.stage.previous()
                consumer = self.consumer
                _attempt(lambda: consumer.apply(previous), "consumer", done, problems)
                if not problems:
                    _attempt(lambda: consumer.confirm(previous), "consumer check", done, problems)
            self._pending = None
            if problems:
                raise RestoreError(
                    "the previous value could not be fully restored: " + "; ".join(problems),
                    system="rotation",
                )
            return "; ".join(done) or "nothing was changed"

    def resync(self) -> str:
        """Repair after a killed rotation (see :mod:`envsteward.rotation.journal`): make the consumer hold
        the value the store says is current (the previous one if the run died before finish, the new one
        after) and check it. Calls the store and the consumer. Raises RestoreError naming what failed."""
        if self.consumer is None:
            return "no consumer: the store's check-and-set left nothing half-done"
        with self._lock:
            try:
                current = self.stage.current()
                applied = self.consumer.apply(current)
                confirmed = self.consumer.confirm(current)
            except Exception as exc:  # noqa: BLE001 - the reason is kept, safely; the journal stays
                raise RestoreError(
                    "the consumer could not be set to the store's current value: " + describe_failure(exc),
                    system="rotation",
                ) from None
            return f"{applied} to the store's current value; {confirmed}"

    def discard(self) -> None:
        """Forget the pending value."""
        self._pending = None


def _attempt(action: object, what: str, done: list[str], problems: list[str]) -> None:
    assert callable(action)
    try:
        done.append(str(action()))
    except Exception as exc:  # noqa: BLE001 - each restore part is tried; the reason is kept, safely
        problems.append(f"{what}: {describe_failure(exc)}")
