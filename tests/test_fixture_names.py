"""The suite's own structure: each fixture name has one meaning, and fixtures are registered, never imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where fixtures are registered the way pytest intends: the plugin users get, and the conftests.
REGISTERED = (ROOT / "mock_server" / "pytest_plugin.py", ROOT / "conftest.py", ROOT / "tests" / "conftest.py")
MODULES = sorted(path for path in (ROOT / "tests").glob("*.py") if path.name != "conftest.py")


def _fixtures(path: Path) -> set[str]:
    """The names of the functions `path` declares as pytest fixtures."""
    return {
        node.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    }


def test_the_shared_fixtures_are_what_this_check_reads() -> None:
    shared = set().union(*map(_fixtures, REGISTERED))
    assert {"segmind_mock", "segmind_server", "store", "mock", "make_fake", "server", "http"} <= shared


def test_no_test_module_redefines_a_shared_fixture_name() -> None:
    shared = set().union(*map(_fixtures, REGISTERED))
    shadowing = {path.name: sorted(_fixtures(path) & shared) for path in MODULES}
    assert {name: names for name, names in shadowing.items() if names} == {}


def test_no_module_imports_a_fixture() -> None:
    # From the modules that define fixtures (tests.*, the plugin); `from mock_server import server` is a module.
    fixtures = set().union(*map(_fixtures, [*REGISTERED, *MODULES]))
    imported = {
        (path.name, alias.name)
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("tests", "mock_server.pytest_plugin"))
        for alias in node.names
        if alias.name in fixtures or (node.module or "").endswith("conftest")
    }
    assert imported == set()
