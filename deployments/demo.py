"""``make demo``: run envsteward's main job on the embedded default, with nothing but this repository.

1. Start a Prefect server on SQLite, an OpenBao dev server (Vault API) and a moto server (AWS API) on
   loopback, plus printing stand-ins for the platform API, Slack, PagerDuty and SMTP; create the demo's
   database target (a new database on the machine's PostgreSQL, 127.0.0.1:5432, or an SQLite file where
   no PostgreSQL answers: see :mod:`envsteward.deployments.demo_database`).
2. Load the example platform (a copy of ``examples/catalog`` under ``.demo/``, its loopback addresses
   moved to the ports chosen on the command line (:func:`render_catalog`) and its database backup targets
   pointed at the demo's database) into them: every source of every environment gets its desired
   configuration, every secret reference a generated secret; then some deliberate drift
   (see :data:`DELIBERATE_DRIFT`) and a plaintext secret in a live source
   (:mod:`envsteward.deployments.demo_secrets`, which also makes one secret overdue).
3. Walk the flows against the Prefect server, printing what each did and its page in the UI: the drift
   scan (read-only) and a health check; the secret inventory (one overdue secret, one plaintext finding); a
   promotion development -> staging that waits for approval (the exact ``envsteward approve`` line is
   printed; ``--once`` approves it as a staging approver who is not the requester and shows it applied); a
   backup of the database target with its DR replica verified; a DR drill of it with RTO and RPO against
   the catalog's targets.
4. Serve every deployment of ``prefect.yaml`` (scheduled runs keep coming; the promotion keeps waiting for
   its answer) until Ctrl-C, then stop everything it started and drop the demo's database. ``--once``
   stops after step 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envsteward.deployments import demo_database, demo_secrets
from envsteward.deployments.catalog import REPO_ROOT
from envsteward.deployments.local_stack import LocalStack, StackError, executable, http_ok, port_is_free

DEMO_DIR = REPO_ROOT / ".demo"
DEMO_MARKER = ".envsteward-demo"
"""Marks a folder the demo made: only such a folder (or the default ``.demo``) is wiped on the next start."""
EXAMPLE_CATALOG = REPO_ROOT / "examples" / "catalog"

PORT_OPTIONS: dict[str, tuple[int, str]] = {
    # argparse dest: (default port, what listens there)
    "prefect_port": (4200, "Prefect server and UI"),
    "vault_port": (8200, "OpenBao (Vault API)"),
    "aws_port": (5055, "moto (AWS API)"),
    "standin_port": (8080, "platform API (/healthz), Slack and PagerDuty stand-ins"),
    "smtp_port": (8025, "SMTP stand-in"),
}
"""Every port the demo listens on. The example catalog's loopback addresses on a default port follow the
option (:func:`render_catalog`); settings get the chosen ports in :func:`configure_environment`."""
LOOPBACK_ADDRESS = re.compile(r"\b(127\.0\.0\.1|localhost):(\d+)\b")

DELIBERATE_DRIFT: list[tuple[str, str, tuple[str, ...], Any, str]] = [
    # environment, source, key path inside the source, live value, why it is interesting
    ("staging", "ssm-services", ("worker", "concurrency"), 16, "a changed runtime parameter"),
    (
        "staging",
        "ssm-services",
        ("api", "request_timeout_seconds"),
        30.0,
        "30 vs 30.0: == says equal, types differ",
    ),
    ("production", "ssm-security", ("session", "timeout_minutes"), 120, "a security setting out of policy"),
    ("production", "feature-flags", ("search_v2", "rollout_percent"), 100, "a feature flag edited by hand"),
]
REUSED_SECRET = ("app.database.password", ("staging", "production"))
"""The same database password in staging and production: a critical parity finding."""


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: ``--once``, one ``--<name>-port`` per :data:`PORT_OPTIONS` entry, ``--workdir``."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after the first flow run")
    for dest, (default, what) in PORT_OPTIONS.items():
        parser.add_argument(f"--{dest.replace('_', '-')}", type=int, default=default, help=what)
    parser.add_argument(
        "--workdir", type=Path, default=DEMO_DIR, help="where the demo keeps its state and logs (wiped first)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    try:
        check_ports(args)
        prepare_workdir(workdir)
    except StackError as exc:
        say(f"demo: {exc}")
        return 1
    render_catalog(EXAMPLE_CATALOG, workdir / "catalog", chosen_ports(args))
    configure_environment(args, workdir)

    stack = LocalStack(workdir)
    standins = None
    smtp = None
    database: demo_database.DemoDatabase | None = None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        database = prepare_database(workdir)
        say(demo_secrets.give_one_secret_a_short_max_age(workdir / "catalog"))
        from envsteward.deployments.demo_standins import DemoHTTPStandins, start_smtp

        standins = DemoHTTPStandins(args.standin_port, say)
        standins.start()
        smtp = start_smtp(args.smtp_port, say)
        start_servers(stack, args)
        say("Loading the example platform into OpenBao and moto, with deliberate drift ...")
        seed_platform()
        promotion = run_flows(args, workdir)
        if args.once:
            return 0
        serve_until_stopped(promotion)
        return 0
    except StackError as exc:
        say(f"demo: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\nStopping ...")
        return 0
    finally:
        try:
            if "prefect" in sys.modules:
                flush_prefect_logs()
        finally:
            stack.stop()
        if smtp is not None:
            smtp.stop()
        if standins is not None:
            standins.stop()
        if database is not None and (problem := demo_database.drop(database)):
            say(f"demo: {problem}")
        say(f"Stopped everything the demo started. Logs are in {workdir / 'logs'}.")


def serve_until_stopped(promotion: DemoPromotion | None) -> None:
    """Serve every deployment of ``prefect.yaml`` until Ctrl-C; a waiting promotion reports when answered."""
    say("\nServing every deployment of prefect.yaml (runs keep coming). Ctrl-C stops everything.")
    from envsteward.deployments.serve import build_all
    from prefect import serve

    if promotion is not None:
        promotion.report_when_done()
    serve(*build_all(), print_starting_message=False)


def prepare_database(workdir: Path) -> demo_database.DemoDatabase:
    """Create the demo's database target and point the demo's catalog copy at it. Raises StackError."""
    database = demo_database.create(workdir)
    say(f"The demo's database target: {database.describe()}")
    changed = demo_database.point_catalog_at(workdir / "catalog", database)
    say(f"  backup targets {', '.join(changed)} of the demo's catalog copy point at it")
    return database


def chosen_ports(args: argparse.Namespace) -> dict[int, int]:
    """Default port -> the port chosen for it, for every option of :data:`PORT_OPTIONS`."""
    return {default: int(getattr(args, dest)) for dest, (default, _what) in PORT_OPTIONS.items()}


def check_ports(args: argparse.Namespace) -> None:
    """Raise StackError naming the option when a chosen port is out of range, chosen twice, or in use."""
    seen: dict[int, str] = {}
    for dest, (_default, what) in PORT_OPTIONS.items():
        port, option = int(getattr(args, dest)), f"--{dest.replace('_', '-')}"
        if not 0 < port < 65536:
            raise StackError(f"{option} {port}: a port is 1-65535")
        if port in seen:
            raise StackError(f"{option} {port}: {seen[port]} uses that port already; choose another")
        seen[port] = option
        if not port_is_free(port):
            raise StackError(
                f"port {port} on 127.0.0.1 ({what}) is already in use; stop what uses it or choose "
                f"another port with {option}"
            )


def prepare_workdir(workdir: Path) -> None:
    """Empty ``workdir`` for a fresh start. Raises StackError for an existing folder the demo did not make
    (the default ``.demo`` excepted), so that a mistyped ``--workdir`` never wipes someone's files."""
    if workdir.exists():
        ours = workdir == DEMO_DIR.resolve() or (workdir / DEMO_MARKER).exists()
        if not ours and any(workdir.iterdir()):
            raise StackError(f"{workdir} is not empty and not a demo folder; choose a new or empty --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / DEMO_MARKER).write_text("made by `make demo`; wiped when the demo starts again\n")


def render_catalog(source: Path, target: Path, ports: dict[int, int]) -> None:
    """Copy the example catalog to ``target`` with every loopback address (``127.0.0.1:P``, ``localhost:P``)
    whose port ``P`` is a key of ``ports`` moved to ``ports[P]``, in its YAML files.

    The example keeps readable fixed addresses (the API health checks say ``http://127.0.0.1:8080/healthz``);
    the demo's own copy follows ``--standin-port`` and the other port options. Other ports (PostgreSQL
    5432, Redis 6379) are the machine's and stay as they are.
    """
    shutil.copytree(source, target)
    moved = {default: chosen for default, chosen in ports.items() if default != chosen}
    if not moved:
        return

    def move(match: re.Match[str]) -> str:
        port = int(match[2])
        return f"{match[1]}:{moved.get(port, port)}"

    for path in sorted(target.rglob("*")):
        if path.suffix in {".yaml", ".yml"} and path.is_file():
            text = path.read_text(encoding="utf-8")
            rendered = LOOPBACK_ADDRESS.sub(move, text)
            if rendered != text:
                path.write_text(rendered, encoding="utf-8")


def configure_environment(args: argparse.Namespace, workdir: Path) -> None:
    """Point envsteward, Prefect, hvac and boto3 at the local servers (before any of them is imported)."""
    standin = f"http://127.0.0.1:{args.standin_port}"
    os.environ.update(
        {
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{args.prefect_port}/api",
            "PREFECT_UI_URL": f"http://127.0.0.1:{args.prefect_port}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "ENVSTEWARD_CATALOG": str(workdir / "catalog"),
            "ENVSTEWARD_HOME": str(workdir / "home"),
            "ENVSTEWARD_ACTOR": "demo",
            "ENVSTEWARD_VAULT__ADDR": f"http://127.0.0.1:{args.vault_port}",
            "VAULT_TOKEN": "demo-" + secrets.token_hex(12),
            "ENVSTEWARD_AWS__ENDPOINT_URL": f"http://127.0.0.1:{args.aws_port}",
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "ENVSTEWARD_SLACK__BASE_URL": f"{standin}/slack/api/",
            "ENVSTEWARD_SLACK__UI_BASE_URL": f"http://127.0.0.1:{args.prefect_port}",
            "SLACK_BOT_TOKEN": "xoxb-demo-" + secrets.token_hex(8),
            "ENVSTEWARD_PAGERDUTY__EVENTS_URL": f"{standin}/pagerduty/v2/enqueue",
            "PAGERDUTY_ROUTING_KEY": secrets.token_hex(16),
            "ENVSTEWARD_SMTP__HOST": "127.0.0.1",
            "ENVSTEWARD_SMTP__PORT": str(args.smtp_port),
        }
    )


def start_openbao(stack: LocalStack, port: int, root_token: str) -> None:
    """An OpenBao dev server on 127.0.0.1:``port`` whose root token is ``root_token``. Raises StackError.

    The token goes through the environment (``BAO_DEV_ROOT_TOKEN_ID``), not the command line, which ``ps``
    shows to every local user; the dev banner that prints it back is redacted in the log.
    """
    stack.start(
        "openbao",
        [executable("bao"), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
        http_ok(f"http://127.0.0.1:{port}/v1/sys/health"),
        port=port,
        env={"BAO_DEV_ROOT_TOKEN_ID": root_token},
        redact=[root_token],
    )


def start_servers(stack: LocalStack, args: argparse.Namespace) -> None:
    """Prefect server (SQLite), OpenBao dev server and moto server. Raises StackError."""
    say(f"Starting OpenBao (Vault API) on 127.0.0.1:{args.vault_port} ...")
    start_openbao(stack, args.vault_port, os.environ["VAULT_TOKEN"])
    say(f"Starting moto (AWS API) on 127.0.0.1:{args.aws_port} ...")
    stack.start(
        "moto",
        [executable("moto_server"), "-H", "127.0.0.1", "-p", str(args.aws_port)],
        http_ok(f"http://127.0.0.1:{args.aws_port}/moto-api/"),
        port=args.aws_port,
    )
    say(f"Starting the Prefect server on http://127.0.0.1:{args.prefect_port} (first start takes ~20 s) ...")
    stack.start(
        "prefect-server",
        [executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(args.prefect_port)],
        http_ok(f"http://127.0.0.1:{args.prefect_port}/api/health"),
        port=args.prefect_port,
        timeout=180,
    )


def seed_platform() -> None:
    """Write every environment's desired configuration into its live sources, then the deliberate drift."""
    from envsteward.catalog.refs import SecretRef
    from envsteward.services import get_services

    services = get_services()
    catalog = services.catalog()
    prepare_stores(services)
    generated: dict[str, str] = {}
    shared_secret = new_secret()
    for env_name, env in catalog.environments.items():
        rendered = catalog.render(env_name)
        for source_spec in env.sources:
            source = services.config_source(env_name, source_spec.name)
            for key_path, desired in leaves(_subtree(rendered.data, source_spec.mount_at)):
                full_path = ".".join(filter(None, [source_spec.mount_at, *key_path]))
                value = desired
                if isinstance(desired, SecretRef):
                    reused = full_path == REUSED_SECRET[0] and env_name in REUSED_SECRET[1]
                    value = shared_secret if reused else generated.setdefault(desired.uri(), new_secret())
                    write_secret_reference(services, desired, value)
                if source_spec.writable:
                    source.write(key_path, value)
                elif source_spec.kind == "secrets_manager" and len(key_path) == 2:
                    # read-only for envsteward, but the demo plays the administrator who filled it
                    name = f"{source_spec.prefix}{key_path[0]}"
                    write_secret_reference(services, SecretRef("aws-sm", name, key_path[1]), value)
                elif value is desired:
                    say(f"  {env_name}: {full_path} not loaded (source {source_spec.name} is read-only)")
        say(f"  {env_name}: {len(env.sources)} sources loaded")
    for env_name, source_name, key_path, live_value, why in DELIBERATE_DRIFT:
        services.config_source(env_name, source_name).write(key_path, live_value)
        say(f"  drift in {env_name}: {'.'.join(key_path)} = {live_value!r} ({why})")
    say(f"  drift in {', '.join(REUSED_SECRET[1])}: the same {REUSED_SECRET[0]} (a reused secret)")
    say(demo_secrets.seed_plaintext(services))


def new_secret() -> str:
    return secrets.token_urlsafe(18)


def prepare_stores(services: Any) -> None:
    """Transit key, KMS alias and buckets that the example catalog's backups and health checks name."""
    vault = services.vault_client()
    vault.hvac.sys.enable_secrets_engine("transit", path=services.settings.vault.transit_mount)
    vault.transit_create_key(services.settings.vault.transit_key)
    clients = services.aws_clients()
    clients.s3().create_bucket(
        Bucket="envsteward-backups", CreateBucketConfiguration={"LocationConstraint": clients.region}
    )
    clients.s3(region=clients.dr_region).create_bucket(
        Bucket="envsteward-backups-dr", CreateBucketConfiguration={"LocationConstraint": clients.dr_region}
    )
    key = clients.kms().create_key(Description="envsteward demo backups")["KeyMetadata"]["KeyId"]
    clients.kms().create_alias(AliasName="alias/envsteward-backups", TargetKeyId=key)


def write_secret_reference(services: Any, ref: Any, value: str) -> None:
    """Store ``value`` where the reference points (Vault KV key, Secrets Manager JSON key, env var)."""
    if ref.scheme == "vault":
        from envsteward.errors import NotFoundError

        vault = services.vault_client()
        try:
            data = dict(vault.kv_read(ref.mount, ref.path).data)
        except NotFoundError:
            data = {}
        data[ref.key] = value
        vault.kv_write(ref.mount, ref.path, data)
    elif ref.scheme == "aws-sm":
        from pydantic import SecretStr

        from envsteward.adapters.aws import SecretsManager
        from envsteward.errors import NotFoundError

        manager = SecretsManager(services.aws_clients())
        try:
            document = json.loads(manager.get_secret_string(ref.location).get_secret_value())
        except NotFoundError:
            document = {}
        document[ref.key] = value
        manager.put_secret_string(ref.location, SecretStr(json.dumps(document)))
    elif ref.scheme == "env":
        os.environ[ref.location] = value


def leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) of a nested mapping; lists are values."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*prefix, str(key)))
    elif prefix:
        yield prefix, tree


def _subtree(tree: dict[str, Any], mount_at: str) -> Any:
    from envsteward.sources import subtree_at

    return subtree_at(tree, mount_at) or {}


STEPS = 5
"""The demo's numbered steps: drift scan, secret inventory, promotion, backup, DR drill."""
PROMOTION = ("development", "staging")
"""The promotion the demo asks for (source, target)."""
REQUESTER = "demo"
"""Who asks for the demo's promotion (also ``ENVSTEWARD_ACTOR``); never its approver."""
PROMOTION_WAIT_SECONDS = 120
"""How long the demo waits for its promotion to reach the approval gate, and to finish once approved."""


def run_flows(args: argparse.Namespace, workdir: Path) -> DemoPromotion | None:
    """Walk the flows against the local Prefect server: drift scan (and health check), secret inventory,
    promotion, backup, DR drill. Returns the promotion when it still waits for its answer (without
    ``--once``)."""
    from envsteward.flows.drift_scan import drift_scan
    from envsteward.flows.health_check import health_check

    ui = f"http://127.0.0.1:{args.prefect_port}"
    heading(f"1/{STEPS}  Drift scan (read-only: heal=False)")
    scan_state = drift_scan(heal=False, return_state=True)
    scan = scan_state.result(raise_on_failure=False)
    if isinstance(scan, dict):
        print_drift_tables(scan)
    else:
        say(f"drift-scan ended {scan_state.name}: {scan}")
    say(f"drift-scan run:     {run_link(ui, scan_state)}")
    say("\nRunning the health-check flow ...")
    state = health_check(return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, dict):
        print_health_table(summary)
    else:
        say(f"health-check ended {state.name}: {summary}")
    say(f"health-check run:   {run_link(ui, state)}")

    heading(f"2/{STEPS}  Secret inventory (read-only)")
    demo_secrets.run_secret_inventory(ui, say)

    heading(f"3/{STEPS}  Promotion {PROMOTION[0]} -> {PROMOTION[1]}, with approval")
    promotion = DemoPromotion(ui, *PROMOTION)
    if promotion.plan():
        promotion.start()
        promotion.wait_for_gate()
        if promotion.waiting():
            promotion.print_how_to_answer()
            if args.once:
                promotion.approve_as_reviewer()
                promotion.wait_until_done()
        if not promotion.waiting():
            promotion.report()

    environment, target = backup_to_drill()
    heading(f"4/{STEPS}  Backup of {environment}/{target}, replicated to the DR region")
    backup = run_backup(ui, environment, target)
    heading(f"{STEPS}/{STEPS}  DR drill of {environment}/{target}")
    run_drill(ui, environment, backup)

    from envsteward.tasks.common import artifact_key

    inventory_key = artifact_key("secret-inventory", demo_secrets.OVERDUE[0])
    say(
        "\nWhere to look in the Prefect UI:\n"
        f"  flow runs:        {ui}/runs\n"
        f"  drift summary:    {ui}/artifacts/key/drift-summary\n"
        f"  drift items:      {ui}/artifacts/key/drift-items\n"
        f"  health status:    {ui}/artifacts/key/health-status\n"
        f"  secret inventory: {ui}/artifacts/key/{inventory_key}\n"
        f"  promotion:        {promotion.link()}\n"
        f"  backups:          {ui}/artifacts/key/backup-run\n"
        f"  DR drill report:  {ui}/artifacts/key/{artifact_key('dr-drill', environment)}\n"
        f"  deployments:      {ui}/deployments\n"
        f"Audit log:          ENVSTEWARD_HOME={_shown(workdir / 'home')} .venv/bin/envsteward audit show"
    )
    return promotion if promotion.waiting() else None


def heading(text: str) -> None:
    say(f"\n=== {text} ===")


def run_link(ui: str, state: Any) -> str:
    """The flow run's page in the UI, from its final state."""
    return f"{ui}/runs/flow-run/{state.state_details.flow_run_id}"


@dataclass
class DemoPromotion:
    """The demo's promotion, run in a thread of this process: run locally, the promote flow *pauses* in
    place at the approval gate (a deployment's run would suspend), and is answered exactly like a
    deployment's run, from the UI's Resume form or ``envsteward approve``."""

    ui: str
    source: str
    target: str
    run_id: str | None = None
    run_name: str = ""
    plan_run_id: str | None = None
    state: Any = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _report_when_done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self) -> bool:
        """Run the promotion as a dry run (the plan artifact, nothing written) and print the plan. Returns
        True when there is something to promote and nothing blocks it; prints the blockers otherwise."""
        from envsteward.flows.promote import promote

        say(f"Planning {self.source} -> {self.target} (dry run: nothing is written) ...")
        state = promote(source=self.source, target=self.target, dry_run=True, return_state=True)
        self.run_id = self.plan_run_id = str(state.state_details.flow_run_id)
        plan = state.result(raise_on_failure=False)
        if not isinstance(plan, dict):
            say(f"promotion plan ended {state.name}: {plan}\n  run: {self.link()}")
            return False
        say(
            f"plan {str(plan.get('plan_hash'))[:12]}: {plan.get('changes')} change(s), {plan.get('skipped')} "
            f"key(s) left alone (environment-specific or not selected), {plan.get('violations')} tier-rule "
            f"violation(s)\n  plan and diff: {self.link()}"
        )
        blockers = plan.get("blockers") or []
        if blockers:
            say(
                f"promotion {self.source} -> {self.target}: BLOCKED by {len(blockers)} tier-rule "
                "violation(s); not asking for approval:"
            )
            for blocker in blockers:
                say(f"  - {blocker}")
            return False
        if not plan.get("changes"):
            say(f"promotion {self.source} -> {self.target}: nothing to promote ({self.target} matches)")
            return False
        return True

    def start(self) -> None:
        """Start the promote flow in a daemon thread (it blocks while it waits for approval)."""
        from envsteward.flows import promote as promote_module

        promote_module.POLL_INTERVAL_SECONDS = 1  # answers are picked up within a second, not ten
        say(f"Asking to promote {self.source} -> {self.target} as {REQUESTER!r} ...")

        def run() -> None:
            try:
                self.state = promote_module.promote(
                    source=self.source,
                    target=self.target,
                    requested_by=REQUESTER,
                    reason="make demo: promote development's reviewed configuration",
                    return_state=True,
                )
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                self.error = exc
            with self._lock:
                if self._report_when_done:
                    self.report()

        self._thread = threading.Thread(target=run, name="demo-promotion", daemon=True)
        self._thread.start()

    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def waiting(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def link(self) -> str:
        return f"{self.ui}/runs/flow-run/{self.run_id}" if self.run_id else f"{self.ui}/runs"

    def wait_for_gate(self) -> None:
        """Until the run is paused at the approval gate or finished. Raises StackError after
        :data:`PROMOTION_WAIT_SECONDS`. Calls the Prefect API."""
        deadline = time.monotonic() + PROMOTION_WAIT_SECONDS
        while time.monotonic() < deadline:
            run = self._read_run()
            if self.finished():
                return
            if run is not None and run.state is not None and run.state.is_paused():
                return
            time.sleep(0.5)
        raise StackError(f"the promotion did not reach its approval gate within {PROMOTION_WAIT_SECONDS} s")

    def _read_run(self) -> Any:
        """The demo's promote flow run (the only one on this server besides the dry run), or None before it
        exists."""
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

        not_the_plan = [UUID(self.plan_run_id)] if self.plan_run_id else None
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["promote"])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(not_any_=not_the_plan)),
                limit=1,
            )
        if runs:
            self.run_id, self.run_name = str(runs[0].id), runs[0].name
            return runs[0]
        return None

    def reviewer(self) -> str:
        """The target's first approver who is not the requester (the requester may never approve)."""
        from envsteward.services import get_services

        policy = get_services().catalog().environment(self.target).approval
        approvers = [name for name in (policy.approvers if policy else []) if name != REQUESTER]
        if not approvers:
            raise StackError(
                f"the demo catalog's {self.target} lists no approver other than {REQUESTER!r}; the demo "
                "cannot approve its promotion"
            )
        return approvers[0]

    def approve_command(self) -> list[str]:
        return ["envsteward", "approve", str(self.run_id), "--reviewer", self.reviewer()]

    def print_how_to_answer(self) -> None:
        say(
            f"The promotion waits for approval (flow run {self.run_name}, requested by {REQUESTER}; "
            f"{self.target}'s approvers answer):\n"
            f"  approve in a terminal:  .venv/bin/{' '.join(self.approve_command())}\n"
            f"  or in the Prefect UI:   {self.link()}  (Resume)"
        )

    def approve_as_reviewer(self) -> None:
        """``--once``: answer as the demo's second reviewer through the real CLI. Raises StackError when the
        CLI fails. Runs ``envsteward approve`` (which calls the Prefect API)."""
        reviewer = self.reviewer()
        say(f"--once: approving as {reviewer!r}, a {self.target} approver who is not the requester ...")
        command = [
            executable("envsteward"),
            *self.approve_command()[1:],
            "--comment",
            "approved by make demo",
        ]
        env = {**os.environ, "COLUMNS": "200"}  # one line per message, as a terminal would show it
        answered = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
        for line in (answered.stdout + answered.stderr).strip().splitlines():
            say(f"  {line}")
        if answered.returncode != 0:
            raise StackError(f"envsteward approve exited {answered.returncode}")

    def wait_until_done(self) -> None:
        assert self._thread is not None
        self._thread.join(PROMOTION_WAIT_SECONDS)
        if self._thread.is_alive():
            raise StackError(f"the approved promotion did not finish within {PROMOTION_WAIT_SECONDS} s")

    def report_when_done(self) -> None:
        """Print the outcome from the promotion's thread once someone answers (while deployments serve)."""
        with self._lock:
            if self.finished():
                self.report()
            else:
                self._report_when_done = True

    def report(self) -> None:
        """Print how the promotion ended: applied (what was written), not approved, or blocked (why)."""
        self._read_run()
        if self.error is not None or self.state is None:
            say(f"promotion: the flow could not run: {type(self.error).__name__}: {self.error}")
            return
        value = self.state.result(raise_on_failure=False)
        if isinstance(value, dict):
            outcome = str(value.get("outcome"))
            say(f"promotion {self.source} -> {self.target}: {outcome.upper()} ({self.state.name})")
            say(f"  {value.get('message')}")
            if value.get("approved_by"):
                say(f"  approved by: {', '.join(value['approved_by'])}")
        elif "blocked" in str(value):
            say(f"promotion {self.source} -> {self.target}: BLOCKED ({self.state.name})")
            say(f"  {value}")
            say("  nothing was written, no approval asked for; `envsteward promote --dry-run` shows the plan")
        else:
            say(f"promotion {self.source} -> {self.target} ended {self.state.name}: {value}")
        say(f"  run: {self.link()}")


