"""The code's shape: no import cycle, no lazy import but of an optional dependency, one storage layer, typed."""

from __future__ import annotations

import ast
import importlib.util
import re
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
# The records it stores, api_errors for ApiError (StoreUnavailable is the 503 every front end answers), and
# defaults, the flags' plain values (the cap on jobs kept), which imports nothing of the package.
STORAGE_IMPORTS = frozenset(
    {
        "mock_server.api_errors",
        "mock_server.defaults",
        "mock_server.jobs",
        "mock_server.journal",
        "mock_server.scenarios",
    }
)


# The layer table of docs/architecture.md, top to bottom: what the layer-order test reads.
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# The HTTP layer's attribute names for the service, and what of the service's state it may not reach past it.
SERVICE_NAMES = frozenset({"service", "_service"})
STATE_ATTRIBUTES = frozenset({"clock", "jobs", "rules", "journal", "accounts", "backend"})
# Names the HTTP layer imports from below the service that are no state: the 503 a store raises, a bound.
HTTP_IMPORTS_BELOW = frozenset(
    {("mock_server.storage", "StoreUnavailable"), ("mock_server.accounts", "LARGEST_AMOUNT")}
)
# The one writer of the error envelope (`answers.error_answer`), the only caller of the body builder.
ENVELOPE_WRITER = "mock_server.answers"


def _layers() -> list[tuple[str, set[str]]]:
    """The documented layers, top to bottom, each with its modules (a package stands for its modules)."""
    table = ARCHITECTURE.read_text().split("## Layers, top to bottom", 1)[1].split("\n## ", 1)[0]
    layers = []
    for row in table.splitlines()[4:]:
        if not row.startswith("|"):
            continue
        name, modules = (cell.strip() for cell in row.strip("|").split("|")[:2])
        found = set()
        for named in re.findall(r"`([\w/]+(?:\.py|/))`", modules):
            if named == "contracts/":
                found.add("contracts")
            else:
                found.add("mock_server." + named.removesuffix(".py").removesuffix("/"))
        layers.append((name, found))
    return layers


def _layer_of(module: str, layers: list[tuple[str, set[str]]]) -> int | None:
    for rank, (_, members) in enumerate(layers):
        for member in members:
            if module == member or module.startswith(f"{member}."):
                return rank
    return None


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


def test_every_module_of_the_fake_is_in_one_documented_layer() -> None:
    layers = _layers()
    assert [name for name, _ in layers][:3] == ["edges", "facade", "HTTP"]  # the table really was read
    modules = [name for name in _modules() if name.startswith("mock_server.")]
    unplaced = [name for name in modules if _layer_of(name, layers) is None]
    assert unplaced == []
    listed = [member for _, members in layers for member in members]
    assert len(listed) == len(set(listed))  # no module in two layers


def test_each_layer_imports_only_its_own_and_the_layers_below() -> None:
    layers = _layers()
    graph = _graph(_modules())
    upward = []
    for module, targets in graph.items():
        rank = _layer_of(module, layers)
        if rank is None or module == "mock_server":
            continue  # the package's own __init__ defers the facade (DEFERRED)
        for target in targets:
            below = _layer_of(target, layers)
            if below is not None and below < rank and (module, target) not in DEFERRED:
                upward.append(f"{module} ({layers[rank][0]}) imports {target} ({layers[below][0]})")
    assert upward == []


def _http_modules() -> list[str]:
    layers = _layers()
    http = dict(layers)["HTTP"]
    return sorted(name for name in _modules() if name in http)


def test_the_http_layer_reaches_the_state_only_through_the_service() -> None:
    layers = _layers()
    service_rank = _layer_of("mock_server.service", layers)
    assert service_rank is not None
    modules = _modules()
    reached = []
    for module in _http_modules():
        for node in ast.walk(modules[module]):
            # `service.clock...`, `self.service.journal...`: past the service into what it holds.
            if isinstance(node, ast.Attribute) and node.attr in STATE_ATTRIBUTES:
                owner = node.value
                owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if owner_name in SERVICE_NAMES:
                    reached.append(f"{module}: {ast.unparse(node)}")
            # Imports of the layers under the service other than records, wire, defaults and the contract.
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                rank = _layer_of(node.module, layers)
                if rank is not None and service_rank < rank <= service_rank + 2:
                    reached += [
                        f"{module}: from {node.module} import {alias.name}"
                        for alias in node.names
                        if (node.module, alias.name) not in HTTP_IMPORTS_BELOW
                    ]
    assert reached == []


def test_one_writer_builds_the_error_envelope() -> None:
    writers = [
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute | ast.Name)
        and "error_body" in (getattr(node, "attr", ""), getattr(node, "id", ""))
    ]
    assert set(writers) == {ENVELOPE_WRITER}  # wire defines the body; only the writer uses it


def test_the_stores_apply_no_rule_decided_above_them() -> None:
    # Retention and the rate-limit window are decided once, above the stores (service.py,
    # accounts.py), which hand the stores deadlines and cutoffs: no store names them.
    modules = _modules()
    stores = ["mock_server.storage", "mock_server.store_memory", *_redis_store(modules)]
    named = [
        (store, node.id)
        for store in stores
        for node in ast.walk(modules[store])
        if isinstance(node, ast.Name) and ("RETENTION" in node.id or "RATE_LIMIT" in node.id)
    ]
    imported = [
        (store, alias.name)
        for store in stores
        for node in ast.walk(modules[store])
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if "RETENTION" in alias.name or "RATE_LIMIT" in alias.name
    ]
    assert named == imported == []


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
