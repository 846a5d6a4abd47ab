"""The worker threads of blocking work, in separate bounded pools so that one kind cannot starve another.

Fetching a remote input image waits on someone else's server; decoding and rendering use the CPU.
Each has its own pool: a hundred slow fetches fill the fetch pool only, while inline images are
decoded, videos rendered and output files served as usual. A full pool queues work, never refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

# Fetches mostly wait on the network, so many may run at once (GUESS: the fake's own choice).
FETCH_THREADS = 16
# Decoding and rendering hold the CPU (and the GIL between FFmpeg calls): a few per core is enough.
RENDER_THREADS = 8

Result = TypeVar("Result")


class WorkerPools:
    """Two bounded pools of worker threads: one for fetches of remote images, one for decoding and rendering."""

    def __init__(self, fetch_threads: int = FETCH_THREADS, render_threads: int = RENDER_THREADS) -> None:
        self._fetch = anyio.CapacityLimiter(fetch_threads)
        self._render = anyio.CapacityLimiter(render_threads)

    async def run(self, function: Callable[[], Result], *, fetches: bool) -> Result:
        """Run `function` on a worker thread of the fetch pool (if it may fetch) or the render pool."""
        limiter = self._fetch if fetches else self._render
        return await anyio.to_thread.run_sync(function, limiter=limiter)