def backup_to_drill() -> tuple[str, str]:
    """The environment and database target the demo backs up and drills: the last environment on the
    promotion path whose drill restores a database target with a DR replica (production, in the example).
    Raises StackError when the catalog has none."""
    from envsteward.services import get_services

    catalog = get_services().catalog()
    found: list[tuple[str, str]] = []
    for name, env in catalog.environments.items():
        databases = [b for b in env.backups if b.kind in ("postgres", "sqlite")]
        if env.drill is None or not databases:
            continue
        target = env.drill.target or databases[0].name
        if any(b.name == target and b.replica_region for b in databases):
            found.append((name, target))
    if not found:
        raise StackError(
            "the demo's catalog has no environment whose drill restores a database target with a "
            "replica_region; the demo backs up and drills one"
        )
    return found[-1]


def run_backup(ui: str, environment: str, target: str) -> dict[str, Any] | None:
    """Run the backup flow for one target and print the backup and its replica. Returns the target's row of
    the run's summary (None when the run failed before it had one)."""
    from envsteward.flows.backup_environment import backup_environment

    state = backup_environment(environment=environment, target=target, return_state=True)
    summary = state.result(raise_on_failure=False)
    rows = summary.get("results", []) if isinstance(summary, dict) else []
    if not rows:
        say(f"backup-environment ended {state.name}: {summary}")
    for row in rows:
        sizes = row.get("sizes") or {}
        replica = row.get("replica") or {}
        say(
            f"backup {row['environment']}/{row['target']} ({row['kind']}): {row['status'].upper()}\n"
            f"  backup id:  {row.get('backup_id')}\n"
            f"  sizes:      {json.dumps(sizes)}\n"
            f"  replica:    {row.get('replica_status')}"
            + (
                f" (copy verified: {replica.get('verified_by')}; lag {row.get('replication_lag_seconds')} s)"
                if row.get("replica_status") == "ok"
                else ""
            )
            + (f"\n  error:      {row.get('error')}" if row.get("error") else "")
        )
    say(f"backup-environment run: {run_link(ui, state)}")
    return rows[0] if rows else None


