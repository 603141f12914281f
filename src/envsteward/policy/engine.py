"""Evaluate tier rules on a rendered (or planned) configuration. Pure: no I/O, no external calls.

The catalog depends on the policy package (it validates ``policies.yaml``'s tier-rule overrides against
:mod:`.rules` and serves each environment's effective rules), so nothing here imports the catalog: what is
evaluated is a :class:`RuleSubject`, which the catalog's ``RenderedConfig`` satisfies structurally.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from envsteward.drift.redaction import REDACTED, is_secret_key
from envsteward.policy.rules import TierRule
from envsteward.ports import Severity
from envsteward.secret_refs import SecretRef
from envsteward.tree import MISSING, PathTuple, format_path, iter_nodes, parse_path, value_at

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


class RuleSubject(Protocol):
    """A rendered or planned configuration, as the rules see it (``envsteward.catalog.RenderedConfig``)."""

    def rule_view(self) -> Mapping[str, Any]:
        """The tree the rules are evaluated on (the configuration plus the catalog's facts)."""
        ...

    def origin(self, path: str) -> str | None:
        """The ``file:line`` that set ``path``, if known."""
        ...

    def is_secret(self, path: str) -> bool:
        """Whether ``path`` holds a secret (its value is never shown)."""
        ...


@dataclass(frozen=True)
class Violation:
    """One rule broken at one path. ``origin`` is the ``file:line`` that set the value (or its parent)."""

    rule_id: str
    path: str
    origin: str | None
    message: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.origin or '-'}: [{self.rule_id}] {self.path}: {self.message}"


def evaluate_tier_rules(rules: Iterable[TierRule], rendered: RuleSubject) -> list[Violation]:
    """Every violation of ``rules`` in ``rendered``, in rule order then document order.

    Works the same on a planned configuration (build a catalog ``RenderedConfig`` with the planned data).
    Values at secret paths are shown as ``<redacted>``; secret references are shown as their URI.
    """
    view = rendered.rule_view()
    nodes = list(iter_nodes(view))
    violations: list[Violation] = []
    for rule in rules:
        violations.extend(_evaluate(rule, view, nodes, rendered))
    return violations


def _evaluate(
    rule: TierRule, view: Mapping[str, Any], nodes: list[tuple[PathTuple, Any]], rendered: RuleSubject
) -> list[Violation]:
    glob = rule.glob
    matched = [(path, value) for path, value in nodes if glob.matches(path)]
    found: list[Violation] = []

    def report(path: PathTuple | str, message: str, origin_path: PathTuple | None = None) -> None:
        if isinstance(path, str):
            text, where = path, origin_path if origin_path is not None else rule.glob.literal_prefix()
        else:
            text, where = format_path(path), origin_path if origin_path is not None else path
        found.append(Violation(rule.id, text, _origin(rendered, where), message, rule.severity))

    if rule.required:
        _check_required(rule, view, nodes, matched, report)
    if rule.condition is not None:
        for path, value in matched:
            if value is None and rule.required:
                continue  # already reported as missing
            message = _check_value(rule, path, value, view, rendered)
            if message is not None:
                report(path, message)
    return found


def _origin(rendered: RuleSubject, path: PathTuple) -> str | None:
    """Origin of ``path`` or of its nearest ancestor that has one."""
    for end in range(len(path), 0, -1):
        origin = rendered.origin(format_path(path[:end]))
        if origin is not None:
            return origin
    return None


def _check_required(
    rule: TierRule,
    view: Mapping[str, Any],
    nodes: list[tuple[PathTuple, Any]],
    matched: list[tuple[PathTuple, Any]],
    report: Callable[..., None],
) -> None:
    glob = rule.glob
    last = glob.last_key
    parent = glob.parent()
    if last is None or parent.has_double_star:
        if not any(value is not None for _, value in matched):
            report(rule.path, "is required, but nothing in the configuration matches this path")
        return
    if parent.is_literal:
        parent_path = parent.literal_path()
        parent_value = value_at(view, parent_path)
        parents = [] if parent_value is MISSING else [(parent_path, parent_value)]
    else:
        parents = [(path, value) for path, value in nodes if parent.matches(path)]
    if not parents:
        # An empty collection satisfies "every item has it" (its own rule can demand at least one item),
        # but a collection that does not exist at all is reported: fail safe.
        if parent.is_literal or value_at(view, parent.literal_prefix()) is MISSING:
            report(rule.path, f"is required, but nothing matches {parent.text!r} in the configuration")
        return
    for path, value in parents:
        target = (*path, last)
        if not isinstance(value, Mapping):
            report(target, f"is required, but {format_path(path) or 'the root'} is not a mapping", path)
        elif value.get(last) is None:
            report(target, "is required but missing", path)


