"""The layout rules of DESIGN.md, enforced."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
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
        # earlier tests may have put flows/ or tasks/ on sys.path (Prefect does when it loads a flow file):
        # finding one of our own files there is not an installed module being shadowed
        assert spec is None or Path(str(spec.origin)).resolve().parent in OWN_FOLDERS, (
            f"{folder}/{path.name} shadows the installed module {name!r} ({spec.origin})"
        )


OWN_FOLDERS = {(REPO / "flows").resolve(), (REPO / "tasks").resolve()}


def test_no_module_name_is_both_a_flow_and_a_task_module() -> None:
    """With flows/ first on sys.path, a bare ``import x`` of tasks/x.py would load flows/x.py instead."""
    flows = {path.stem for path in (REPO / "flows").glob("*.py")} - {"__init__"}
    tasks = {path.stem for path in (REPO / "tasks").glob("*.py")} - {"__init__"}
    assert flows & tasks == set(), f"module names in both flows/ and tasks/: {sorted(flows & tasks)}"


def test_flows_and_tasks_are_installed_under_the_envsteward_namespace() -> None:
    for package in ("envsteward.flows", "envsteward.tasks", "envsteward.deployments"):
        spec = importlib.util.find_spec(package)
        assert spec is not None, f"{package} is not importable; is the project installed (make venv)?"
    assert importlib.util.find_spec("flows") is None or "site-packages" not in str(
        importlib.util.find_spec("flows")
    )


# ---------------------------------------------------------------------------------------------------------
# The import graph (issue 10): built from the real source with ast, relative imports resolved.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Import:
    target: str  # the imported module (``from pkg import sub`` -> ``pkg.sub`` when that is a module)
    line: int
    lazy: bool  # inside a function: runs when called, after both modules finished loading
    type_checking: bool  # under ``if TYPE_CHECKING:``: never runs


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in CORE.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str) -> list[_Import]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[_Import] = []

    def visit(node: ast.AST, lazy: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, inner_lazy, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, inner_lazy, type_checking)
                continue
            visit_stmt(child, inner_lazy, type_checking)

    def visit_stmt(child: ast.AST, lazy: bool, type_checking: bool) -> None:
        if isinstance(child, ast.Import):
            found.extend(_Import(alias.name, child.lineno, lazy, type_checking) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                module = ".".join([*base, *([child.module] if child.module else [])])
            else:
                module = child.module or ""
            for alias in child.names:
                submodule = f"{module}.{alias.name}"
                found.append(
                    _Import(submodule if submodule in MODULES else module, child.lineno, lazy, type_checking)
                )
        visit(child, lazy, type_checking)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False, False)
    return found


IMPORTS: dict[str, list[_Import]] = {name: _imports(name) for name in MODULES}


def _where(name: str, imp: _Import) -> str:
    return f"{MODULES[name].relative_to(REPO)}:{imp.line} imports {imp.target}"


def test_the_import_graph_sees_relative_lazy_and_type_checking_imports() -> None:
    """The graph the rules below read is the real one (guards the parser, not the code)."""
    services = IMPORTS["envsteward.services"]
    assert any(i.target == "envsteward.settings" and not i.lazy for i in services)
    assert any(i.target == "envsteward.adapters.registry" and i.lazy for i in services)
    assert any(i.target == "envsteward.adapters.registry" and i.type_checking for i in services)
    assert "envsteward.adapters.vault_client" in {i.target for i in IMPORTS["envsteward.adapters.vault"]}


# Modules owned by other engineers that still name ``Services`` in annotations (TYPE_CHECKING only): each is
# to take a narrow Protocol instead (as envsteward.backup.ports and drill.ports do). Remove an entry
# when its module is fixed; the test fails when an entry is no longer needed.
SERVICES_IMPORT_ALLOWED: set[str] = set()


def test_nothing_below_services_imports_it() -> None:
    """Only the composition roots (cli/, and flows/ tasks/ deployments/ outside src) may import
    envsteward.services; every import counts, lazy and TYPE_CHECKING ones included."""
    importers = {
        name: imp
        for name, found in IMPORTS.items()
        for imp in found
        if imp.target == "envsteward.services" and not name.startswith("envsteward.cli.")
    }
    offenders = sorted(
        _where(name, imp) for name, imp in importers.items() if name not in SERVICES_IMPORT_ALLOWED
    )
    assert offenders == [], (
        "modules below services.py import it (pass narrow arguments instead):\n" + "\n".join(offenders)
    )
    stale = sorted(SERVICES_IMPORT_ALLOWED - set(importers))
    assert stale == [], f"no longer import services; remove from SERVICES_IMPORT_ALLOWED: {stale}"


def _runtime_edges(name: str) -> set[str]:
    """Modules that ``name`` runs: its imports outside ``if TYPE_CHECKING:``, module-level and lazy
    (inside a function) alike, plus the packages those live in (importing ``a.b.c`` runs
    ``a/b/__init__.py``), except packages ``name`` itself lives in (already initialised by the time
    ``name`` runs). Only ``TYPE_CHECKING`` imports are left out: they never run."""
    own = {name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)}
    if MODULES[name].name == "__init__.py":
        own.add(name)
    edges: set[str] = set()
    for imp in IMPORTS[name]:
        if imp.type_checking or imp.target not in MODULES:
            continue
        parts = imp.target.split(".")
        for depth in range(2, len(parts) + 1):
            ancestor = ".".join(parts[:depth])
            if ancestor in MODULES and ancestor != name and ancestor not in own:
                edges.add(ancestor)
    return edges


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module (or with a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
    return components


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module (breadth-first, shortest)."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parents[chain[-1]])
                return [*reversed(chain), start]
            if child not in parents:
                parents[child] = node
                queue.append(child)
    return component


def test_strongly_connected_components_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _strongly_connected(graph) == [["a", "b", "c"], ["e"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_core() -> None:
    """No module of src/envsteward takes part in an import cycle (packages included), lazy imports
    inside functions counted too: a lazy import cannot fail at load time, but a cycle through one is
    still two layers that each call the other (the catalog validating tier rules while the tier rules
    evaluated the catalog's rendered config was one; the policy engine now takes a ``RuleSubject``
    protocol). Only ``if TYPE_CHECKING:`` imports are not counted: annotations are not calls."""
    graph = {name: _runtime_edges(name) for name in MODULES}
    cycles = [" -> ".join(_cycle_path(graph, component)) for component in _strongly_connected(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


VENDOR_SDKS = {"hvac", "boto3", "botocore", "psycopg", "redis", "slack_sdk", "httpx", "requests"}

# Modules owned by other engineers that still import a vendor SDK outside adapters/ (to be moved behind
# an adapter; the test fails when an entry is no longer needed): (module, SDK).
VENDOR_IMPORT_ALLOWED: set[tuple[str, str]] = set()


def test_vendor_sdks_are_imported_only_under_adapters() -> None:
    """Each vendor's SDK is used, and its errors translated, in adapters/ only (every import counts)."""
    found = {
        (name, imp.target.split(".")[0]): imp
        for name, imports in IMPORTS.items()
        if not name.startswith("envsteward.adapters.")
        for imp in imports
        if imp.target.split(".")[0] in VENDOR_SDKS
    }
    offenders = sorted(
        _where(name, imp) for (name, sdk), imp in found.items() if (name, sdk) not in VENDOR_IMPORT_ALLOWED
    )
    assert offenders == [], "vendor SDKs imported outside adapters/:\n" + "\n".join(offenders)
    stale = sorted(VENDOR_IMPORT_ALLOWED - set(found))
    assert stale == [], f"no longer import the SDK; remove from VENDOR_IMPORT_ALLOWED: {stale}"


