"""How many of the project's functions, in how many modules, one submission and one status poll run.

    python -m benchmarks.call_count [--redis]

A warm in-process fake (journal on, `--speed 0`) is called straight through ASGI, with no server
and no transport; `sys.setprofile` (and `threading.setprofile`, for a shared store's threads)
records every Python function called in `mock_server/` and `contracts/` while one request is
served. The figures are the distinct functions and modules: what a reader follows to understand
one request, not how often a loop runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.common import API_KEY, throwaway_redis
from benchmarks.profile_routes import BODY, asgi_scope
from contracts import MODELS
from mock_server import SegmindMock, Settings

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tuple(str(ROOT / package) + "/" for package in ("mock_server", "contracts"))
WARM_CALLS = 20  # requests before counting: caches filled, first-use imports done


@dataclass(frozen=True)
class Count:
    """The project's functions one request of a route ran, and the modules they live in."""

    route: str
    functions: tuple[str, ...]
    modules: tuple[str, ...]


class _Recorder:
    """A profile function that notes the project's functions called while `on`, on any thread."""

    def __init__(self) -> None:
        self.on = False
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.on and event == "call":
            code = frame.f_code
            if code.co_filename.startswith(PROJECT):
                module = code.co_filename.removeprefix(str(ROOT) + "/").removesuffix(".py").replace("/", ".")
                self.seen.add((module, code.co_qualname))


async def _serve(mock: SegmindMock, method: str, path: str, body: bytes) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await mock.app(asgi_scope(method, path, body), receive, send)
    return status


def count(mock: SegmindMock, recorder: _Recorder) -> list[Count]:
    """Count the functions of one submission and of one status poll on `mock`, warmed up first."""
    request_id = mock.submit("svd", MODELS["svd"].example, API_KEY)[0].request_id
    routes = {"submit": ("POST", "/v2/svd", BODY), "status": ("GET", f"/v2/requests/{request_id}/status", b"")}
    counts = []
    loop = asyncio.new_event_loop()
    try:
        for route, (method, path, body) in routes.items():
            for _ in range(WARM_CALLS):
                loop.run_until_complete(_serve(mock, method, path, body))
            recorder.seen.clear()
            recorder.on = True
            status = loop.run_until_complete(_serve(mock, method, path, body))
            recorder.on = False
            if status != 200:
                raise RuntimeError(f"{method} {path} answered {status}")
            functions = tuple(sorted(f"{module}.{name}" for module, name in recorder.seen))
            modules = tuple(sorted({module for module, _ in recorder.seen}))
            counts.append(Count(route, functions, modules))
    finally:
        loop.close()
    return counts


@contextmanager
def _profiled() -> Iterator[_Recorder]:
    # Installed before the fake exists, so that the store's worker threads (started on first use) have it too.
    recorder = _Recorder()
    sys.setprofile(recorder)
    threading.setprofile(recorder)
    try:
        yield recorder
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def measure(store: str = "memory") -> list[Count]:
    """The counts on `store` ("memory", or "redis": a throwaway redis-server)."""
    if store == "memory":
        with _profiled() as recorder:
            return count(SegmindMock(Settings(speed=0)), recorder)
    with throwaway_redis() as url, _profiled() as recorder:
        return count(SegmindMock(Settings(store=url, speed=0)), recorder)


def main() -> None:
    """Print each route's function and module counts; `--list` names them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", action="store_true", help="on a throwaway Redis store instead of memory")
    parser.add_argument("--list", action="store_true", help="name every function counted")
    args = parser.parse_args()
    for row in measure("redis" if args.redis else "memory"):
        print(f"{row.route}: {len(row.functions)} functions in {len(row.modules)} modules")
        if args.list:
            print("\n".join(f"  {name}" for name in row.functions))


if __name__ == "__main__":
    main()
