"""An approver's path through the Prefect UI, in a real browser: a promotion started from the ``promote``
deployment on a real Prefect server with a process worker suspends at its approval gate; headless Chromium
opens the run's page, presses Resume, fills the approval form (decision, reviewer, comment) and submits it;
the worker runs the promotion again from the start, and it completes, applied, against OpenBao and moto.

A failure saves a screenshot of the page under the test's tmp dir and prints its path."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.e2e._browser import chromium_executable, chromium_page
from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import venv_executable
from tests.fixtures.vault import VAULT_TOKEN_ENV
from tests.unit.promotion._catalog import read_everything, seed_environments, write_catalog

pytestmark = pytest.mark.e2e

REVIEWER = "alice"
"""On the test catalog's staging approver list; the requester is dave."""
UI_TIMEOUT_MS = 60_000


def _flow_run(server: PrefectServer, run_id: str) -> Any:
    # the sync client: playwright's sync API keeps an event loop running in this thread
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(server.api_url) as client:
        return client.read_flow_run(UUID(run_id))


def _wait_for(
    server: PrefectServer, run_id: str, done: Any, what: str, worker: subprocess.Popen[bytes]
) -> Any:
    deadline = time.monotonic() + 180
    while True:
        run = _flow_run(server, run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            worker.terminate()
            out, _ = worker.communicate(timeout=30)
            pytest.fail(f"the run did not become {what} (state {run.state_name}):\n{out.decode()[-4000:]}")
        time.sleep(1)


def test_an_approver_resumes_a_suspended_promotion_in_the_prefect_ui(  # noqa: PLR0917
    prefect_server: PrefectServer,
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_server: Any,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
) -> None:
    chromium_executable()  # skip (or, in CI, fail) before starting anything when there is no browser
    ssm_base = f"/{aws_name_prefix}"
    catalog = write_catalog(
        tmp_path / "catalog",
        vault_base=vault_kv_path,
        ssm_base=ssm_base,
        health_url=f"{prefect_server.api_url}/health",
    )
    seed_environments(
        catalog,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        ssm_base,
    )
    home = tmp_path / "home"
    env = prefect_server.env(
        ENVSTEWARD_REPO_DIR=str(REPO),
        ENVSTEWARD_CATALOG=str(catalog),
        ENVSTEWARD_HOME=str(home),
        ENVSTEWARD_ACTOR="e2e",
        ENVSTEWARD_VAULT__ADDR=vault_settings.addr,
        ENVSTEWARD_VAULT__TOKEN_ENV=VAULT_TOKEN_ENV,
        ENVSTEWARD_AWS__ENDPOINT_URL=str(aws_settings.endpoint_url),
        ENVSTEWARD_AWS__REGION=aws_settings.region,
        ENVSTEWARD_AWS__MAX_ATTEMPTS="1",
        **{VAULT_TOKEN_ENV: vault_server.root_token},
    )
    prefect_server.cli("deploy", "--all", env=env)
    params = json.dumps(
        {"source": "development", "target": "staging", "requested_by": "dave", "reason": "browser e2e"}
    )
    output = prefect_server.cli("deployment", "run", "promote/promote", "--params", params, env=env)
    run_id = next(line.split()[-1] for line in output.splitlines() if "UUID" in line)

    worker = subprocess.Popen(
        [venv_executable("prefect"), "worker", "start", "--pool", WORK_POOL, "--limit", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ui = prefect_server.api_url.removesuffix("/api")
    try:
        suspended = _wait_for(
            prefect_server, run_id, lambda r: r.state is not None and r.state.is_paused(), "suspended", worker
        )
        assert suspended.state.name == "Suspended"
        with chromium_page(tmp_path, "resume-form") as page:
            approve_in_the_ui(page, f"{ui}/runs/flow-run/{run_id}")
            final = _wait_for(
                prefect_server,
                run_id,
                lambda r: r.state is not None and r.state.is_final(),
                "finished",
                worker,
            )
            # the run's page follows the run to its end
            page.get_by_text("Completed").first.wait_for(timeout=UI_TIMEOUT_MS)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert final.state.is_completed(), f"run ended {final.state_name}:\n{out.decode()[-4000:]}"

    services = Services(Settings(catalog=catalog, home=home, vault=vault_settings, aws=aws_settings))
    assert read_everything(services, "staging")["ssm-services"]["api"]["image"] == "shop/api:1.1.0"
    records = [(r.action, r.actor, r.details) for r in services.audit_log().records()]
    approved = [
        details for action, actor, details in records if (action, actor) == ("promotion.approved", REVIEWER)
    ]
    assert approved, records
    assert any(action == "promotion.verified" for action, _actor, _details in records)


def form_field(page: Any, label: str) -> Any:
    """One property of the Resume form (Prefect UI's schema form), found by its label."""
    return page.locator(".schema-form-property").filter(
        has=page.locator(".schema-form-property__label", has_text=label)
    )


def approve_in_the_ui(page: Any, run_page: str) -> None:
    """On the suspended run's page: Resume, check the request is shown, fill the approval form (decision,
    reviewer, comment), submit; wait until the modal closes."""
    page.goto(run_page)
    page.get_by_role("button", name="Resume").click()
    modal = page.get_by_role("dialog")
    modal.get_by_text("Resume Flow Run").wait_for(timeout=UI_TIMEOUT_MS)
    # what the approver reviews (the form's description): the request, the plan hash and the diff
    for shown in ("dave asks to promote", "Plan hash", "Changes"):
        modal.get_by_text(shown).first.wait_for(timeout=UI_TIMEOUT_MS)

    # the enum field is the design system's p-select: a click does not open it, the keyboard does
    form_field(page, "Decision").locator("button.p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    page.get_by_role("listbox").get_by_role("option", name="approve", exact=True).click()
    form_field(page, "Reviewer").locator("textarea").fill(REVIEWER)
    form_field(page, "Comment").locator("textarea").fill("reviewed in the browser")
    modal.get_by_role("button", name="Submit").click()
    modal.wait_for(state="hidden", timeout=UI_TIMEOUT_MS)