def run_drill(ui: str, environment: str, backup: dict[str, Any] | None) -> None:
    """Run the DR drill of ``environment`` from its DR replica and print the verdict and RTO/RPO."""
    from envsteward.flows.dr_drill import dr_drill

    region = "dr" if backup is None or backup.get("replica_status") == "ok" else "primary"
    state = dr_drill(environment=environment, backup="latest", region=region, return_state=True)
    record = state.result(raise_on_failure=False)
    if not isinstance(record, dict):
        say(f"dr-drill ended {state.name}: {record}")
        say(f"dr-drill run: {run_link(ui, state)}")
        return
    status = str(record.get("status")).upper()
    say(f"DR drill {record.get('drill_id')} of {environment}/{record.get('target')}: {status}")
    say(f"  restored:   backup {record.get('backup_id')} from the {record.get('region')} region")
    say(f"  read from:  {record.get('store')}")
    for name in ("rto", "rpo"):
        check = record.get(name) or {}
        measured = check.get("measured_seconds")
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check.get("met")]
        shown = "-" if measured is None else f"{measured:.1f} s"
        target = float(check.get("target_seconds") or 0) / 60
        say(f"  {name.upper()}:        {shown} against a target of {target:g} min: {verdict}")
    checks = record.get("verifications") or []
    passed = sum(1 for item in checks if item.get("result") == "pass")
    say(f"  verified:   {passed} of {len(checks)} check(s) passed")
    say(f"  scratch:    {record.get('scratch')} removed: {record.get('scratch_removed')}")
    if record.get("error"):
        say(f"  error:      {record.get('failed_phase')}: {record.get('error')}")
    say(f"dr-drill run: {run_link(ui, state)}")


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (shorter to copy), else absolute."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def print_drift_tables(scan: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    summary = Table(title=f"drift-scan: {scan.get('status')}")
    for column in ("scope", "status", "critical", "high", "medium", "low"):
        summary.add_column(column)
    for scope, row in (scan.get("summary") or {}).items():
        summary.add_row(
            scope,
            str(row.get("status")),
            *(str(row.get(s, 0)) for s in ("critical", "high", "medium", "low")),
        )
    console.print(summary)
    items = Table(title="drift items")
    for column in ("scope", "path", "kind", "severity", "desired", "live"):
        items.add_column(column, overflow="fold")
    reports = {**(scan.get("environments") or {}), **(scan.get("parity") or {})}
    for scope, report in reports.items():
        for item in (report.get("report") or report).get("items", []):
            items.add_row(
                scope,
                item["path"],
                item["kind"],
                item["severity"],
                str(item.get("desired")),
                str(item.get("live")),
            )
    console.print(items)


def print_health_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="health-check")
    for column in ("environment", "check", "status", "latency ms", "detail"):
        table.add_column(column)
    for env_name, checks in (summary.get("environments") or {}).items():
        for check_name, result in checks.items():
            status = str(result.get("status"))
            colour = {"up": "green", "degraded": "yellow"}.get(status, "red")
            table.add_row(
                env_name,
                check_name,
                f"[{colour}]{status}[/]",
                str(result.get("latency_ms")),
                result.get("detail"),
            )
    Console().print(table)


def flush_prefect_logs() -> None:
    """Send buffered flow-run logs to the server while it is still up."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
