"""``envsteward promote``, ``approve`` and ``reject``.

``promote`` runs the promote flow in this process (a local run: it pauses in place while it waits for
approval), or with ``--deployment`` starts a run of the ``promote`` deployment and returns at once (the run
suspends on a worker while it waits). ``approve``/``reject`` answer a waiting run's approval form through the
Prefect API (``PREFECT_API_URL``), like the UI's Resume form: a promote run, or a rotate-secret run (a
production rotation waits at the same gates with the same form).

Everything that needs no server is checked first (catalog, environments, promotion path, ``--select``
globs); an unreachable Prefect API is one line naming ``PREFECT_API_URL`` and what to do, never a
traceback. A local run that fails prints one line naming the log file: Prefect's own error records and
tracebacks go to ``<home>/logs/promote.log`` instead of the terminal (its progress lines stay).

``promote --status TARGET`` shows the target's lease and any unfinished rollback (run, keys left, age,
last error) from the state store alone; ``promote --repair TARGET`` runs the rollback sweep (the
``repair-rollbacks`` flow) for TARGET now and exits 1 while a rollback journal is left.

Heavy imports (prefect, the flow) stay inside the functions: ``envsteward --help`` must stay fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from envsteward.cli._common import console, fail, handle_errors
from envsteward.errors import EnvstewardError

DEFAULT_DEPLOYMENT = "promote/promote"
LOG_FILE = Path("logs") / "promote.log"
"""Under the envsteward home: where a local run's Prefect errors and tracebacks go."""


def register(app: typer.Typer) -> None:
    """Add the promote, approve and reject commands to the top-level app."""
    app.command("promote")(promote_command)
    app.command("approve")(approve_command)
    app.command("reject")(reject_command)


@handle_errors
def promote_command(  # noqa: PLR0917 - typer maps parameters to arguments and options
    source: Annotated[
        str | None, typer.Argument(help="Environment to promote from, e.g. development.")
    ] = None,
    target: Annotated[
        str | None, typer.Argument(help="The next environment on the promotion path, e.g. staging.")
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option("--select", help="Only keys matching this path glob (repeatable); default: every key."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and its validation; write nothing.")
    ] = False,
    requested_by: Annotated[
        str, typer.Option("--requested-by", help="Who asks (default: the configured actor). Cannot approve.")
    ] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why, for the approvers and the audit log.")] = "",
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            help=f"Start a run of this deployment (e.g. {DEFAULT_DEPLOYMENT}) instead of running locally.",
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", metavar="TARGET", help="Show TARGET's promotion lease and any unfinished rollback."
        ),
    ] = None,
    repair: Annotated[
        str | None,
        typer.Option(
            "--repair",
            metavar="TARGET",
            help="Finish TARGET's pending rollback now (exit 1 while one is left).",
        ),
    ] = None,
) -> None:
    """Promote SOURCE's configuration to TARGET: plan, validate, wait for approval, apply, verify."""
    if status or repair:
        if source or target or (status and repair):
            fail("--status TARGET and --repair TARGET take no SOURCE/TARGET arguments and not each other")
        if status:
            _show_status(status)
        else:
            _repair(str(repair))
        return
    if not source or not target:
        fail("SOURCE and TARGET are required, e.g. `envsteward promote development staging`")
        return
    _check_locally(source, target, select or [])
    parameters: dict[str, Any] = {
        "source": source,
        "target": target,
        "select": list(select) if select else None,
        "dry_run": dry_run,
        "requested_by": requested_by,
        "reason": reason,
    }
    _check_api(required=bool(deployment))
    if deployment:
        _start_deployment(deployment, parameters)
        return
    import importlib

    # flows/ is mapped into the distribution as envsteward.flows (pyproject package-dir); imported by
    # name so that the typed core never depends on the orchestration layer at type-check time
    promote = importlib.import_module("envsteward.flows.promote").promote
    result: dict[str, Any] = _run_locally(promote, parameters, "the promotion run")
    if dry_run and result.get("plan_markdown"):
        console().print(result["plan_markdown"], markup=False, highlight=False)
    shown = {key: value for key, value in result.items() if key != "plan_markdown"}
    console().print(json.dumps(shown, indent=2), markup=False)
    if result.get("blockers"):
        fail("the promotion is blocked: " + "; ".join(result["blockers"]))


