"""Planning a promotion: the changes the target would receive, and why anything else is left alone. Pure.

What is promoted is the source environment's *live* configuration (what its sources hold) onto the
target's live sources, key by key, computed with the drift engine (:func:`envsteward.drift.compare`):

* only to the next environment on the promotion path (:func:`check_route`);
* environment-specific keys (the globs of either environment, at a key or any of its ancestors) are never
  copied; nor are keys outside ``select`` (globs; a glob selects the key it names and everything below);
* a key present only in the target is left alone (promotions never delete);
* a secret (a reference in either catalog, a ``policies.drift.secret_paths`` glob, or a key whose name says
  secret) is promoted by reference only: its value is never copied; the target's own reference (from its
  catalog, or the source's reference with the environment's name replaced) must exist in the target's
  secret store, else the plan is blocked;
* a change needs a writable target source that holds the key; SSM parameters hold scalars only;
* the target's tier rules run on the configuration it would have afterwards; a violation at a key the
  plan writes (or above or below one) blocks, whether the plan introduces it or leaves it there; a
  violation elsewhere in the target is a warning with its drift finding (the target's live value differs
  from its catalog, or the catalog sets it so): the promotion neither causes nor fixes it.

The plan hash covers the route, the selection, the target's current values at the changed keys, the changes,
the skipped keys, the secret checks and the blockers: any change to source or target in scope changes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from envsteward.catalog import Catalog, RenderedConfig
from envsteward.catalog.refs import SecretRef
from envsteward.drift import DriftKind, DriftRules, compare, is_secret_key
from envsteward.errors import ConfigurationError
from envsteward.policy import evaluate_tier_rules
from envsteward.promotion.model import (
    Change,
    PolicyFinding,
    PromotionPlan,
    SecretCheck,
    Skipped,
)
from envsteward.scan.live import LiveTree
from envsteward.tree import MISSING, Glob, compile_glob, format_path, mount, parse_glob, parse_path, value_at
from envsteward.tree import set_at as _set
from envsteward.tree.globs import KEY

SecretExists = Callable[[SecretRef], bool]
"""Asks the target's secret store whether a referenced secret exists (never reads its value out)."""

ABSENT = "absent"


class PromotionRefusedError(ConfigurationError):
    """The promotion asked for is not allowed (not the next environment, unknown environment, bad glob)."""


def check_route(catalog: Catalog, source: str, target: str) -> None:
    """Allow only ``source`` -> its next environment. Raises PromotionRefusedError showing the promotion path
    (and CatalogError for an unknown environment, naming the known ones)."""
    catalog.environment(source)
    catalog.environment(target)
    path = " -> ".join(catalog.promotion_path)
    allowed = catalog.next_environment(source)
    if allowed is None:
        raise PromotionRefusedError(
            f"{source!r} is the last environment on the promotion path ({path}): nothing promotes from it",
            system="promotion",
        )
    if target != allowed:
        raise PromotionRefusedError(
            f"{source!r} promotes only to {allowed!r}, not {target!r} (promotion path: {path})",
            system="promotion",
        )


def compile_globs(texts: Iterable[str], what: str) -> list[Glob]:
    """Compile path globs. Raises PromotionRefusedError naming the malformed glob and ``what`` it is for."""
    out = []
    for text in texts:
        try:
            out.append(compile_glob(text))
        except ValueError as exc:
            raise PromotionRefusedError(
                f"{what} glob {text!r} is malformed: {exc}", system="promotion"
            ) from None
    return out


def _at_or_below(globs: Sequence[Glob], path: tuple[str, ...]) -> Glob | None:
    """The first glob matching ``path`` or one of its ancestors."""
    for glob in globs:
        for depth in range(1, len(path) + 1):
            if glob.matches(path[:depth]):
                return glob
    return None


def _leading_keys(path: str) -> tuple[str, ...]:
    """The mapping keys of a drift path up to the first list segment (``a.b[2].c`` -> ``(a, b)``)."""
    keys: list[str] = []
    for kind, arg, _ in parse_glob(path).tokens:
        if kind != KEY:
            break
        keys.append(str(arg))
    return tuple(keys)


