"""The demo's secret inventory: one overdue secret and one plaintext secret, both seeded on purpose.

* **Plaintext** (:data:`PLAINTEXT`): like the deliberate drift, the demo writes a Slack bot token into a
  production runtime parameter (an SSM source, which holds configuration, not secrets). The inventory
  reports it as a critical plaintext finding by its path and rule; the value is never printed.
* **Overdue** (:data:`OVERDUE`): secret stores record when a secret last changed and cannot be backdated,
  and a fresh demo's secrets are seconds old, while the shortest maximum age the catalog accepts is one
  day. So the demo's catalog copy gives one reference a maximum age of one day
  (:func:`give_one_secret_a_short_max_age`) and the demo's inventory run looks at the stores with its clock
  :data:`CLOCK_AHEAD` ahead (:func:`run_secret_inventory`). Both are demo settings, printed as such; every
  other maximum age of the example (90 days and more, or none) is far from reached.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from envsteward.deployments.local_stack import StackError

Say = Callable[[str], None]

OVERDUE = ("production", "secret+vault://secret/envsteward/production/redis#password")
"""The environment and the reference that the demo's catalog copy gives a one-day maximum age."""
OVERDUE_MAX_AGE_DAYS = 1
CLOCK_AHEAD = timedelta(days=2)
"""How far ahead of the real clock the demo's inventory run looks at the stores (more than
:data:`OVERDUE_MAX_AGE_DAYS`, far less than any other maximum age of the example)."""
PLAINTEXT: tuple[str, str, tuple[str, ...], str] = (
    "production",
    "ssm-services",
    ("api", "slack_bot_token"),
    "a Slack bot token pasted into a runtime parameter",
)
"""Environment, live source, key path inside the source, what it plays."""


def give_one_secret_a_short_max_age(catalog: Path) -> str:
    """Add ``{reference, max_age_days: 1}`` for :data:`OVERDUE` to the environment's ``secrets.overrides``
    in ``catalog``'s ``environments.yaml`` (the demo's copy; comments and layout kept). Returns the line
    the demo prints. Raises StackError when the environment is not in the catalog."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    environment, reference = OVERDUE
    path = catalog / "environments.yaml"
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # the example's layout: lists indented under their key
    document = yaml.load(path.read_text(encoding="utf-8"))
    spec = next((e for e in document.get("environments") or [] if e.get("name") == environment), None)
    if spec is None:
        raise StackError(f"{path}: no environment {environment!r}; the demo seeds an overdue secret there")
    if spec.get("secrets") is None:
        spec["secrets"] = CommentedMap()
    overrides = spec["secrets"].setdefault("overrides", [])
    override = CommentedMap(reference=reference, max_age_days=OVERDUE_MAX_AGE_DAYS)
    override.yaml_add_eol_comment("make demo: a demo setting, so that one secret is overdue", "max_age_days")
    overrides.append(override)
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return (
        f"  demo setting: {environment}'s {reference} may be {OVERDUE_MAX_AGE_DAYS} day old at most "
        f"(catalog copy), and the secret inventory runs with its clock {CLOCK_AHEAD.days} days ahead"
    )


def seed_plaintext(services: Any) -> str:
    """Write :data:`PLAINTEXT`'s token into its live source (calls the source's system). Returns the line
    the demo prints (the path, never the value)."""
    environment, source, key_path, why = PLAINTEXT
    token = f"xoxb-{secrets.randbelow(10**12):012d}-{secrets.token_hex(12)}"
    services.config_source(environment, source).write(key_path, token)
    return f"  plaintext in {environment}: {'.'.join(key_path)} in {source} ({why})"


@contextmanager
def _clock_ahead(module: Any) -> Iterator[None]:
    """The secret-inventory flow module's clock, :data:`CLOCK_AHEAD` ahead while the block runs."""
    original = module.utcnow
    module.utcnow = lambda: datetime.now(UTC) + CLOCK_AHEAD
    try:
        yield
    finally:
        module.utcnow = original


def run_secret_inventory(ui: str, say: Say) -> dict[str, Any] | None:
    """Run the secret-inventory flow (clock :data:`CLOCK_AHEAD` ahead) and print each environment's status,
    every finding (kind, subject, reason; never a value) and the run's page. Returns the flow's result (None
    when the run failed)."""
    from envsteward.flows import secret_inventory as module

    say(
        f"demo setting: this run's clock is {CLOCK_AHEAD.days} days ahead (stores cannot backdate a change), "
        f"and the demo's catalog copy gives {OVERDUE[1]} a {OVERDUE_MAX_AGE_DAYS}-day maximum age"
    )
    with _clock_ahead(module):
        state = module.secret_inventory(return_state=True)
    result = state.result(raise_on_failure=False)
    link = f"{ui}/runs/flow-run/{state.state_details.flow_run_id}"
    if not isinstance(result, dict):
        say(f"secret-inventory ended {state.name}: {result}")
        say(f"secret-inventory run: {link}")
        return None
    counts: dict[str, int] = {}
    for env_name, env in (result.get("environments") or {}).items():
        findings = env.get("findings") or []
        say(f"{env_name}: {env.get('status')} ({len(env.get('secrets') or [])} secret reference(s))")
        for finding in findings:
            counts[finding["kind"]] = counts.get(finding["kind"], 0) + 1
            say(
                f"  [{str(finding['severity']).upper()}] {finding['kind']}: {finding['subject']}\n"
                f"      {finding['reason']}"
            )
        for error in env.get("errors") or []:
            say(f"  error: {error}")
    say(
        f"secret inventory: {counts.get('overdue', 0)} overdue secret(s), {counts.get('plaintext', 0)} "
        f"plaintext finding(s), {sum(counts.values())} finding(s) in all"
    )
    say(f"secret-inventory run: {link}")
    return result
