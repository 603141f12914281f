"""Headless Chromium for end-to-end tests: Debian's ``chromium`` driven by Python ``playwright``.

Playwright never downloads a browser here (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``); it launches the system's
binary through ``executable_path``. Where that binary is missing the test is skipped with the command that
installs it, except in CI (``CI=true``), where a missing browser fails the run: CI installs it (``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_ENV = "ENVSTEWARD_CHROMIUM"
"""Set to the path of a Chromium binary to use that one instead of the one on PATH."""
INSTALL_HINT = "apt-get install -y chromium (Debian's package; .ci/run installs it)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def chromium_executable() -> str:
    """The Chromium binary to drive. Skips the test when there is none, outside CI; fails it in CI."""
    configured = os.environ.get(CHROMIUM_ENV)
    found = configured if configured and Path(configured).is_file() else None
    for name in () if found else CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            break
    problem = None
    if found is None:
        problem = (
            f"no Chromium binary ({', '.join(CHROMIUM_NAMES)} on PATH or ${CHROMIUM_ENV}); {INSTALL_HINT}"
        )
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed: make venv (it is in the dev extras)"
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI=true and the browser test cannot run: {problem}", pytrace=False)
        pytest.skip(f"browser test skipped: {problem}")
    assert found is not None
    return found


@contextmanager
def chromium_page(screenshot_dir: Path, name: str) -> Iterator[Any]:
    """A page of a fresh headless Chromium. On any exception a full-page screenshot is saved under
    ``screenshot_dir`` and its path printed (pytest shows it with the failure), then the exception goes on.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # containers often run as root without user namespaces; /dev/shm may be tiny
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                yield page
            except BaseException:
                shot = screenshot_dir / f"{name}-failure.png"
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"\nbrowser screenshot at failure: {shot}")
                except Exception as exc:  # the original failure matters more
                    print(f"\nno screenshot at failure ({type(exc).__name__}: {exc})")
                raise
        finally:
            browser.close()