def test_the_adapter_registry_covers_every_kind_the_catalog_and_settings_admit() -> None:
    """A kind the catalog or settings accept but no factory serves would fail only at run time."""
    from typing import get_args

    from envsteward.adapters import registry
    from envsteward.catalog import models
    from envsteward.secret_refs import SCHEMES
    from envsteward.settings import StateSettings, StorageSettings

    def literal_kinds(*classes: type) -> set[str]:
        return {kind for cls in classes for kind in get_args(cls.model_fields["kind"].annotation)}

    source_classes = get_args(get_args(models.SourceSpec)[0])
    channel_classes = get_args(get_args(models.ChannelSpec)[0])
    assert set(registry.CONFIG_SOURCES.kinds()) == literal_kinds(*source_classes)
    assert set(registry.NOTIFIERS.kinds()) == literal_kinds(*channel_classes)
    assert set(registry.SECRET_STORES.kinds()) == set(SCHEMES)
    assert set(registry.STATE_STORES.kinds()) == literal_kinds(StateSettings)
    assert set(registry.OBJECT_STORES.kinds()) == literal_kinds(StorageSettings)
    key_providers = get_args(models._BackupBase.model_fields["key_provider"].annotation)
    assert set(registry.KEY_PROVIDERS.kinds()) == set(key_providers)
