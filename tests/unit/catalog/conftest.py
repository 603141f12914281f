"""Helpers for catalog tests: the fixture catalogs, and small catalogs written into a temporary folder."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "catalogs"
EXAMPLE = REPO / "examples" / "catalog"

CatalogFactory = Callable[..., Path]


@pytest.fixture
def make_catalog(tmp_path: Path) -> CatalogFactory:
    """Copy the ``minimal`` fixture catalog into ``tmp_path/catalog`` and overwrite some files.

    ``make_catalog(**{"config/prod.yaml": "...yaml..."})`` (text is dedented; None deletes the file).
    """

    def make(files: dict[str, str | None] | None = None, **named: str | None) -> Path:
        root = tmp_path / "catalog"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(DATA / "minimal", root)
        for rel, text in {**(files or {}), **named}.items():
            target = root / rel
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    return make
