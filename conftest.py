"""Root conftest: registers the service fixtures every test directory may use."""

from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.pg_cluster",
    "tests.fixtures.vault",
    "tests.fixtures.aws",
    "tests.fixtures.databases",
    "tests.fixtures.standins",
    "tests.fixtures.prefect",
    "tests.fixtures.faultproxy",
    "tests.fixtures.audit_signing",
]


@pytest.fixture(autouse=True)
def _fresh_cli_consoles() -> Iterator[None]:
    """The CLI makes its rich consoles once per process (their width is read from ``COLUMNS`` then): each
    test gets new ones, so a width one test set never decides another test's table (test order, and the
    xdist worker a test lands on, must not matter)."""
    from envsteward.cli import _common

    _common.console.cache_clear()
    _common.err_console.cache_clear()
    yield
    _common.console.cache_clear()
    _common.err_console.cache_clear()
