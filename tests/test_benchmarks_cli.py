"""Every benchmark answers `--help` with what it measures, and runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The benchmarks that are commands (the rest are libraries of theirs).
BENCHMARKS = sorted(
    path.stem
    for path in (ROOT / "benchmarks").glob("*.py")
    if path.stem != "__main__" and '__name__ == "__main__"' in path.read_text()
)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_answers_help(name: str) -> None:
    source = (ROOT / "benchmarks" / f"{name}.py").read_text()
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first_line = source.split('"""')[1].splitlines()[0].strip()
    assert first_line[:40] in " ".join(done.stdout.split()), done.stdout
