"""Golden tests: every catalog under tests/data/catalogs/bad/ fails with exactly the problems it expects.

Each case folder holds a catalog and ``expected.txt``: one problem per line, as ``str(CatalogProblem)``
(``<case>/<file>:<line>: <field>: <message>``), sorted by file and line. To add a case, create the folder
and write the lines you expect by hand; never generate them from the output you are testing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envsteward.catalog import CatalogError, load_catalog
from envsteward.errors import ConfigurationError

from .conftest import DATA

CASES = sorted(path for path in (DATA / "bad").iterdir() if path.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_catalog_reports_exactly_the_expected_problems(case: Path) -> None:
    expected = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    with pytest.raises(CatalogError) as caught:
        load_catalog(case)
    assert [str(problem) for problem in caught.value.problems] == expected
    # one exception carries all of them, and its message lists every one
    message = str(caught.value)
    assert all(line in message for line in expected)
    assert isinstance(caught.value, ConfigurationError)
    assert "Traceback" not in message


def test_every_case_has_expectations() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert (case / "expected.txt").is_file(), f"{case.name} has no expected.txt"
