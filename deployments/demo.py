"""``make demo``: run envsteward's main job on the embedded default, with nothing but this repository.

1. Start a Prefect server on SQLite, an OpenBao dev server (Vault API) and a moto server (AWS API) on
   loopback, plus printing stand-ins for the platform API, Slack, PagerDuty and SMTP.
2. Load the example platform (a copy of ``examples/catalog`` under ``.demo/``, its loopback addresses
   moved to the ports chosen on the command line: see :func:`render_catalog`) into them: every source of
   every environment gets its desired configuration, every secret reference a generated secret; then some
   deliberate drift (see :data:`DELIBERATE_DRIFT`).
3. Run the drift-scan flow (read-only) and the health-check flow against the Prefect server and print
   what they found and where to look in the UI.
4. Serve every deployment of ``prefect.yaml`` (scheduled runs keep coming) until Ctrl-C, then stop
   everything it started. ``--once`` stops after step 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        from envsteward.deployments.demo_standins import DemoHTTPStandins, start_smtp

        standins = DemoHTTPStandins(args.standin_port, say)
        standins.start()
        smtp = start_smtp(args.smtp_port, say)
        start_servers(stack, args)
        say("Loading the example platform into OpenBao and moto, with deliberate drift ...")
        seed_platform()
        run_flows(args, workdir)
        if args.once:
            return 0
        say("\nServing every deployment of prefect.yaml (runs keep coming). Ctrl-C stops everything.")
        from envsteward.deployments.serve import build_all
        from prefect import serve

        serve(*build_all(), print_starting_message=False)
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
        say(f"Stopped everything the demo started. Logs are in {workdir / 'logs'}.")


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


def run_flows(args: argparse.Namespace, workdir: Path) -> None:
    """Run the drift scan (the main job) and the health check against the local Prefect server."""
    from envsteward.flows.drift_scan import drift_scan
    from envsteward.flows.health_check import health_check

    ui = f"http://127.0.0.1:{args.prefect_port}"
    say("\nRunning the drift-scan flow (read-only: heal=False) ...")
    scan_state = drift_scan(heal=False, return_state=True)
    scan = scan_state.result(raise_on_failure=False)
    if isinstance(scan, dict):
        print_drift_tables(scan)
    else:
        say(f"drift-scan ended {scan_state.name}: {scan}")
    say("\nRunning the health-check flow ...")
    state = health_check(return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, dict):
        print_health_table(summary)
    else:
        say(f"health-check ended {state.name}: {summary}")
    say(
        "\nWhere to look in the Prefect UI:\n"
        f"  flow runs:        {ui}/runs\n"
        f"  drift summary:    {ui}/artifacts/key/drift-summary\n"
        f"  drift items:      {ui}/artifacts/key/drift-items\n"
        f"  health status:    {ui}/artifacts/key/health-status\n"
        f"  deployments:      {ui}/deployments\n"
        f"Audit log:          ENVSTEWARD_HOME={_shown(workdir / 'home')} .venv/bin/envsteward audit show"
    )


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
