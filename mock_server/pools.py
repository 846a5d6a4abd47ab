"""The worker threads of blocking work, in separate bounded pools so that one kind cannot starve another.

Fetching a remote input image waits on someone else's server; decoding and rendering use the CPU;
a shared store (Redis) may stall. Each has its own pool: a hundred slow fetches fill the fetch pool
only, while inline images are decoded, videos rendered and output files served as usual; a stalled
Redis holds store threads, never the event loop. A full pool queues work, never refuses it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
import sniffio

from mock_server.defaults import FETCH_THREADS, RENDER_THREADS

# Calls to a shared store are short round trips (one timeout at most, store_redis.connection): a few in
# flight keep a worker busy; more only contend for the GIL (16 threads cost twice the CPU a request).
STORE_THREADS = 4

Result = TypeVar("Result")
Args = TypeVarTuple("Args")


class WorkerPools:
    """Two bounded pools of worker threads: one for fetches of remote images, one for decoding and rendering."""

    def __init__(self, fetch_threads: int = FETCH_THREADS, render_threads: int = RENDER_THREADS) -> None:
        self._fetch = anyio.CapacityLimiter(fetch_threads)
        self._render = anyio.CapacityLimiter(render_threads)

    async def run(self, function: Callable[[], Result], *, fetches: bool) -> Result:
        """Run `function` on a worker thread of the fetch pool (if it may fetch) or the render pool."""
        limiter = self._fetch if fetches else self._render
        return await anyio.to_thread.run_sync(function, limiter=limiter)


class StoreCalls:
    """Runs the fake's calls into its store: in place for an in-process store, on worker threads for a shared one.

    An in-process store never waits, so its calls stay on the event loop at no cost. A shared
    store's calls are network round trips that a stalled Redis can hold for its whole timeout: on
    a small pool of their own, they never hold the event loop, so the dashboard and every request
    that needs no store are answered meanwhile. The request's context goes along (a copy referring
    to the same objects), which keeps a request's pinned clock and queued writes
    (store_redis.session.RedisSession) one across its steps.
    """

    def __init__(self, shared: bool, threads: int = STORE_THREADS) -> None:
        self.inline = not shared  # the routes polled in loops call in place then, without even a coroutine
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, "segmind-mock-store") if shared else None
        # The same bound on event loops other than asyncio's (trio clients of the offline mode).
        self._limiter = anyio.CapacityLimiter(threads) if shared else None

    async def __call__(self, work: Callable[[*Args], Result], *args: *Args) -> Result:
        """The result of `work(*args)`, run where the store's waits cannot hold the event loop."""
        if self.inline:
            return work(*args)
        if sniffio.current_async_library() == "asyncio":
            # asyncio's own executor hands work over in half the time anyio's threads take (benchmarks/).
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(self._pool, context.run, work, *args)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)
