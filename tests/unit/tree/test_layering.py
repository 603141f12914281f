"""The tree package is a leaf, and catalog -> drift is one direction only (checked from the source's imports,
lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "envsteward"


def _imported(package: str) -> dict[str, set[str]]:
    """envsteward modules imported anywhere (module level, functions, TYPE_CHECKING) by each file."""
    found: dict[str, set[str]] = {}
    for file in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(file.relative_to(SRC))] = {name for name in names if name.startswith("envsteward")}
    return found


def test_tree_imports_nothing_else_from_envsteward() -> None:
    outside = {
        file: sorted(name for name in names if not name.startswith("envsteward.tree"))
        for file, names in _imported("tree").items()
    }
    assert {file: names for file, names in outside.items() if names} == {}


def test_drift_never_imports_the_catalog() -> None:
    back = {
        file: sorted(name for name in names if name.startswith("envsteward.catalog"))
        for file, names in _imported("drift").items()
    }
    assert {file: names for file, names in back.items() if names} == {}


def test_drift_rules_model_is_a_leaf_module() -> None:
    """The catalog imports the drift rules model; the model needs only the tree and the severities."""
    assert _imported("drift")["drift/rules.py"] == {"envsteward.tree", "envsteward.ports"}