def log_path() -> Path:
    """``<home>/logs/promote.log`` (the folder is created)."""
    from envsteward.services import get_services

    path = get_services().settings.home / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


FINISHED = "Finished in state "


class _NoErrorsOnTheTerminal(logging.Filter):
    """On the console: progress only. Error records, anything with a traceback and a run's failed final
    state (Prefect logs it at INFO, repeating the error) go to the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        from envsteward.promotion.decisions import completed_state_names
        from envsteward.rotation.model import completed_state_names as rotation_completed

        if record.levelno >= logging.ERROR or record.exc_info:
            return False
        message = record.getMessage()
        if not message.startswith(FINISHED):
            return True
        name = message[len(FINISHED) :].split("(", 1)[0].strip()
        return name in completed_state_names() | rotation_completed()


@contextmanager
def prefect_errors_to_file(path: Path) -> Iterator[None]:
    """While running a flow in this process: every Prefect record also goes to ``path``, and the console
    handlers drop error records and tracebacks. Restores the handlers afterwards."""
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()
    root = logging.getLogger()
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    quiet = _NoErrorsOnTheTerminal()
    consoles = [
        handler
        for logger in (root, logging.getLogger("prefect"))
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]
    for handler in consoles:
        handler.addFilter(quiet)
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        for handler in consoles:
            handler.removeFilter(quiet)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run_locally(flow: Any, parameters: dict[str, Any], what: str) -> Any:
    """Run ``flow`` in this process; on failure exit 1 with one line that names the log file."""
    path = log_path()
    with prefect_errors_to_file(path):
        try:
            return flow(**parameters)
        except EnvstewardError as exc:
            fail(f"{_one_line(str(exc))} (details: {path})")
        except Exception as exc:  # noqa: BLE001 - named by type only (a vendor message might quote a value)
            fail(f"{what} ended with an unexpected {type(exc).__name__} (details: {path})")
    raise AssertionError("unreachable")


def _show_status(target: str) -> None:
    """Print ``target``'s lease and any unfinished rollback journal (state store only; read-only)."""
    from envsteward.promotion import lock as promotion_lock
    from envsteward.promotion.repair import rollback_status
    from envsteward.services import get_services

    services = get_services()
    lease = promotion_lock.holder(services.state_store(), target)
    if lease is None:
        console().print(f"{target}: no promotion holds the lease", markup=False)
    else:
        console().print(
            f"{target}: lease held by flow run {lease.get('run_id')} ({lease.get('source')} -> {target}, "
            f"requested by {lease.get('requested_by')} at {lease.get('acquired_at')}; "
            f"expires {lease.get('expires_at')})",
            markup=False,
        )
    pending = rollback_status(services, target)
    if not pending:
        console().print(f"{target}: no rollback pending", markup=False)
    for block in pending:
        console().print(block, markup=False)


def _repair(target: str) -> None:
    """Run the repair-rollbacks flow for ``target`` now; exit 1 while a rollback journal is left."""
    import importlib

    _check_api(required=False)
    flow = importlib.import_module("envsteward.flows.repair_rollbacks").repair_rollbacks
    result: dict[str, Any] = _run_locally(flow, {"target": target}, "the rollback sweep")
    lines = list(result.get("lines", []))
    for line in lines:
        console().print(line, markup=False, soft_wrap=True)
    if not lines:
        console().print(f"{target}: no rollback journal; nothing to repair", markup=False)
    left = [*result.get("pending", []), *result.get("skipped", [])]
    if left:
        fail(
            f"{', '.join(left)}: the rollback journal is still there "
            f"(see `envsteward promote --status {target}`)"
        )


def _check_locally(source: str, target: str, select: list[str]) -> None:
    """What needs no server: the catalog loads, both environments exist, TARGET is SOURCE's next
    environment, the ``--select`` globs compile. Raises CatalogError / PromotionRefusedError."""
    from envsteward.promotion.plan import check_route, compile_globs
    from envsteward.services import get_services

    check_route(get_services().catalog(), source, target)
    compile_globs(select, "--select")


