"""Drift rules compiled once per call: every glob in one GlobSet, and what a match means for a node."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, NamedTuple

from envsteward.drift.rules import DriftRules, IgnoreRule
from envsteward.errors import ConfigurationError
from envsteward.ports import Severity
from envsteward.tree import Glob, GlobError, GlobSet, States, parse_glob


class Accept(NamedTuple):
    severity: Severity | None
    ignore: IgnoreRule | None
    expired: IgnoreRule | None
    secret: bool
    list_key: str | None
    env_specific: bool


_NOTHING = Accept(None, None, None, False, None, False)

_SEVERITY, _IGNORE, _SECRET, _LIST_KEY, _ENV_SPECIFIC = range(5)


class CompiledRules:
    """Every glob of one call in one :class:`GlobSet`, with what each means when it matches."""

    def __init__(
        self,
        rules: DriftRules,
        *,
        environment: str | None,
        today: date,
        use_ignores: bool,
        environment_specific: Iterable[str] = (),
    ) -> None:
        globs: list[Glob] = []
        self._roles: list[tuple[int, Any]] = []
        self.expired: list[IgnoreRule] = []
        self.default_severity = rules.default_severity

        def add(text: str, field: str, role: int, payload: Any) -> None:
            try:
                globs.append(parse_glob(text))
            except GlobError as exc:
                raise ConfigurationError(f"drift rules: {field}: {exc}") from None
            self._roles.append((role, payload))

        for i, sev in enumerate(rules.severity):
            add(sev.path, f"severity[{i}].path", _SEVERITY, sev.severity)
        for i, text in enumerate(rules.secret_paths):
            add(text, f"secret_paths[{i}]", _SECRET, None)
        for i, lk in enumerate(rules.list_keys):
            add(lk.path, f"list_keys[{i}].path", _LIST_KEY, lk.key)
        if use_ignores:
            for i, ign in enumerate(rules.ignore):
                if ign.environments is not None and environment not in ign.environments:
                    continue
                expired = ign.expires is not None and today > ign.expires
                if expired:
                    self.expired.append(ign)
                add(ign.path, f"ignore[{i}].path", _IGNORE, (ign, expired))
        for i, text in enumerate(environment_specific):
            add(text, f"environment_specific[{i}]", _ENV_SPECIFIC, None)
        self.globs = globs
        self.globset = GlobSet(globs)
        self._accepts: dict[States, Accept] = {}

    def accept(self, states: States) -> Accept:
        """What the globs matching a node's path say about it (cached per state set)."""
        if not states:
            return _NOTHING
        cached = self._accepts.get(states)
        if cached is not None:
            return cached
        severity: tuple[tuple[int, int, int, int], int, Severity] | None = None
        list_key: tuple[tuple[int, int, int, int], str] | None = None
        ignore = expired = None
        secret = env_specific = False
        for index in self.globset.accepting(states):
            role, payload = self._roles[index]
            spec = self.globs[index].specificity
            if role == _SEVERITY:
                candidate = (spec, payload.rank, payload)
                if severity is None or candidate[:2] > severity[:2]:
                    severity = candidate
            elif role == _SECRET:
                secret = True
            elif role == _LIST_KEY:
                if list_key is None or spec > list_key[0]:
                    list_key = (spec, payload)
            elif role == _IGNORE:
                rule, is_expired = payload
                if is_expired:
                    expired = expired or rule
                else:
                    ignore = ignore or rule
            else:
                env_specific = True
        cached = Accept(
            severity[2] if severity else None,
            ignore,
            expired,
            secret,
            list_key[1] if list_key else None,
            env_specific,
        )
        self._accepts[states] = cached
        return cached
