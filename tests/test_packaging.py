"""What the built package ships beside the Python modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mock_server.dashboard import STATIC_DIR

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