def api_unreachable(api: str, exc: BaseException) -> str:
    """The one line shown when the Prefect API cannot be reached (the error named by type only)."""
    return (
        f"cannot reach the Prefect API at {api} ({type(exc).__name__}): start it (`prefect server start`) "
        "or set PREFECT_API_URL to your Prefect server's API, e.g. http://127.0.0.1:4200/api"
    )


def _check_api(*, required: bool) -> None:
    """Fail with one line when PREFECT_API_URL is set (or ``required``) and the API does not answer.
    Without PREFECT_API_URL a local run uses Prefect's ephemeral API and needs no server. Calls the
    Prefect API's health check."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if not configured and not required:
        return
    api = configured or "the local Prefect API (PREFECT_API_URL is not set)"
    try:
        with get_client(sync_client=True) as client:
            problem = client.api_healthcheck()
    except Exception as exc:  # noqa: BLE001 - named by type only
        problem = exc
    if problem is not None:
        fail(api_unreachable(api, problem))


def _start_deployment(name: str, parameters: dict[str, Any]) -> None:
    from prefect.deployments import run_deployment

    try:
        run: Any = run_deployment(name=name, parameters=parameters, timeout=0)
    except Exception as exc:  # noqa: BLE001 - the Prefect client's errors carry no secret
        fail(f"cannot start deployment {name!r}: {exc}")
        return
    console().print(f"started flow run {run.id} ({run.name}) of {name}", markup=False)


@dataclass(frozen=True)
class GatedFlow:
    """A flow that waits at ``approval-N`` gates with the promotions' Resume form, and where its run keeps
    what :func:`_precheck` needs."""

    noun: str
    environment_parameter: str
    """The run parameter naming the environment whose approver list applies."""
    audit: str
    """The audit action prefix: ``<audit>.requested`` (actor: the requester), ``<audit>.approved``."""
    has_lease: bool
    """The environment's promotion lease records the requester too."""


GATED_FLOWS = {
    "promote": GatedFlow("promotion", "target", "promotion", has_lease=True),
    "rotate-secret": GatedFlow("secret rotation", "environment", "rotation", has_lease=False),
}
"""Flow name -> how its approvals are kept (flows/promote.py, flows/rotate_secret.py)."""


