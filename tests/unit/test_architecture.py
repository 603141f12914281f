"""The layout rules of DESIGN.md, enforced."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "src" / "envsteward"
# The CLI may import Prefect lazily (for commands that talk to the Prefect API); the core may not.
CORE_EXEMPT = {CORE / "cli"}


def _core_modules() -> list[Path]:
    return sorted(
        path for path in CORE.rglob("*.py") if not any(exempt in path.parents for exempt in CORE_EXEMPT)
    )


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_source_never_imports_prefect() -> None:
    offenders = [
        str(path.relative_to(REPO)) for path in _core_modules() if "prefect" in _imported_roots(path)
    ]
    assert offenders == [], f"the core imports prefect (DESIGN.md keeps it out): {offenders}"


def test_importing_every_core_module_loads_no_prefect() -> None:
    modules = [
        ".".join(path.relative_to(CORE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in _core_modules()
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(','.join(leaked[:5]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing the core pulled in prefect: {result.stdout.strip()}"


@pytest.mark.parametrize("folder", ["flows", "tasks"])
def test_flow_and_task_modules_shadow_nothing(folder: str) -> None:
    """Prefect puts a flow file's folder first on sys.path: a flows/secrets.py would hide the stdlib's."""
    for path in (REPO / folder).glob("*.py"):
        name = path.stem
        if name == "__init__":
            continue
        assert name not in sys.stdlib_module_names, f"{folder}/{path.name} shadows the standard library"
        spec = importlib.util.find_spec(name)
        assert spec is None or Path(str(spec.origin)).resolve() == path.resolve(), (
            f"{folder}/{path.name} shadows the installed module {name!r} ({spec.origin})"
        )


def test_flows_and_tasks_are_installed_under_the_envsteward_namespace() -> None:
    for package in ("envsteward.flows", "envsteward.tasks", "envsteward.deployments"):
        spec = importlib.util.find_spec(package)
        assert spec is not None, f"{package} is not importable; is the project installed (make venv)?"
    assert importlib.util.find_spec("flows") is None or "site-packages" not in str(
        importlib.util.find_spec("flows")
    )
