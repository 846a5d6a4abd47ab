"""What the built package ships beside the Python modules."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from mock_server.dashboard import STATIC_DIR
from tests.support_pytest import examples

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the build backend)")
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*command, str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("segmind_mock-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"mock_server/static/{path.name}" for path in STATIC_DIR.iterdir()}
    assert shipped >= {"mock_server/static/dashboard.html", "mock_server/static/dashboard.js"}
    assert shipped <= names
    # The shipped models are model files, and an image model's prepared pictures serve the light install.
    assert {"contracts/model_files/svd.toml", "contracts/model_files/motionctrl-svd.toml"} <= names
    assert {f"mock_server/_fixtures/placeholder.{kind}" for kind in ("png", "jpg", "webp")} <= names


def _distribution(requirement: str) -> str:
    """The normalized distribution name a requirement string names."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_pytest_extra_brings_every_package_the_docs_pytest_examples_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    brought = {_distribution(line) for line in [*project["dependencies"], *project["optional-dependencies"]["pytest"]]}
    brought.add(_distribution(project["name"]))
    providers = importlib.metadata.packages_distributions()
    missing = set()
    for name, code in examples().items():
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in {module.split(".")[0] for module in modules} - set(sys.stdlib_module_names):
                    if not {_distribution(dist) for dist in providers.get(top, [top])} & brought:
                        missing.add((name, top))
    assert examples()  # the docs' examples were found
    assert missing == set()


def test_users_type_checkers_see_the_packages_types(tmp_path: Path) -> None:
    # Outside the checkout, as a user's project: mypy reads an installed package's types only when
    # it carries a py.typed marker, and otherwise skips it ("missing library stubs or py.typed marker").
    user = tmp_path / "test_user.py"
    user.write_text(
        "from contracts import MODELS\n"
        "from mock_server import SegmindMock, Settings\n"
        "now: int = SegmindMock(Settings(speed=0)).clock.now()\n"
        "latency: str = MODELS['svd'].latency_seconds\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(user)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert 'expression has type "float", variable has type "int"' in checked.stdout, checked.stdout
    assert 'expression has type "float", variable has type "str"' in checked.stdout, checked.stdout