def _answer(run_id: str, decision: str, reviewer: str, comment: str, wait: float | None = None) -> None:
    """Check the answer locally (:func:`_precheck`), send it like the Resume form, and with ``wait``
    follow the run until it took the answer. Exits 1 with one line on anything that stops it."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL

    if not reviewer.strip():
        fail("--reviewer is required: your name, as on the target's approver list")
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        fail(f"{run_id!r} is not a flow run id (a UUID, as shown by the promote flow and the Prefect UI)")
        return
    api = PREFECT_API_URL.value() or "the local Prefect API"
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
            flow = client.read_flow(flow_run.flow_id)
    except ObjectNotFound:
        fail(f"no flow run {run_id} at {api}")
        return
    except Exception as exc:  # noqa: BLE001 - named by type only
        fail(api_unreachable(api, exc))
        return
    gated = GATED_FLOWS.get(flow.name)
    if gated is None:
        fail(
            f"flow run {run_id} is a {flow.name!r} run, not a promotion or a secret rotation "
            f"(approve/reject answer {' and '.join(repr(name) for name in GATED_FLOWS)} runs)"
        )
        return
    state = flow_run.state
    if state is None or not state.is_paused():
        fail(
            f"flow run {run_id} is {state.name if state else 'not started'}, not waiting for approval "
            f"(only a paused or suspended {gated.noun} can be answered)"
        )
    assert state is not None
    _precheck(gated, run_id, dict(flow_run.parameters or {}), decision, reviewer, comment)
    gate = state.state_details.pause_key
    try:
        resume_flow_run(
            flow_run_id, run_input={"decision": decision, "reviewer": reviewer, "comment": comment}
        )
    except NotPausedError:
        fail(f"flow run {run_id} is no longer waiting for approval")
    except FlowPauseTimeout:
        fail(
            f"flow run {run_id} waited too long: its approval request timed out and can no longer be answered"
        )
    except RuntimeError as exc:
        fail(f"the Prefect API refused the answer for flow run {run_id}: {exc}")
    verb = "approval" if decision == "approve" else "rejection"
    if wait is None:
        console().print(
            f"sent {reviewer}'s {verb} to flow run {run_id}; the {gated.noun} records it "
            f"(`envsteward approve --wait` follows the run)",
            markup=False,
            soft_wrap=True,
        )
        return
    console().print(_follow(flow_run_id, gate, wait), markup=False, soft_wrap=True)


def _precheck(  # noqa: PLR0917 - one call site
    gated: GatedFlow, run_id: str, parameters: dict[str, Any], decision: str, reviewer: str, comment: str
) -> None:
    """Refuse (exit 1, one line) an answer the flow would refuse: the requester approving, a reviewer not
    on the environment's approver list, a second approval by the same person. Reads the run's parameters,
    the catalog, the audit log (the run's ``<kind>.requested``/``<kind>.approved`` records) and, for a
    promotion, the target's lease; what cannot be read is left to the flow."""
    from envsteward.promotion import lock as promotion_lock
    from envsteward.promotion.approval import Answer, precheck
    from envsteward.services import get_services

    environment = str(parameters.get(gated.environment_parameter) or "")
    services = get_services()
    try:
        policy = services.catalog().environment(environment).approval
    except EnvstewardError:
        return  # no catalog here (or not this environment): the flow judges the answer
    requester: str | None = str(parameters.get("requested_by") or "").strip() or None
    approved: list[str] = []
    # the state store or the audit log may not be readable here: then judge with less
    with contextlib.suppress(Exception):
        if gated.has_lease:
            lease = promotion_lock.holder(services.state_store(), environment)
            if requester is None and lease is not None and lease.get("run_id") == run_id:
                requester = str(lease.get("requested_by") or "") or None
        for record in services.audit_log().records(environment=environment, action=f"{gated.audit}.*"):
            if record.details.get("run_id") != run_id:
                continue
            if record.action == f"{gated.audit}.requested" and requester is None:
                requester = record.actor
            elif record.action == f"{gated.audit}.approved" and record.actor not in approved:
                approved.append(record.actor)
    answer = Answer(
        decision="approve" if decision == "approve" else "reject", reviewer=reviewer.strip(), comment=comment
    )
    ruling = precheck(answer, policy, requester, tuple(approved))
    if not ruling.accepted:
        fail(f"not sent: {ruling.reason} (flow run {run_id})")


def _follow(flow_run_id: Any, gate: str | None, timeout: float) -> str:
    """Wait until the run took the answer (it waits at another gate, or it finished); one line saying
    what it did. Exits 1 when ``timeout`` seconds pass first. Calls the Prefect API."""
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            state = run.state
            if state is not None and state.is_final():
                message = " ".join((state.message or "").split())
                return f"flow run {flow_run_id} ended {state.name}" + (f": {message}" if message else "")
            if state is not None and state.is_paused() and state.state_details.pause_key != gate:
                return (
                    f"flow run {flow_run_id} took the answer and waits for approval again "
                    f"({state.state_details.pause_key}; see the form for the approvals so far)"
                )
            if time.monotonic() > deadline:
                fail(
                    f"flow run {flow_run_id} is {state.name if state else 'unknown'} after {timeout:g} s; "
                    "the answer was sent (is a worker running?)"
                )
            time.sleep(1)


WAIT_OPTION = typer.Option(
    "--wait",
    help="Follow the run until it took the answer (next gate, or its final state); up to --timeout seconds.",
)


@handle_errors
def approve_command(
    run_id: Annotated[str, typer.Argument(help="The waiting promote or rotate-secret flow run's id.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, as on the target's approver list.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (recorded in the audit log).")] = "",
    wait: Annotated[bool, WAIT_OPTION] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 600.0,
) -> None:
    """Approve a promotion or a secret rotation that waits for approval."""
    _answer(run_id, "approve", reviewer, comment, timeout if wait else None)


@handle_errors
def reject_command(
    run_id: Annotated[str, typer.Argument(help="The waiting promote or rotate-secret flow run's id.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, as on the target's approver list.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (recorded in the audit log).")] = "",
    wait: Annotated[bool, WAIT_OPTION] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 600.0,
) -> None:
    """Reject a promotion or a secret rotation that waits for approval (one rejection ends it)."""
    _answer(run_id, "reject", reviewer, comment, timeout if wait else None)
