"""The project's test command says once why tests were skipped, however many tests one reason skipped."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import NO_CHROMIUM

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
ADDOPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]

# A fixture that skips (as the Redis-store fixture does) used from tests in several places.
SKIPPING_TESTS = """
import pytest

@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "redis":
        pytest.skip("redis-server is not installed")
    return request.param

def test_one(store): pass

def test_two(store): pass

class TestMore:
    def test_three(self, store): pass

def test_other():
    pytest.skip("another reason")
"""


def test_one_line_per_skip_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_skips=SKIPPING_TESTS)
    result = pytester.runpytest(*ADDOPTS.split())
    result.assert_outcomes(passed=3, skipped=4)
    skip_lines = [line for line in result.outlines if "SKIPPED" in line]
    assert skip_lines == ["SKIPPED 3 tests: redis-server is not installed", "SKIPPED 1 test: another reason"]


def test_every_browser_test_skipped_without_chromium_is_counted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser_tests = ROOT / "tests" / "test_dashboard_browser.py"
    tests = [node for node in ast.parse(browser_tests.read_text()).body if isinstance(node, ast.FunctionDef)]
    count = sum(node.name.startswith("test_") for node in tests)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # this environment's own commands: no chromium
    result = pytester.runpytest_subprocess(str(browser_tests), *ADDOPTS.split())
    result.assert_outcomes(skipped=count)
    skip_lines = [line for line in result.outlines if "SKIPPED" in line]
    assert skip_lines == [f"SKIPPED {count} tests: {NO_CHROMIUM}"]