def _leaves(value: Any, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf under a mapping (lists are leaves; empty mappings hold nothing to write)."""
    if isinstance(value, Mapping):
        out: list[tuple[tuple[str, ...], Any]] = []
        for key, item in value.items():
            out.extend(_leaves(item, (*prefix, str(key))))
        return out
    return [(prefix, value)]


def digest(value: Any) -> str:
    """SHA-256 of a non-secret value's canonical JSON (types kept: ``1``, ``1.0`` and ``true`` differ)."""
    if value is MISSING:
        return ABSENT
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def derive_reference(ref: SecretRef, source: str, target: str) -> SecretRef | None:
    """The target's reference of the same shape: the source's with path segments naming the source
    environment renamed (``vault://secret/app/development/db#password`` -> ``.../staging/db#password``).
    None when the source's reference does not name its environment."""
    parts = ref.location.split("/")
    if source not in parts:
        return None
    return SecretRef(ref.scheme, "/".join(target if part == source else part for part in parts), ref.key)


class _Planner:
    def __init__(  # noqa: PLR0917 - one private call site
        self,
        catalog: Catalog,
        source: str,
        target: str,
        source_live: LiveTree,
        target_live: LiveTree,
        select: Sequence[str],
        secret_exists: SecretExists,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.target = target
        self.source_live = source_live
        self.target_live = target_live
        self.source_env = catalog.environment(source)
        self.target_env = catalog.environment(target)
        self.source_rendered = catalog.render(source)
        self.target_rendered = catalog.render(target)
        self.select_texts = tuple(select)
        self.select = compile_globs(select, "--select")
        self.env_specific = compile_globs(
            dict.fromkeys([*self.source_env.environment_specific, *self.target_env.environment_specific]),
            "environment_specific",
        )
        self.secret_globs = compile_globs(catalog.drift_rules.secret_paths, "policies.drift.secret_paths")
        self.secret_exists = secret_exists
        self.changes: list[Change] = []
        self.skipped: list[Skipped] = []
        self.secret_checks: dict[str, SecretCheck] = {}
        self.blockers: list[str] = []
        self.warnings: list[str] = []
        self.target_state: dict[str, str] = {}
        self.seen: set[tuple[str, ...]] = set()

    # -- classification ---------------------------------------------------------------------------------

    def scope_reason(self, keys: tuple[str, ...]) -> str | None:
        """Why a key is out of the promotion's scope, or None when it is in scope."""
        glob = _at_or_below(self.env_specific, keys)
        if glob is not None:
            return f"environment-specific ({glob.text}): never promoted"
        if self.select and _at_or_below(self.select, keys) is None:
            return f"not selected (select: {', '.join(self.select_texts)})"
        return None

    def is_secret(self, keys: tuple[str, ...]) -> bool:
        text = format_path(keys)
        if self.source_rendered.is_secret(text) or self.target_rendered.is_secret(text):
            return True
        if any(is_secret_key(key) for key in keys):
            return True
        return _at_or_below(self.secret_globs, keys) is not None

    def owner(self, keys: tuple[str, ...]) -> tuple[Any, tuple[str, ...]] | None:
        best: tuple[int, Any] | None = None
        for spec in self.target_env.sources:
            parts = parse_path(spec.mount_at)
            holds = keys[: len(parts)] == parts and len(keys) > len(parts)
            if holds and (best is None or len(parts) > best[0]):
                best = (len(parts), spec)
        if best is None:
            return None
        return best[1], keys[best[0] :]

    # -- the walk ---------------------------------------------------------------------------------------

    def unreadable(self) -> None:
        for env, live in ((self.source, self.source_live), (self.target, self.target_live)):
            for state in live.unreachable:
                self.blockers.append(
                    f"cannot read {env} source {state.name!r} ({state.mount_at or 'root'}): {state.error}"
                )

    def candidates(self) -> None:
        rules = DriftRules(secret_paths=list(self.catalog.drift_rules.secret_paths))
        report = compare(self.source_live.data, self.target_live.data, rules, environment=self.target)
        for item in report.items:
            crosses_list = item.key_path is None
            keys = _leading_keys(item.path) if crosses_list else tuple(item.key_path or ())
            if not keys:
                self.skipped.append(Skipped(path=item.path or "(root)", reason="the whole document differs"))
                continue
            if keys in self.seen:
                continue
            self.seen.add(keys)
            if item.kind == DriftKind.ADDED and not crosses_list:
                reason = self.scope_reason(keys) or (
                    f"only in {self.target}: promotions never delete keys (remove it by hand if intended)"
                )
                self.skipped.append(Skipped(path=format_path(keys), reason=reason))
                continue
            self.candidate(keys)

    def candidate(self, keys: tuple[str, ...]) -> None:
        after = value_at(self.source_live.data, keys)
        before = value_at(self.target_live.data, keys)
        if isinstance(after, Mapping):
            if before is not MISSING and not isinstance(before, Mapping):
                self.conflict(keys, f"{self.target} holds a single value where {self.source} holds a mapping")
                return
            for leaf_keys, _ in _leaves(after, keys):
                if leaf_keys not in self.seen or leaf_keys == keys:
                    self.seen.add(leaf_keys)
                    self.leaf(leaf_keys)
            return
        if isinstance(before, Mapping):
            self.conflict(keys, f"{self.source} holds a single value where {self.target} holds a mapping")
            return
        self.leaf(keys)

    def conflict(self, keys: tuple[str, ...], why: str) -> None:
        reason = self.scope_reason(keys)
        if reason is None and self.is_secret(keys):
            self.secret(keys)
            return
        self.skipped.append(Skipped(path=format_path(keys), reason=reason or f"{why}: reconcile it by hand"))

    def leaf(self, keys: tuple[str, ...]) -> None:
        path = format_path(keys)
        reason = self.scope_reason(keys)
        if reason is not None:
            self.skipped.append(Skipped(path=path, reason=reason))
            return
        if self.is_secret(keys):
            self.secret(keys)
            return
        owner = self.owner(keys)
        if owner is None:
            self.skipped.append(Skipped(path=path, reason=f"no live source of {self.target} holds this key"))
            return
        spec, relative = owner
        if not spec.writable:
            self.skipped.append(
                Skipped(
                    path=path, reason=f"{self.target} source {spec.name!r} is read-only (writable: false)"
                )
            )
            return
        after = value_at(self.source_live.data, keys)
        before = value_at(self.target_live.data, keys)
        if spec.kind == "ssm" and isinstance(after, list | dict):
            self.skipped.append(
                Skipped(
                    path=path, reason=f"SSM source {spec.name!r} holds one scalar per parameter, not a list"
                )
            )
            return
        self.target_state[path] = digest(before)
        self.changes.append(
            Change(
                path=path,
                kind="create" if before is MISSING else "update",
                target_source=spec.name,
                key_path=relative,
                before=None if before is MISSING else copy.deepcopy(before),
                after=copy.deepcopy(after),
            )
        )

    # -- secrets ----------------------------------------------------------------------------------------

    def secret_paths_in_scope(self) -> None:
        for text in self.source_rendered.secret_refs:
            keys = parse_path(text)
            if all(isinstance(key, str) for key in keys) and self.scope_reason(keys) is None:  # type: ignore[arg-type]
                self.secret(keys)  # type: ignore[arg-type]

    def secret(self, keys: tuple[str, ...]) -> None:
        path = format_path(keys)
        if path in self.secret_checks:
            return
        target_ref = self.target_rendered.secret_refs.get(path)
        how = f"{self.target}'s catalog"
        if target_ref is None:
            source_ref = self.source_rendered.secret_refs.get(path)
            if source_ref is not None:
                target_ref = derive_reference(source_ref, self.source, self.target)
                how = f"the shape of {self.source}'s reference"
        if target_ref is not None:
            exists = self.secret_exists(target_ref)
            detail = (
                f"promoted by reference ({how}); the value stays in {self.target}'s secret store"
                if exists
                else f"{target_ref.uri()} does not exist in {self.target}'s secret store: create it there "
                "first (secret values are never copied between environments)"
            )
            check = SecretCheck(path=path, reference=target_ref.uri(), exists=exists, detail=detail)
        elif value_at(self.target_live.data, keys) is not MISSING:
            check = SecretCheck(
                path=path,
                reference=None,
                exists=True,
                detail=f"{self.target} keeps its own value (secret values are never copied)",
            )
        else:
            check = SecretCheck(
                path=path,
                reference=None,
                exists=False,
                detail=f"a secret in {self.source} with no reference in {self.target}'s catalog and no value "
                f"in {self.target}: add a secret+ reference to {self.target}'s overlay and create the "
                "secret, or mark the key environment_specific",
            )
        self.secret_checks[path] = check
        if not check.exists:
            self.blockers.append(f"secret {path}: {check.detail}")

    # -- validation -------------------------------------------------------------------------------------

    def validate(self) -> list[PolicyFinding]:
        planned = planned_configuration(self.target_rendered, self.target_env.sources, self.target_live)
        origins = dict(planned.origins)
        for change in self.changes:
            keys = parse_path(change.path)
            _set(planned.data, keys, copy.deepcopy(change.after), make_room=True)
            origins[change.path] = f"promoted from {self.source} live (into {change.target_source})"
        after = RenderedConfig(
            environment=self.target,
            data=planned.data,
            origins=origins,
            secret_refs=planned.secret_refs,
            tier=planned.tier,
            facts=planned.facts,
            fact_origins=planned.fact_origins,
            secret_paths=planned.secret_paths,
        )
        findings = [
            PolicyFinding(
                rule_id=v.rule_id,
                path=v.path,
                origin=v.origin,
                message=v.message,
                severity=v.severity.value,
            )
            for v in evaluate_tier_rules(self.catalog.tier_rules(self.target), after)
        ]
        judged = []
        for finding in findings:
            text = (
                f"tier rule {finding.rule_id} ({self.target_env.tier}) at {finding.path} "
                f"[{finding.origin or 'no origin'}]: {finding.message}"
            )
            if self.touches(finding.path):
                self.blockers.append(text)
                judged.append(finding)
                continue
            drift = self.drift_finding(finding.path, finding.origin)
            self.warnings.append(f"{text} (not touched by this promotion; {drift})")
            judged.append(finding.model_copy(update={"blocking": False, "drift": drift}))
        return judged

    def touches(self, path: str) -> bool:
        """Whether the plan writes ``path``, a key above it or a key below it. A path that cannot be parsed
        counts as touched (fail safe: its violation blocks)."""
        try:
            keys = parse_path(path)
        except ValueError:
            return True
        for change in self.changes:
            changed = parse_path(change.path)
            depth = min(len(keys), len(changed))
            if keys[:depth] == changed[:depth]:
                return True
        return False

    def drift_finding(self, path: str, origin: str | None) -> str:
        """Why the target breaks a rule at a key the promotion leaves alone: its live value drifted from its
        catalog, or its catalog sets it so (no values: the key may be secret)."""
        keys = parse_path(path)
        live = value_at(self.target_live.data, keys)
        desired = value_at(self.target_rendered.data, keys)
        where = origin or "no origin"
        if isinstance(desired, SecretRef) or digest(live) != digest(desired):
            if live is MISSING:
                return f"drift: missing from {self.target}'s live sources; its catalog sets it ({where})"
            return f"drift: {self.target}'s live value differs from its catalog ({where})"
        return f"not drift: {self.target}'s catalog sets it so ({where}); fix it there"

    def build(self) -> PromotionPlan:
        self.unreadable()
        self.candidates()
        self.secret_paths_in_scope()
        violations = self.validate()
        policy = self.target_env.approval
        plan = PromotionPlan(
            source=self.source,
            target=self.target,
            select=self.select_texts,
            changes=tuple(sorted(self.changes, key=lambda c: c.path)),
            skipped=tuple(sorted(self.skipped, key=lambda s: s.path)),
            secret_checks=tuple(self.secret_checks[p] for p in sorted(self.secret_checks)),
            violations=tuple(violations),
            blockers=tuple(self.blockers),
            warnings=tuple(self.warnings),
            target_state=dict(sorted(self.target_state.items())),
            approvals_needed=policy.approvals_needed,
            approvers=tuple(policy.approvers),
            timeout_hours=policy.timeout_hours,
        )
        return plan.model_copy(update={"plan_hash": plan_hash(plan)})


def _mount(tree: dict[str, Any], mount_at: str, subtree: Any) -> None:
    parts = parse_path(mount_at)
    if not parts:  # a source at the root replaces the whole tree, not just its top-level keys
        tree.clear()
        subtree = subtree if isinstance(subtree, dict) else {}
    mount(tree, parts, subtree)


def planned_configuration(rendered: RenderedConfig, sources: Sequence[Any], live: LiveTree) -> RenderedConfig:
    """The target's configuration as its tier rules should see it: the desired tree, with every readable
    live source's subtree in place of the desired one. Where the catalog declares a secret reference, the
    reference stays (never the live value); any other secret-looking live leaf is shown redacted."""
    data = copy.deepcopy(rendered.data)
    readable = {state.name for state in live.sources if state.ok}
    for spec in sources:
        if spec.name not in readable:
            continue
        subtree = value_at(live.data, parse_path(spec.mount_at))
        _mount(data, spec.mount_at, {} if subtree is MISSING or subtree is None else copy.deepcopy(subtree))
    for path, ref in rendered.secret_refs.items():
        keys = parse_path(path)
        if all(isinstance(key, str) for key in keys) and value_at(data, keys) is not MISSING:
            _set(data, keys, ref, make_room=True)
    _redact_secret_leaves(data, (), rendered)
    return RenderedConfig(
        environment=rendered.environment,
        data=data,
        origins=rendered.origins,
        secret_refs=rendered.secret_refs,
        tier=rendered.tier,
        facts=rendered.facts,
        fact_origins=rendered.fact_origins,
        secret_paths=rendered.secret_paths,
    )


def _redact_secret_leaves(node: Any, keys: tuple[str, ...], rendered: RenderedConfig) -> None:
    from envsteward.drift import REDACTED

    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = (*keys, str(key))
        if isinstance(value, dict):
            _redact_secret_leaves(value, here, rendered)
        elif not isinstance(value, SecretRef) and (
            is_secret_key(str(key)) or rendered.is_secret(format_path(here))
        ):
            node[key] = REDACTED


def plan_hash(plan: PromotionPlan) -> str:
    """SHA-256 over everything the plan decides (not its own hash field)."""
    payload = plan.model_dump(mode="json", exclude={"plan_hash"})
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_promotion(
    catalog: Catalog,
    source: str,
    target: str,
    source_live: LiveTree,
    target_live: LiveTree,
    *,
    select: Sequence[str] | None = None,
    secret_exists: SecretExists,
) -> PromotionPlan:
    """Plan promoting ``source``'s live configuration to ``target`` (see the module docstring for the rules).

    ``source_live``/``target_live``: the environments' assembled live trees (in memory only; the plan keeps
    no secret value). ``secret_exists`` is asked about the target's secret references in scope.

    Raises PromotionRefusedError when ``target`` is not ``source``'s next environment or a glob is malformed,
    CatalogError for an unknown environment. Pure apart from calling ``secret_exists``.
    """
    check_route(catalog, source, target)
    return _Planner(catalog, source, target, source_live, target_live, select or (), secret_exists).build()


def describe_staleness(approved: PromotionPlan, current: PromotionPlan) -> list[str]:
    """What differs between the approved plan and a fresh one, one line per difference (no secret values:
    plans hold none)."""
    lines: list[str] = []
    old = {change.path: change for change in approved.changes}
    new = {change.path: change for change in current.changes}
    for path in sorted(old.keys() - new.keys()):
        lines.append(f"{path}: no longer a change (source or target changed)")
    for path in sorted(new.keys() - old.keys()):
        lines.append(f"{path}: new change ({new[path].kind}) since approval")
    for path in sorted(old.keys() & new.keys()):
        if old[path].after != new[path].after:
            lines.append(f"{path}: the source's value changed since approval")
        if approved.target_state.get(path) != current.target_state.get(path):
            lines.append(f"{path}: the target's current value changed since approval")
    if approved.blockers != current.blockers:
        lines.extend(f"new blocker: {text}" for text in current.blockers if text not in approved.blockers)
    if approved.secret_checks != current.secret_checks:
        lines.append("the secret reference checks changed")
    if approved.skipped != current.skipped and not lines:
        lines.append("the keys skipped by the plan changed")
    if not lines and approved.plan_hash != current.plan_hash:
        lines.append("the plan's content changed")
    return lines
