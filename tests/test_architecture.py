"""The code's shape: no import cycle, no lazy import but of an optional dependency, one storage layer, typed."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from contracts.responses import STATES
from mock_server.jobs import State

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mock_server", "contracts")
# Imported inside functions on purpose: optional dependencies, loaded only when used, and the modules
# that need them (redis: `redis`; av, numpy: `video`; hypothesis: `contracts`; respx: `pytest`).
OPTIONAL = frozenset(
    {"redis", "av", "mock_server.store_redis", "mock_server.render", "contracts.suite", "mock_server.offline"}
)
# Deferred on purpose, by one module only: pytest loads the plugin (and with it the package) in every
# run of an environment with segmind-mock installed, so they import the fake when a test first uses it;
# the command line imports the command it runs, so `segmind-mock --help` and a bad argument import no server.
DEFERRED = frozenset(
    {
        ("mock_server.cli", "mock_server.serve_command"),
        ("mock_server.cli", "contracts.cli"),
        ("mock_server.cli", "mock_server.drift_command"),
        ("mock_server.cli", "mock_server.record_command"),
        ("mock_server", "mock_server.mock"),
        ("mock_server", "mock_server.service"),
        ("mock_server.pytest_plugin", "mock_server.mock"),
        ("mock_server.pytest_plugin", "mock_server.server"),
        ("mock_server.pytest_plugin", "mock_server.service"),
        ("mock_server.pytest_plugin", "mock_server.virtual_time"),
        ("mock_server.pytest_plugin", "mock_server.har"),
        ("mock_server.pytest_plugin", "mock_server.replay"),
    }
)
# The layers under the service: none of them may import the service, the HTTP layer or the facade.
REDIS_STORE = "mock_server.store_redis"
ABOVE_STORAGE = frozenset(
    {"mock_server.service", "mock_server.app", "mock_server.routes", "mock_server.admin", "mock_server.mock"}
)
# What storage.py may import of the package: the records the stores keep, nothing else.
# The records it stores, wire for ApiError (StoreUnavailable is the 503 every front end answers), and
# defaults, the flags' plain values (the cap on jobs kept), which imports nothing of the package.
STORAGE_IMPORTS = frozenset(
    {"mock_server.defaults", "mock_server.jobs", "mock_server.journal", "mock_server.scenarios", "mock_server.wire"}
)


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = ast.parse(path.read_text(), str(path))
    return modules


def _redis_store(modules: Iterable[str]) -> list[str]:
    """The Redis store's package and its modules."""
    return [name for name in modules if name == REDIS_STORE or name.startswith(f"{REDIS_STORE}.")]


def _imported(node: ast.Import | ast.ImportFrom, modules: dict[str, ast.Module]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    # `from mock_server import wire` imports the module mock_server.wire.
    names = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    return names or [base]


def _graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        graph[name] = {
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _imported(node, modules)
            if target in modules and target != name
        }
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph(_modules())
    assert len(graph) > 30  # the graph really was built from the sources
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_imports_are_at_module_level_except_optional_dependencies() -> None:
    modules = _modules()
    lazy = []
    for name, tree in modules.items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    lazy += [
                        (name, target)
                        for target in _imported(node, modules)
                        if target not in OPTIONAL and (name, target) not in DEFERRED
                    ]
    assert lazy == []


def test_the_storage_layer_imports_only_the_records_it_stores_and_no_store_imports_the_layers_above() -> None:
    graph = _graph(_modules())
    assert {target for target in graph["mock_server.storage"] if target.startswith("mock_server")} <= STORAGE_IMPORTS
    redis_store = _redis_store(graph)
    assert len(redis_store) > 5  # the package's modules were found
    for store in ("mock_server.storage", "mock_server.store_memory", *redis_store):
        assert not graph[store] & ABOVE_STORAGE
    # The Redis store's modules import the storage layer and one another, nothing else of the package.
    for module in redis_store:
        assert {target for target in graph[module] if target.startswith("mock_server")} <= {
            *STORAGE_IMPORTS,
            "mock_server.storage",
            *redis_store,
        }, module
    # The service knows nothing of HTTP: neither the routes and app, nor Starlette.
    service = ast.unparse(_modules()["mock_server.service"])
    assert not graph["mock_server.service"] & {"mock_server.app", "mock_server.routes", "mock_server.admin"}
    assert "starlette" not in service


def test_importing_the_stores_imports_no_http_framework() -> None:
    code = "import sys, mock_server.store_memory, mock_server.store_redis; print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert "mock_server.store_redis.backend" in loaded.stdout  # the store really was imported
    assert not [name for name in loaded.stdout.split("'") if name.split(".")[0] in {"starlette", "uvicorn", "httpx"}]


def test_no_module_re_exports_a_contract_constant() -> None:
    reexports = [
        (name, alias.name)
        for name, tree in _modules().items()
        if name.startswith("mock_server")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("contracts")
        for alias in node.names
        if alias.asname == alias.name
    ]
    assert reexports == []


def test_the_state_enum_is_the_contracts_list_of_states() -> None:
    assert [state.value for state in State] == list(STATES)
    assert [state.name for state in State] == list(STATES)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (pip install -e '.[test]')")
def test_mypy_strict_is_clean() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *PACKAGES], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
