"""Where a submit and a status poll spend their microseconds, in-process, with no server and no network.

    python -m benchmarks.profile_routes [--calls 20000] [--top 25]

Each app (raw ASGI, bare Starlette, the fake with its journal on and off) is called straight
through ASGI in a loop on one event loop: the microseconds per call are the app's own Python,
without uvicorn, httptools or the kernel. Then the fake's two routes run under cProfile, and its
self time is summed by module and listed by function.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from benchmarks import bare, raw
from benchmarks.common import API_KEY
from contracts import MODELS
from mock_server import SegmindMock, Settings

BODY = json.dumps(MODELS["svd"].example).encode()
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"x-api-key", API_KEY.encode()), (b"content-type", b"application/json")]


def asgi_scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    """The ASGI scope of one request to the fake, as uvicorn builds it."""
    headers = [*HEADERS, (b"content-length", str(len(body)).encode())] if body else HEADERS
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _calls(app: ASGIApp, method: str, path: str, body: bytes, count: int) -> None:
    request: Message = {"type": "http.request", "body": body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        await app(asgi_scope(method, path, body), receive, send)
    if set(statuses) != {200}:
        raise RuntimeError(f"{method} {path} answered {sorted(set(statuses))}")


def _routes(mock: SegmindMock | None) -> dict[str, tuple[str, str, bytes]]:
    request_id = "00000000-0000-4000-8000-000000000000"
    if mock is not None:
        request_id = mock.submit("svd", MODELS["svd"].example, API_KEY)[0].request_id
    return {"submit": ("POST", "/v2/svd", BODY), "status": ("GET", f"/v2/requests/{request_id}/status", b"")}


def _apps() -> dict[str, tuple[ASGIApp, SegmindMock | None]]:
    on = SegmindMock(Settings(speed=0))
    off = SegmindMock(Settings(speed=0, journal_size=0))
    return {
        "raw ASGI": (raw.app, None),
        "bare Starlette": (bare.create_app(), None),
        "the fake, journal on": (on.app, on),
        "the fake, journal off": (off.app, off),
    }


def per_call_us(calls: int) -> dict[str, dict[str, float]]:
    """Microseconds per in-process call, by app and route (best of three rounds)."""
    results: dict[str, dict[str, float]] = {}
    for name, (app, mock) in _apps().items():
        results[name] = {}
        for route, (method, path, body) in _routes(mock).items():
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                asyncio.run(_calls(app, method, path, body, calls))
                best = min(best, time.perf_counter() - started)
            results[name][route] = best / calls * 1e6
    return results


def profile(calls: int) -> dict[str, pstats.Stats]:
    """cProfile statistics of the fake's (journal on) two routes."""
    mock = SegmindMock(Settings(speed=0))
    found = {}
    for route, (method, path, body) in _routes(mock).items():
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, _calls(mock.app, method, path, body, calls))
        found[route] = pstats.Stats(profiler)
    return found


def by_module(stats: pstats.Stats, calls: int) -> list[tuple[str, float]]:
    """Self time per call, in µs, summed by module (the event loop's own bookkeeping included)."""
    totals: dict[str, float] = defaultdict(float)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps its table untyped
    for (filename, _, function), (_, _, self_time, _, _) in table.items():
        totals[_module(filename, function)] += self_time
    return sorted(((name, seconds / calls * 1e6) for name, seconds in totals.items()), key=lambda item: -item[1])


def _module(filename: str, function: str) -> str:
    if filename == "~":
        return f"builtins ({function})" if function.startswith("<built-in method _") else "builtins"
    path = Path(filename)
    for root in ("mock_server", "contracts", "starlette", "asyncio", "json", "uuid", "msgspec", "anyio", "benchmarks"):
        if root in path.parts:
            inside = path.parts[path.parts.index(root) :]
            return ".".join(inside).removesuffix(".py")
    return path.name.removesuffix(".py")


def main() -> None:
    """Print µs per call for each app and route, then the fake's profile by module and by function."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement (default: %(default)s)")
    parser.add_argument("--top", type=int, default=25, help="functions listed per route (default: %(default)s)")
    args = parser.parse_args()
    for name, routes in per_call_us(args.calls).items():
        print(f"{name:<24}", "  ".join(f"{route} {us:6.1f} us" for route, us in routes.items()))
    for route, stats in profile(args.calls).items():
        print(f"\n== the fake's {route}, self time by module (µs per call, under cProfile) ==")
        for module, us in by_module(stats, args.calls)[: args.top]:
            print(f"  {us:6.2f}  {module}")
        print(f"\n== the fake's {route}, top functions by self time ==")
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
