"""Start-up with many model files: `python -m benchmarks.model_files` (issue 25: 50 files under a second).

Writes COUNT model files (each like the tests' clip-maker: eight parameters of every type), then
measures, best of several runs: reading them (`load_models`), and `segmind-mock serve` from its
start until it prints its serving line, with the files and without (the baseline of the same run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import answer_help
from contracts import MODELS
from contracts.model_file import load_models

COUNT = 50
RUNS = 5
_TEMPLATE = (Path(__file__).resolve().parent.parent / "tests" / "model_files" / "clip-maker.toml").read_text()


def write_files(folder: Path, count: int = COUNT) -> list[Path]:
    """Write `count` model files of distinct slugs into `folder`."""
    paths = []
    for index in range(count):
        path = folder / f"model-{index}.toml"
        path.write_text(_TEMPLATE.replace('slug = "clip-maker"', f'slug = "model-{index}"'))
        paths.append(path)
    return paths


def load_seconds(paths: list[Path]) -> float:
    """Best time to read and check every file, in-process."""
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        load_models(paths, MODELS)
        best = min(best, time.perf_counter() - start)
    return best


def serve_seconds(paths: list[Path]) -> float:
    """Best time from starting `segmind-mock serve` to its serving line (Python's start-up included)."""
    command = [sys.executable, "-m", "mock_server", "serve", "--port", "0"]
    for path in paths:
        command += ["--model-file", str(path)]
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        elapsed = time.perf_counter() - start
        process.send_signal(signal.SIGTERM)
        process.wait()
        if not line.startswith("segmind-mock: serving"):
            raise RuntimeError(f"serve did not start: {line!r}")
        best = min(best, elapsed)
    return best


def main() -> None:
    """Print the figures."""
    answer_help(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder))
        loading = load_seconds(paths)
        bare = serve_seconds([])
        loaded = serve_seconds(paths)
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, best of {RUNS}")
    print(f"reading {COUNT} model files:            {loading * 1000:7.1f} ms")
    print(f"serve start-up, no model file:         {bare * 1000:7.1f} ms")
    print(f"serve start-up, {COUNT} model files:       {loaded * 1000:7.1f} ms ({loaded / bare:.2f}x the baseline)")


if __name__ == "__main__":
    main()
