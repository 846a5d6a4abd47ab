"""The worker threads of blocking work, in separate bounded pools so that one kind cannot starve another.

Fetching a remote input image waits on someone else's server; decoding and rendering use the CPU;
a shared store (Redis) may stall. Fetches and renders each have a pool of their own: a hundred slow
fetches fill the fetch pool only, while inline images are decoded, videos rendered and output files
served as usual. A full pool queues work, never refuses it. A shared store's calls run as its
backend says (`StoreCalls`): a stalled Redis holds the requests waiting on it, never the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
import sniffio

from mock_server.defaults import FETCH_THREADS, RENDER_THREADS
from mock_server.storage import Backend

# Off asyncio, calls to a shared store run on threads: short round trips (one timeout at most,
# store_redis.connection); a few in flight keep a worker busy, more only contend for the GIL.
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
    """Runs the fake's calls into its store: in place for an in-process store, as its backend says for a shared one.

    An in-process store never waits, so its calls stay on the event loop at no cost. A shared
    store's calls wait on the network, where a stalled Redis can hold them for its whole timeout:
    on asyncio, the backend runs them on the event loop and awaits each round trip there
    (`Backend.run_step`; the Redis store's `steps`), so the loop serves the dashboard and every other
    request meanwhile; on other event loops (trio clients of the offline mode), on a small pool
    of threads. Either way the request's context goes along (a copy referring to the same
    objects), which keeps a request's pinned clock and queued writes
    (store_redis.session.RedisSession) one across its steps.
    """

    def __init__(self, backend: Backend | None = None, threads: int = STORE_THREADS) -> None:
        shared = backend is not None and backend.shared
        self._shared = backend if shared else None
        self.inline = not shared  # the routes polled in loops call in place then, without even a coroutine
        self._limiter = anyio.CapacityLimiter(threads)

    async def __call__(self, work: Callable[[*Args], Result], *args: *Args) -> Result:
        """The result of `work(*args)`, run where the store's waits cannot hold the event loop."""
        if self._shared is None:
            return work(*args)
        if sniffio.current_async_library() == "asyncio":
            return await self._shared.run_step(work, *args)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)
