"""The light install: serving imports no extra, the pytest plugin imports no fake, a missing extra is named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each extra's heavy packages: serving and loading the plugin need none of them.
EXTRA_PACKAGES = ("numpy", "av", "hypothesis", "respx", "pytest")


def _imported(script: str) -> list[str]:
    """Run `script` in a fresh interpreter; return the top-level packages it imported of EXTRA_PACKAGES."""
    report = f"""
import json, sys
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({EXTRA_PACKAGES!r}))))
"""
    result = subprocess.run([sys.executable, "-c", script + report], capture_output=True, text=True, check=True)
    imported: list[str] = json.loads(result.stdout.splitlines()[-1])
    return imported


def test_serve_imports_no_extra_before_it_listens() -> None:
    # uvicorn's run is where `serve` starts listening: by then the fake and its app are built.
    script = """
import sys, uvicorn
uvicorn.Server.run = lambda self, sockets=None: None
from mock_server.cli import main
main(["serve", "--port", "0"])
"""
    assert _imported(script) == []


def test_the_pytest_plugin_imports_neither_the_fake_nor_an_extra() -> None:
    script = "import mock_server.pytest_plugin\n"
    assert _imported(script) == ["pytest"]  # pytest, which loads the plugin, and nothing else
    fake = ("mock_server.mock", "mock_server.offline", "starlette", "uvicorn", "httpx")
    check = f"import sys, mock_server.pytest_plugin; print(sorted(set({fake!r}) & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_contract_without_hypothesis_names_the_contracts_extra_in_one_line() -> None:
    script = """
import sys
sys.modules["hypothesis"] = None  # as when the `contracts` extra is not installed
from mock_server.cli import main
sys.exit(main(["contract", "--base-url", "http://127.0.0.1:9", "--api-key", "SG_0123456789abcdef"]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "segmind-mock contract needs the contracts extra: pip install 'segmind-mock[contracts]'\n"


def test_the_segmind_mock_fixture_without_respx_names_the_pytest_extra(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('import sys\nsys.modules["respx"] = None  # as without the `pytest` extra\n')
    pytester.makepyfile("def test_uses_the_fake(segmind_mock):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "mock_server.pytest_plugin")
    result.assert_outcomes(errors=1)
    assert "the segmind_mock fixture needs the pytest extra: pip install 'segmind-mock[pytest]'" in result.outlines
    assert "During handling" not in result.stdout.str()


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["serve", "--spede", "100"], ["contract"]])
def test_help_and_a_bad_argument_import_no_server(argv: list[str]) -> None:
    # The command line imports the command it runs, only once its arguments are good.
    script = f"""
import contextlib, json, sys
from mock_server.cli import main
with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(SystemExit):
    main({argv!r})
ours = {{name for name in sys.modules if name.startswith("mock_server")}}
servers = {{name.split(".")[0] for name in sys.modules}} & {{"uvicorn", "starlette", "httpx", "anyio", "msgspec"}}
print(json.dumps(sorted(ours | servers)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # `version` is importlib.metadata's answer alone, shared with the recordings that name their tool.
    assert json.loads(result.stdout) == [
        "mock_server",
        "mock_server.cli",
        "mock_server.defaults",
        "mock_server.version",
    ]