def _display(value: Any, path: PathTuple, rendered: RuleSubject) -> str:
    if isinstance(value, SecretRef):
        return f"secret reference {value.uri()}"
    text_path = format_path(path)
    key = next((part for part in reversed(path) if isinstance(part, str)), "")
    if is_secret_key(key) or (text_path and rendered.is_secret(text_path)):
        return REDACTED
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _same(left: Any, right: Any, ignore_case: bool) -> bool:
    """YAML-aware equality: booleans only equal booleans; 1 == 1.0; optional case folding for strings."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, str) and isinstance(right, str) and ignore_case:
        return left.casefold() == right.casefold()
    if isinstance(left, str) != isinstance(right, str):
        return False
    return bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(
    rule: TierRule, path: PathTuple, value: Any, view: Mapping[str, Any], rendered: RuleSubject
) -> str | None:
    """None when ``value`` passes the rule's value condition, else the reason it does not."""
    shown = _display(value, path, rendered)
    if isinstance(value, SecretRef):
        return (
            f"is a {shown}; its value cannot be checked by this rule: set a literal value or override the "
            "rule in policies.yaml"
        )
    condition = rule.condition
    if condition == "equals":
        if _same(value, rule.equals, rule.ignore_case):
            return None
        return f"must be {_expected(rule.equals)}, is {shown}"
    if condition == "not_equals":
        if not _same(value, rule.not_equals, rule.ignore_case):
            return None
        return f"must not be {_expected(rule.not_equals)}"
    if condition == "one_of":
        assert rule.one_of is not None
        if any(_same(value, option, rule.ignore_case) for option in rule.one_of):
            return None
        return f"must be one of {_expected_list(rule.one_of)}, is {shown}"
    if condition == "not_one_of":
        assert rule.not_one_of is not None
        if not any(_same(value, option, rule.ignore_case) for option in rule.not_one_of):
            return None
        return f"must not be one of {_expected_list(rule.not_one_of)}, is {shown}"
    if condition in ("min", "max", "range"):
        return _check_bounds(rule, value, shown)
    if condition == "matches":
        assert rule.matches is not None
        if not isinstance(value, str):
            return f"must be a string matching {rule.matches!r}, is {shown}"
        flags = re.IGNORECASE if rule.ignore_case else 0
        if re.search(rule.matches, value, flags):
            return None
        return f"must match {rule.matches!r}, is {shown}"
    if condition == "compare":
        return _check_compare(rule, path, value, view=view, rendered=rendered)
    return None


def _check_bounds(rule: TierRule, value: Any, shown: str) -> str | None:
    bounds = []
    if rule.min is not None:
        bounds.append(f"at least {rule.min}")
    if rule.max is not None:
        bounds.append(f"at most {rule.max}")
    wanted = " and ".join(bounds)
    if not _is_number(value):
        return f"must be a number {wanted}, is {shown}"
    if rule.min is not None and value < rule.min:
        return f"must be {wanted}, is {shown}"
    if rule.max is not None and value > rule.max:
        return f"must be {wanted}, is {shown}"
    return None


def _check_compare(
    rule: TierRule, path: PathTuple, value: Any, *, view: Mapping[str, Any], rendered: RuleSubject
) -> str | None:
    shown = _display(value, path, rendered)
    assert rule.compare is not None
    op, other = rule.compare.op, rule.compare.other
    other_path = (*path[:-1], *parse_path(other))
    other_text = format_path(other_path)
    other_value = value_at(view, other_path)
    if other_value is MISSING or other_value is None:
        return f"must be {op} {other}, but {other_text} is missing"
    other_shown = _display(other_value, other_path, rendered)
    if isinstance(other_value, SecretRef):
        return f"must be {op} {other}, but {other_text} is a {other_shown} and cannot be compared"
    if op in ("==", "!="):
        equal = _same(value, other_value, rule.ignore_case)
        if equal == (op == "=="):
            return None
    else:
        comparable = (_is_number(value) and _is_number(other_value)) or (
            isinstance(value, str) and isinstance(other_value, str)
        )
        if not comparable:
            return (
                f"must be {op} {other} ({other_text} = {other_shown}), but the two cannot be compared: "
                f"is {shown}"
            )
        if _OPS[op](value, other_value):
            return None
    return f"must be {op} {other} ({other_text} = {other_shown}), is {shown}"


def _expected(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _scalar_text(value)


def _expected_list(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_expected(value) for value in values) + "]"
